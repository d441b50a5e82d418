//! Producer tests against a real Kafka broker.
//!
//! Needs a broker at `KAFKA_BOOTSTRAP_SERVERS` (default `127.0.0.1:9092`, which
//! `scripts/kafka start` provides). Each test creates its own topics and uses its own group; a
//! missing broker fails every test with a message saying so, it never skips.

// A test binary: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use heart_producer::config::Command;
use heart_producer::error::{Error, TailError};
use heart_producer::{Config, Outcome};
use heart_schemas::{
    AvroRecord, DeadLetter, N_FIELDS, PatientRecord, Prediction, Reason, RiskLevel,
};
use rdkafka::ClientContext;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer,
    ProducerContext,
};
use tokio_util::sync::CancellationToken;

use support::{
    ProducerProcess, TIMEOUT, admin_consumer, appended, bootstrap, fresh_topic, read_all,
    read_committed,
};

/// The UCI file: `HEART_DATA` (`scripts/test` sets it), else the shared copy.
fn uci() -> &'static str {
    static PATH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        std::env::var("HEART_DATA").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/data/processed.cleveland.data"
            )
            .to_owned()
        })
    });
    &PATH
}

fn config(args: &[&str]) -> Config {
    let bootstrap = bootstrap();
    let mut argv = vec!["producer", "--bootstrap-servers", &bootstrap];
    argv.extend_from_slice(args);
    Config::try_parse_from(argv).expect("valid test arguments")
}

async fn run(args: &[&str]) -> Result<Outcome, Error> {
    heart_producer::run(config(args), CancellationToken::new()).await
}

fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(d.as_millis()).unwrap()
}

/// The UCI rows as the test reads them, independently of the producer's parser.
fn uci_rows() -> BTreeMap<String, PatientRecord> {
    let text = std::fs::read_to_string(uci()).expect("the UCI file is in shared/data");
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let cells: Vec<&str> = line.split(',').collect();
            let mut values = [None; N_FIELDS];
            for (slot, cell) in values.iter_mut().zip(&cells) {
                *slot = cell.parse::<f64>().ok();
            }
            let id = format!("cleveland-{}", i + 1);
            (id.clone(), PatientRecord::from_features(id, 0, &values))
        })
        .collect()
}

#[tokio::test]
async fn sending_the_uci_file_puts_303_records_keyed_by_patient_id() {
    let topic = fresh_topic("uci", 6).await;
    let before = now_ms();
    let outcome = run(&["send", "--topic", &topic, "--data", uci()])
        .await
        .unwrap();
    let after = now_ms();
    let Outcome::Sent(summary) = outcome else {
        panic!("send returned {outcome:?}")
    };
    assert_eq!(
        (summary.sent, summary.failed, summary.attempted),
        (303, 0, 303)
    );
    assert!(summary.ack_latency_ms.is_some());

    let expected = uci_rows();
    let mut seen = BTreeMap::new();
    for m in read_all(&topic, 303) {
        let key = String::from_utf8(m.key.expect("every record has a key")).unwrap();
        let record = PatientRecord::decode(&m.value.expect("a value")).unwrap();
        assert_eq!(key, record.patient_id);
        assert!(
            (before..=after).contains(&record.event_time),
            "event_time {} is the send time",
            record.event_time
        );
        seen.insert(key, record);
    }
    assert_eq!(seen.len(), 303, "303 distinct patient ids");
    for (id, want) in &expected {
        let got = &seen[id];
        assert_eq!(
            &PatientRecord {
                event_time: 0,
                ..got.clone()
            },
            want,
            "{id}"
        );
    }
}

/// Keeps the latest librdkafka statistics JSON.
#[derive(Clone, Default)]
struct LatestStats(Arc<Mutex<Option<serde_json::Value>>>);

impl ClientContext for LatestStats {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Ok(v) = serde_json::from_slice(statistics) {
            *self.0.lock().unwrap() = Some(v);
        }
    }
}

