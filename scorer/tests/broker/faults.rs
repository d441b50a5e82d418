//! The fault suite: poison pills, a broker crash, a rebalance storm, garbage input, and SIGTERM
//! while the broker dies. Each test asserts exactly-once output for a read_committed reader, or
//! the bound it is about, and that no replica ends when it should not.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use heart_schemas::{AvroRecord, Reason, topics};

use super::{SETTLE, WAIT, fixtures, patients};
use crate::support::{
    self, OwnBroker, Received, Scorer, Sender, Topics, assert_exactly_once, pairs, publish_model,
    read_committed,
};

fn kafka_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka")
}

fn own_broker(name: &str) -> OwnBroker {
    let state = std::env::temp_dir().join(support::unique(name));
    OwnBroker::start(
        &kafka_script(),
        support::free_port(),
        support::free_port(),
        &state,
    )
}

fn keys(records: &[heart_schemas::PatientRecord]) -> BTreeSet<String> {
    records.iter().map(|r| r.patient_id.clone()).collect()
}

/// Reads `topic` read_committed until every record has its output (or 180 s pass) and asserts
/// each has exactly one.
fn expect_each_once(topic: &str, records: &[heart_schemas::PatientRecord]) {
    let out = read_committed(topic, records.len(), Duration::from_secs(180), SETTLE);
    assert_exactly_once(&out, &keys(records));
}

fn header<'a>(r: &'a Received, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(String::as_str)
}

/// Lag as the scorer reports it, summed over `partitions`.
fn lag(scorer: &Scorer, partitions: i32) -> Option<f64> {
    (0..partitions)
        .map(|p| scorer.metric("scorer_consumer_lag_records", &format!("partition=\"{p}\"")))
        .sum()
}

/// a. The biggest value the topic accepts, and one just under the producer's
/// `message.max.bytes`, between valid records: both are dead-lettered as `too_large` (cut to
/// fit, original size kept), every valid record is scored once, and the lag returns to 0.
#[test]
fn oversized_values_are_dead_lettered_cut_to_fit_and_every_valid_record_is_scored() {
    let t = Topics::create("poison", 3);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let before = patients("poison-a", 200);
    let after = patients("poison-b", 200);
    // The broker's message.max.bytes (1048588) bounds a record batch: a one-record batch takes
    // ~80 bytes of framing, so this is about the largest value the topic takes.
    let biggest = vec![0xC3u8; 1_048_400];
    let near_limit = vec![0x01u8; 999_000];
    let sender = Sender::to(
        &support::bootstrap(),
        &[("message.max.bytes", "2000000"), ("linger.ms", "0")],
    );
    sender.send_patients(&t.patients, &before);
    sender.send(
        &t.patients,
        &[
            (Some(b"biggest".to_vec()), Some(biggest.clone())),
            (Some(b"near-limit".to_vec()), Some(near_limit.clone())),
        ],
    );
    sender.send_patients(&t.patients, &after);

    let mut scorer = Scorer::start(&t, &support::unique("tx"), &[]);
    scorer.wait_ready(WAIT);
    let out = read_committed(&t.predictions, 400, WAIT, SETTLE);
    let mut want = keys(&before);
    want.extend(keys(&after));
    assert_exactly_once(&out, &want);

    let letters = read_committed(&t.dead_letters, 2, WAIT, SETTLE);
    assert_eq!(letters.len(), 2, "{}", scorer.log_text());
    for (letter, original) in letters.iter().map(|r| (r, r.dead_letter())) {
        assert_eq!(
            original.reason,
            Reason::TooLarge.code(),
            "{}",
            original.message
        );
        assert_eq!(header(letter, topics::HEADER_REASON), Some("too_large"));
        let size = original.original_value_bytes.unwrap() as usize;
        let kept = original.original_value.as_ref().unwrap();
        assert!(
            size == biggest.len() || size == near_limit.len(),
            "original size recorded: {size}"
        );
        assert!(
            kept.len() < size && kept.len() > 900_000,
            "cut to fit: {}",
            kept.len()
        );
        assert!(letter.value.as_ref().unwrap().len() < 1_000_000);
    }
    let deadline = Instant::now() + WAIT;
    while lag(&scorer, 3) != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "lag did not return to 0: {:?}",
            lag(&scorer, 3)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        support::http(scorer.port, "GET", "/readyz", None)
            .unwrap()
            .0,
        200
    );
}