impl ProducerContext for LatestStats {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

#[tokio::test]
async fn the_send_config_makes_an_idempotent_producer_with_a_broker_assigned_id() {
    let topic = fresh_topic("idempotence", 1).await;
    let config = config(&[
        "--kafka-property",
        "statistics.interval.ms=100",
        "send",
        "--topic",
        &topic,
    ]);
    let Command::Send(args) = &config.command else {
        panic!("not send")
    };
    let cfg = args.producer_config(&config.kafka).unwrap();
    assert_eq!(cfg.get("enable.idempotence"), Some("true"));
    assert_eq!(cfg.get("acks"), Some("all"));
    let stats = LatestStats::default();
    let producer: BaseProducer<LatestStats> = cfg.create_with_context(stats.clone()).unwrap();
    producer
        .send(BaseRecord::to(&topic).key("k").payload("v"))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(TIMEOUT).unwrap();
    // librdkafka's statistics show the idempotent producer's state and broker-assigned id.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        producer.poll(Duration::from_millis(100));
        let eos = stats
            .0
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|s| s.get("eos").cloned());
        if let Some(eos) = &eos
            && eos["idemp_state"] == "Assigned"
        {
            assert!(eos["producer_id"].as_i64().unwrap() >= 0, "{eos}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no idempotent producer id within {TIMEOUT:?}; last eos stats: {eos:?}"
        );
    }
}

#[tokio::test]
async fn invalid_records_are_mixed_in_and_decode_to_their_dead_letter_reason() {
    let topic = fresh_topic("invalid", 3).await;
    let outcome = run(&[
        "send",
        "--topic",
        &topic,
        "--source",
        "synthetic",
        "--count",
        "200",
        "--invalid-ratio",
        "0.3",
        "--seed",
        "11",
    ])
    .await
    .unwrap();
    let Outcome::Sent(summary) = outcome else {
        panic!("send returned {outcome:?}")
    };
    let invalid: u64 = summary.invalid.values().sum();
    assert!(invalid > 40, "{summary:?}");
    assert_eq!(summary.sent, 200 + invalid);
    let messages = read_all(&topic, usize::try_from(summary.sent).unwrap());
    let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    let mut valid = 0;
    for m in messages {
        let value = m.value.unwrap_or_default();
        let reason = match PatientRecord::decode(&value) {
            Err(e) => Some(Reason::for_decode(&e)),
            Ok(r) => r.validate().err().map(|e| Reason::for_invalid(&e)),
        };
        match reason {
            Some(reason) => *by_reason.entry(reason.code()).or_default() += 1,
            None => valid += 1,
        }
    }
    assert_eq!(valid, 200);
    let want = |kinds: &[&str]| -> u64 {
        summary
            .invalid
            .iter()
            .filter(|(k, _)| kinds.contains(&k.code()))
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(
        by_reason.get("malformed_avro").copied().unwrap_or(0),
        want(&["not_avro", "truncated_avro"])
    );
    assert_eq!(
        by_reason.get("out_of_range").copied().unwrap_or(0),
        want(&["out_of_range"])
    );
    assert_eq!(
        by_reason.get("empty_value").copied().unwrap_or(0),
        want(&["empty_value"])
    );
}

fn prediction(id: &str, level: RiskLevel, version: i64) -> Prediction {
    Prediction {
        patient_id: id.to_owned(),
        event_time: now_ms() - 50,
        scored_at: now_ms(),
        probability: 0.42,
        label: 0,
        risk_level: level,
        model_name: "logreg".to_owned(),
        model_version: version,
        imputed_fields: heart_schemas::FieldSet::EMPTY,
        explanation: None,
    }
}

async fn write(topic: &str, messages: Vec<(String, Vec<u8>)>) {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    for (key, value) in messages {
        producer
            .send(FutureRecord::to(topic).key(&key).payload(&value), TIMEOUT)
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

#[tokio::test]
async fn tail_count_reads_back_predictions_and_dead_letters_written_before_it_started() {
    let predictions = fresh_topic("tail-predictions", 3).await;
    let dead = fresh_topic("tail-dead", 2).await;
    let levels = [
        RiskLevel::Low,
        RiskLevel::High,
        RiskLevel::High,
        RiskLevel::Medium,
    ];
    write(
        &predictions,
        levels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let p = prediction(&format!("p{i}"), *l, 1 + i64::from(i == 3));
                (p.patient_id.clone(), p.encode().unwrap())
            })
            .collect(),
    )
    .await;
    let dead_letter = |reason: Reason| DeadLetter {
        original_key: None,
        original_value: None,
        original_value_bytes: None,
        source_topic: "patients".to_owned(),
        source_partition: 0,
        source_offset: 0,
        reason: reason.code().to_owned(),
        message: "test".to_owned(),
        failed_at: now_ms(),
    };
    write(
        &dead,
        [Reason::OutOfRange, Reason::EmptyValue, Reason::OutOfRange]
            .map(|r| ("k".to_owned(), dead_letter(r).encode().unwrap()))
            .to_vec(),
    )
    .await;

    let outcome = run(&[
        "tail",
        "--topic",
        &predictions,
        "--dead-letters",
        "--dead-letter-topic",
        &dead,
        "--count",
        "7",
        "--timeout-s",
        "30",
        "--summary",
        "--quiet",
    ])
    .await
    .unwrap();
    let Outcome::Tailed(summary) = outcome else {
        panic!("tail returned {outcome:?}")
    };
    assert_eq!((summary.predictions, summary.distinct_patients), (4, 4));
    assert_eq!(
        summary.by_risk_level,
        [
            (RiskLevel::Low, 1),
            (RiskLevel::Medium, 1),
            (RiskLevel::High, 2)
        ]
    );
    assert_eq!(summary.by_model[&("logreg".to_owned(), 1)], 3);
    assert_eq!(summary.by_model[&("logreg".to_owned(), 2)], 1);
    let dead = summary.dead_letters.expect("dead letters were read");
    assert_eq!(dead["out_of_range"], 2);
    assert_eq!(dead["empty_value"], 1);
    let latency = summary.e2e_latency_ms.expect("latencies");
    assert!(latency.p50 >= 50.0, "{latency:?}");
}

#[tokio::test]
async fn tail_since_leaves_out_predictions_of_records_sent_before_it() {
    let predictions = fresh_topic("tail-since", 2).await;
    let since = now_ms() - 1_000;
    let at = |id: &str, event_time: i64| {
        let p = Prediction {
            event_time,
            ..prediction(id, RiskLevel::Low, 1)
        };
        (p.patient_id.clone(), p.encode().unwrap())
    };
    write(
        &predictions,
        vec![
            at("warm-up-1", since - 5_000),
            at("measured-1", since),
            at("warm-up-2", since - 1),
            at("measured-2", since + 10),
        ],
    )
    .await;
    let outcome = run(&[
        "tail",
        "--topic",
        &predictions,
        "--since-ms",
        &since.to_string(),
        "--count",
        "2",
        "--timeout-s",
        "30",
        "--quiet",
    ])
    .await
    .unwrap();
    let Outcome::Tailed(summary) = outcome else {
        panic!("tail returned {outcome:?}")
    };
    assert_eq!((summary.predictions, summary.distinct_patients), (2, 2));
    // The warm-up records are 5 s old: counted, they would be the maximum.
    let latency = summary.e2e_latency_ms.expect("latencies");
    assert!(latency.max < 4_000.0, "{latency:?}");
}

#[tokio::test]
async fn tail_fails_clearly_when_the_count_is_not_reached_in_time() {
    let predictions = fresh_topic("tail-short", 1).await;
    let p = prediction("only", RiskLevel::Low, 1);
    write(
        &predictions,
        vec![(p.patient_id.clone(), p.encode().unwrap())],
    )
    .await;
    let err = run(&[
        "tail",
        "--topic",
        &predictions,
        "--count",
        "2",
        "--timeout-s",
        "3",
        "--quiet",
    ])
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tail(TailError::CountNotReached {
                received: 1,
                wanted: 2,
                timeout_s: 3
            })
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "received 1 of 2 messages within 3 s; is the scorer running?"
    );
}

/// The whole flush bound plus the exit margin, plus slack for a loaded machine.
const EXIT_WITHIN: Duration = Duration::from_secs(20);

#[test]
fn send_sigtermed_mid_stream_exits_0_and_every_record_it_reported_as_sent_is_on_the_topic() {
    let topic = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fresh_topic("sigterm", 3));
    let summary_path = std::env::temp_dir().join(format!("{topic}-summary.json"));
    // Fast enough, and batched long enough (linger 50 ms), that deliveries are in flight when
    // the signal lands; far more records than it can send before then.
    let mut producer = ProducerProcess::spawn(
        "sigterm-send",
        &[
            "send",
            "--topic",
            &topic,
            "--source",
            "synthetic",
            "--count",
            "1000000",
            "--rate",
            "2000",
            "--linger-ms",
            "50",
            "--summary-json",
            summary_path.to_str().unwrap(),
        ],
    );
    let watermarks = admin_consumer();
    producer.wait_for("200 records on the topic", TIMEOUT, |_| {
        appended(&watermarks, &topic) >= 200
    });

    let status = producer.terminate(EXIT_WITHIN);
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        producer.output()
    );
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&summary_path)
            .unwrap_or_else(|e| panic!("no --summary-json ({e}):\n{}", producer.output())),
    )
    .unwrap();
    let number = |field: &str| {
        summary[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field}: {summary}"))
    };
    let (sent, attempted) = (number("sent"), number("attempted"));
    assert_eq!(summary["interrupted"], true, "{summary}");
    assert_eq!(
        (number("failed"), number("unacknowledged")),
        (0, 0),
        "a healthy broker acknowledges everything within the flush bound: {summary}"
    );
    assert_eq!(sent, attempted, "{summary}");
    assert!(
        (200..1_000_000).contains(&sent),
        "stopped mid-stream: {summary}"
    );
    let stdout = producer.stdout();
    assert!(
        stdout.contains(&format!(
            "sent {sent} of {attempted} messages to {topic} (0 failed)"
        )) && stdout.contains("(interrupted)"),
        "the printed report matches the JSON one:\n{}",
        producer.output()
    );

    // Idempotent and acknowledged: exactly the records it reported, each once.
    let committed = read_committed(&topic);
    assert_eq!(committed.records, sent, "records on {topic}: {committed:?}");
    assert_eq!(
        u64::try_from(committed.distinct_keys).unwrap(),
        sent,
        "no duplicates"
    );
}