/// b. The broker is SIGKILLed mid-stream and restarted on its data: two exactly-once replicas
/// deliver every record exactly once, and both are still running (and ready) afterwards.
#[test]
fn a_broker_crash_mid_stream_loses_and_duplicates_nothing_and_ends_no_replica() {
    let broker = own_broker("kafka-crash");
    support::with_bootstrap(&broker.bootstrap(), || {
        let t = Topics::create("crash", 6);
        publish_model(&t.models, &fixtures::model_version(1, 1.0));
        let records = patients("crash", 20_000);
        let servers = broker.bootstrap();
        let mut a = Scorer::start_with_bootstrap(&t, &support::unique("tx-a"), &[], &servers);
        let mut b = Scorer::start_with_bootstrap(&t, &support::unique("tx-b"), &[], &servers);
        a.wait_ready(WAIT);
        b.wait_ready(WAIT);
        let feeder = support::stream(&t.patients, pairs(&records), 2_000);
        a.wait_metric("scorer_records_consumed_total", "", |v| v >= 1_000.0, WAIT);
        broker.kill();
        // The outage itself (not a wait for a condition): the broker stays down this long.
        std::thread::sleep(Duration::from_secs(3));
        broker.resume();
        feeder.join().unwrap();
        expect_each_once(&t.predictions, &records);
        for (name, s) in [("a", &mut a), ("b", &mut b)] {
            assert!(s.alive(), "replica {name} exited:\n{}", s.log_text());
            s.wait_ready(WAIT);
        }
    });
}

/// c. Replicas join and leave (SIGTERM and SIGKILL) every couple of seconds while records
/// stream in: every record exactly once.
#[test]
fn a_rebalance_storm_during_a_stream_loses_and_duplicates_nothing() {
    let t = Topics::create("storm", 6);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let records = patients("storm", 24_000);
    let mut stable = Scorer::start(&t, &support::unique("tx-stable"), &[]);
    stable.wait_ready(WAIT);
    let feeder = support::stream(&t.patients, pairs(&records), 2_000);
    for round in 0..5 {
        let mut guest = Scorer::start(&t, &support::unique(&format!("tx-storm-{round}")), &[]);
        guest.wait_ready(WAIT);
        guest.wait_metric("scorer_assigned_partitions", "", |v| v > 0.0, WAIT);
        std::thread::sleep(Duration::from_millis(1500));
        if round % 2 == 0 {
            assert!(guest.terminate(WAIT).success(), "{}", guest.log_text());
        } else {
            guest.kill();
        }
    }
    feeder.join().unwrap();
    expect_each_once(&t.predictions, &records);
    assert!(stable.alive(), "{}", stable.log_text());
}

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// d. Thousands of valid, truncated, bit-flipped and random inputs: each yields exactly one
/// output (a prediction or a dead letter, under its own key) and the scorer keeps running.
#[test]
fn random_truncated_and_bit_flipped_inputs_each_give_exactly_one_output() {
    const N: usize = 4_000;
    let t = Topics::create("garbage", 3);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let base = patients("garbage", N);
    let inputs: Vec<_> = base
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut v = r.encode().unwrap();
            match i % 4 {
                0 => {}
                1 => v.truncate(rng.below(v.len())),
                2 => {
                    for _ in 0..=rng.below(3) {
                        let bit = rng.below(v.len() * 8);
                        v[bit / 8] ^= 1 << (bit % 8);
                    }
                }
                _ => v = (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
            }
            (Some(r.patient_id.clone().into_bytes()), Some(v))
        })
        .collect();
    support::produce(&t.patients, &inputs);
    let mut scorer = Scorer::start(&t, &support::unique("tx"), &[]);
    scorer.wait_ready(WAIT);
    scorer.wait_metric("scorer_records_consumed_total", "", |v| v >= N as f64, WAIT);
    let predictions = read_committed(&t.predictions, 1, Duration::from_secs(10), SETTLE);
    let letters = read_committed(&t.dead_letters, 1, Duration::from_secs(10), SETTLE);
    let mut all = predictions.clone();
    all.extend(letters.iter().cloned());
    assert_exactly_once(&all, &keys(&base));
    assert!(predictions.len() >= N / 4, "the valid quarter is scored");
    assert!(
        letters.len() >= N / 2,
        "the random and truncated halves are dead letters"
    );
    assert!(scorer.alive(), "{}", scorer.log_text());
}