#[tokio::test]
async fn tail_exits_0_on_sigterm_and_prints_its_summary() {
    let predictions = fresh_topic("tail-sigterm", 2).await;
    write(
        &predictions,
        ["a", "b"]
            .map(|id| {
                let p = prediction(id, RiskLevel::Low, 1);
                (p.patient_id.clone(), p.encode().unwrap())
            })
            .to_vec(),
    )
    .await;
    let mut tail = ProducerProcess::spawn(
        "sigterm-tail",
        &[
            "tail",
            "--topic",
            &predictions,
            "--from-beginning",
            "--summary",
        ],
    );
    // Predictions go to stdout as JSON lines, the summary to stderr.
    tail.wait_for("both predictions printed", TIMEOUT, |p| {
        p.stdout().lines().count() >= 2
    });
    let status = tail.terminate(EXIT_WITHIN);
    assert!(status.success(), "exit status {status}:\n{}", tail.output());
    assert!(
        tail.stderr()
            .contains("predictions: 2 (2 distinct patients)"),
        "summary printed:\n{}",
        tail.output()
    );
}

#[tokio::test]
async fn send_framing_confluent_registers_the_schema_and_tail_reads_confluent_predictions() {
    let registry = heart_registry::StandIn::start();
    let topic = fresh_topic("confluent", 3).await;
    let outcome = run(&[
        "--schema-registry-url",
        registry.url(),
        "send",
        "--topic",
        &topic,
        "--data",
        uci(),
        "--framing",
        "confluent",
    ])
    .await
    .unwrap();
    let Outcome::Sent(summary) = outcome else {
        panic!("send returned {outcome:?}")
    };
    assert_eq!(summary.sent, 303);
    let id = registry
        .registry()
        .lookup(
            &heart_registry::value_subject(&topic),
            PatientRecord::schema_info().text,
        )
        .unwrap();
    for m in read_all(&topic, 303) {
        let value = m.value.unwrap();
        let heart_schemas::Framed::Registry { id: got, body } =
            PatientRecord::frame(&value).unwrap()
        else {
            panic!("not Confluent-framed: {:02x?}", &value[..5]);
        };
        assert_eq!(got, id);
        PatientRecord::decode_body(body).unwrap();
    }

    // Without auto-registration, a subject that lacks the schema is an error naming it.
    let unregistered = fresh_topic("confluent-unregistered", 1).await;
    let err = run(&[
        "--schema-registry-url",
        registry.url(),
        "send",
        "--topic",
        &unregistered,
        "--data",
        uci(),
        "--framing",
        "confluent",
        "--schema-registry-auto-register",
        "false",
    ])
    .await
    .unwrap_err();
    let text = format!("{:#}", anyhow::Error::from(err));
    assert!(text.contains(&format!("{unregistered}-value")), "{text}");

    let predictions = fresh_topic("confluent-predictions", 2).await;
    let id = registry
        .registry()
        .register(
            &heart_registry::value_subject(&predictions),
            Prediction::schema_info().text,
        )
        .unwrap();
    write(
        &predictions,
        (0..5)
            .map(|i| {
                let p = prediction(&format!("c{i}"), RiskLevel::Low, 3);
                let mut v = Vec::new();
                p.encode_framed_into(heart_schemas::Framing::Confluent { id }, &mut v)
                    .unwrap();
                (p.patient_id, v)
            })
            .collect(),
    )
    .await;
    let outcome = run(&[
        "--schema-registry-url",
        registry.url(),
        "tail",
        "--topic",
        &predictions,
        "--count",
        "5",
        "--timeout-s",
        "30",
        "--quiet",
    ])
    .await
    .unwrap();
    let Outcome::Tailed(summary) = outcome else {
        panic!("tail returned {outcome:?}")
    };
    assert_eq!(summary.predictions, 5);
    assert_eq!(summary.undecodable, 0);
}