/// f. SIGTERM at the moment the broker is SIGKILLed: the scorer exits within
/// `--drain-timeout-ms` plus its 2 s margin, and a second SIGTERM ends a drain at once.
#[test]
fn sigterm_as_the_broker_dies_exits_within_the_drain_bound() {
    let broker = own_broker("kafka-sigterm");
    support::with_bootstrap(&broker.bootstrap(), || {
        let t = Topics::create("sigterm-crash", 3);
        publish_model(&t.models, &fixtures::model_version(1, 1.0));
        let servers = broker.bootstrap();
        let drain = ["--drain-timeout-ms", "3000"];
        let mut first =
            Scorer::start_with_bootstrap(&t, &support::unique("tx-1"), &drain, &servers);
        let mut second = Scorer::start_with_bootstrap(&t, &support::unique("tx-2"), &[], &servers);
        first.wait_ready(WAIT);
        second.wait_ready(WAIT);
        let feeder = support::stream(&t.patients, pairs(&patients("sigterm", 8_000)), 2_000);
        first.wait_metric("scorer_records_consumed_total", "", |v| v >= 500.0, WAIT);

        let started = Instant::now();
        broker.kill();
        let status = first.terminate(Duration::from_secs(15));
        let took = started.elapsed();
        assert!(
            took <= Duration::from_millis(3_000 + 2_000 + 1_000),
            "exited after {took:?}, bound 3 s + 2 s margin:\n{}",
            first.log_text()
        );
        assert!(
            status.code().is_some(),
            "exited by itself, not by a signal: {status}"
        );

        // Draining with no broker blocks in the consumer's close; a second signal ends it.
        let pid = second.pid().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let status = second.terminate(Duration::from_secs(10));
        assert!(
            started.elapsed() < Duration::from_millis(1_500),
            "second SIGTERM took {:?}",
            started.elapsed()
        );
        assert!(status.code().is_some(), "{status}");
        drop(feeder);
    });
}

/// A broker outage that outlasts `--stall-timeout-ms` turns `/readyz` to 503 with the reason,
/// whether a batch was in flight or the replica had caught up; once the broker is back, the
/// replica is ready again on its own.
#[test]
fn a_stalled_pipeline_turns_readiness_off_with_the_reason_and_heals() {
    let broker = own_broker("kafka-stall");
    support::with_bootstrap(&broker.bootstrap(), || {
        let t = Topics::create("stall", 3);
        publish_model(&t.models, &fixtures::model_version(1, 1.0));
        let servers = broker.bootstrap();
        let flags = [
            "--stall-timeout-ms",
            "2000",
            "--transaction-timeout-ms",
            "3000",
        ];
        let mut scorer = Scorer::start_with_bootstrap(&t, &support::unique("tx"), &flags, &servers);
        scorer.wait_ready(WAIT);
        let records = patients("stall", 12_000);
        let feeder = support::stream(&t.patients, pairs(&records), 2_000);
        scorer.wait_metric("scorer_records_consumed_total", "", |v| v >= 500.0, WAIT);
        broker.kill();
        let deadline = Instant::now() + WAIT;
        let reason = loop {
            let (status, body) = support::http(scorer.port, "GET", "/readyz", None).unwrap();
            if status == 503 {
                break body;
            }
            assert!(
                Instant::now() < deadline,
                "still ready with the broker gone"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        // Which stage says so depends on the moment of the kill: a batch in flight fails to
        // commit, and a replica that had caught up finds no broker answering its probe.
        assert!(
            reason.contains("no batch committed") || reason.contains("no broker has answered"),
            "{reason}"
        );
        broker.resume();
        // A commit whose markers the restarted broker skips (it does, now and then, while its
        // previous incarnation is being fenced) leaves its transaction open for good, and with
        // it the group's offsets: the replica says so, and once the operator aborts it, heals.
        // (An open transaction the broker will still time out looks the same to the replica
        // for a while; find-hanging does not list that one, so it is asked again.)
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut aborted = Vec::new();
        let mut asked: Option<Instant> = None;
        loop {
            let (status, body) =
                support::http(scorer.port, "GET", "/readyz", None).unwrap_or((0, String::new()));
            if status == 200 {
                break;
            }
            if body.contains("find-hanging")
                && aborted.is_empty()
                && asked.is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
            {
                aborted = broker.abort_hanging_transactions();
                asked = Some(Instant::now());
                eprintln!("aborted hanging transactions: {aborted:?}");
            }
            assert!(
                Instant::now() < deadline,
                "not ready again: {body}\n{}",
                scorer.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        feeder.join().unwrap();
        expect_each_once(&t.predictions, &records);
        assert!(scorer.alive(), "{}", scorer.log_text());
        let log = scorer.log_text();
        assert!(
            [
                "pipeline recovered",
                "a broker answers again",
                "records arrive again"
            ]
            .iter()
            .any(|healed| log.contains(healed)),
            "{log}"
        );
    });
}
