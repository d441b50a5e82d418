//! Scorer tests against a real Kafka broker.
//!
//! Needs `KAFKA_BOOTSTRAP_SERVERS` (default `127.0.0.1:9092`) pointing at a broker with
//! transactions enabled — `scripts/kafka start` runs one; `scripts/test` starts it for you. Each
//! test creates its own topics and consumer group, and runs the real `scorer` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod faults;
#[path = "../common/fixtures.rs"]
mod fixtures;
mod registry;
mod security;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use heart_model::Model;
use heart_schemas::{PatientRecord, topics};
use support::{
    Scorer, Topics, cleveland, http, produce, produce_patients, publish_model, read_committed,
};

const WAIT: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(2);

fn patients(prefix: &str, n: usize) -> Vec<PatientRecord> {
    (0..n)
        .map(|i| PatientRecord {
            patient_id: format!("{prefix}-{i}"),
            event_time: heart_schemas::now_ms(),
            ..fixtures::patient(30 + (i % 50) as i32)
        })
        .collect()
}

/// Every field's PSI, by name, once the drift window holds `records`.
fn psi_by_field(scorer: &Scorer, records: f64) -> BTreeMap<&'static str, f64> {
    scorer.wait_metric("scorer_drift_window_records", "", |n| n >= records, WAIT);
    heart_schemas::FIELDS
        .iter()
        .map(|f| {
            let psi = scorer
                .metric("scorer_feature_psi", &format!("field=\"{}\"", f.name))
                .unwrap_or_else(|| panic!("no PSI for {}", f.name));
            (f.name, psi)
        })
        .collect()
}

#[test]
fn a_shifted_field_crosses_the_psi_alarm_while_the_others_stay_low() {
    let t = Topics::create("drift", 3);
    publish_model(&t.models, &fixtures::trained_on(&cleveland(), 1));
    // A window of ten passes over the 303 rows: the training population exactly, then shifted.
    let mut scorer = Scorer::start(
        &t,
        &support::unique("drift"),
        &["--drift-window-records", "3030"],
    );
    scorer.wait_ready(WAIT);
    let send = |prefix: &str, shift: &[&str]| {
        let mut args = vec!["--loop", "--count", "3030", "--id-prefix", prefix];
        args.extend_from_slice(shift);
        support::send_cleveland(&t.patients, &args);
    };
    send("same-", &[]);
    let same = psi_by_field(&scorer, 3030.0);
    assert!(
        same.values().all(|&psi| psi < 0.1),
        "the training population: {same:?}"
    );

    send("older-", &["--shift", "age=+15"]);
    scorer.wait_metric("scorer_records_produced_total", "", |n| n >= 6060.0, WAIT);
    let shifted = psi_by_field(&scorer, 3030.0);
    eprintln!("PSI, the training population: {same:?}\nPSI, age + 15: {shifted:?}");
    assert!(
        shifted["age"] > 0.25,
        "age shifted by 15 years: {shifted:?}"
    );
    for (field, psi) in &shifted {
        if *field != "age" {
            assert!(*psi < 0.1, "{field} was not shifted: {shifted:?}");
        }
    }
    let missing = scorer
        .metric("scorer_feature_missing_ratio", "field=\"ca\"")
        .unwrap();
    // Cleveland lacks ca in 4 of its 303 rows.
    assert!((missing - 4.0 / 303.0).abs() < 1e-9, "{missing}");
}

/// A ready scorer on `t` serving version 1 (weight 1.0) with version 2 (`challenger_weight`),
/// newer and so never to be activated, in its shadow; and the shadow topic it writes. `extra`
/// flags are passed on.
fn with_shadow(t: &Topics, challenger_weight: f64, extra: &[&str]) -> (Scorer, String) {
    let shadow_topic = support::unique("shadow-predictions");
    support::create_topic(&shadow_topic, 3);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    publish_model(&t.models, &fixtures::model_version(2, challenger_weight));
    let mut args = vec![
        "--shadow-model-version",
        "2",
        "--shadow-topic",
        &shadow_topic,
    ];
    args.extend_from_slice(extra);
    let mut scorer = Scorer::start(t, &support::unique("tx"), &args);
    scorer.wait_ready(WAIT);
    (scorer, shadow_topic)
}

#[test]
fn with_a_shadow_every_input_has_one_champion_and_one_shadow_prediction() {
    let t = Topics::create("shadow", 3);
    // The challenger's weight is opposite the champion's.
    let (scorer, shadow_topic) = with_shadow(&t, -1.0, &[]);
    let records = patients("shadow", 400);
    produce_patients(&t.patients, &records);
    produce(
        &t.patients,
        &[(Some(b"bad".to_vec()), Some(b"not avro".to_vec()))],
    );

    let keys: BTreeSet<String> = records.iter().map(|r| r.patient_id.clone()).collect();
    let champion = read_committed(&t.predictions, 400, WAIT, SETTLE);
    let shadow = read_committed(&shadow_topic, 400, WAIT, SETTLE);
    support::assert_exactly_once(&champion, &keys);
    support::assert_exactly_once(&shadow, &keys);
    let by_key: BTreeMap<String, heart_schemas::Prediction> = champion
        .iter()
        .map(|r| (r.key_str(), r.prediction()))
        .collect();
    let (mut labels, mut levels, mut abs) = (0.0, 0.0, 0.0);
    for r in &shadow {
        let (s, c) = (r.prediction(), &by_key[&r.key_str()]);
        assert_eq!(
            (c.model_version, s.model_version),
            (1, 2),
            "each names its own version"
        );
        assert_eq!(r.headers[topics::HEADER_MODEL_VERSION], "2");
        labels += f64::from(u8::from(s.label == c.label));
        levels += f64::from(u8::from(s.risk_level == c.risk_level));
        abs += (s.probability - c.probability).abs();
    }
    assert!(
        labels < 400.0,
        "an opposite model disagrees: {labels} label agreements"
    );
    let metric = |name: &str| scorer.wait_metric(name, "", |_| true, WAIT);
    scorer.wait_metric("scorer_shadow_predictions_total", "", |n| n >= 400.0, WAIT);
    assert_eq!(
        metric("scorer_shadow_predictions_total"),
        400.0,
        "none for the dead letter"
    );
    assert_eq!(metric("scorer_shadow_label_agreements_total"), labels);
    assert_eq!(metric("scorer_shadow_risk_level_agreements_total"), levels);
    let total = metric("scorer_shadow_abs_probability_difference_total");
    assert!((total - abs).abs() < 1e-6, "{total} vs {abs}");
    assert_eq!(metric("scorer_shadow_model_version"), 2.0);
    assert_eq!(
        metric("scorer_model_version"),
        1.0,
        "the challenger is not activated"
    );
}

/// Issue [9]: with --explain-stream every prediction carries its top-k explanation, which adds
/// up to the model's output, and the explanation metrics sum every field's |contribution|.
#[test]
fn with_explain_stream_every_prediction_explains_itself_and_the_metrics_add_them_up() {
    let t = Topics::create("explain", 3);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let mut scorer = Scorer::start(
        &t,
        &support::unique("tx"),
        &["--explain-stream", "--explain-top-k", "3"],
    );
    scorer.wait_ready(WAIT);
    let records = patients("explain", 300);
    produce_patients(&t.patients, &records);

    let keys: BTreeSet<String> = records.iter().map(|r| r.patient_id.clone()).collect();
    let predictions = read_committed(&t.predictions, 300, WAIT, SETTLE);
    support::assert_exactly_once(&predictions, &keys);
    let mut age = 0.0;
    for r in &predictions {
        let p = r.prediction();
        let e = p
            .explanation
            .unwrap_or_else(|| panic!("{} has no explanation", r.key_str()));
        assert_eq!(e.contributions.len(), 3, "--explain-top-k 3");
        let listed: f64 = e.contributions.iter().map(|c| c.contribution).sum();
        assert!(
            (e.base + listed + e.other - e.output).abs() < 1e-9,
            "{e:?} does not add up"
        );
        let logit = (p.probability / (1.0 - p.probability)).ln();
        assert!(
            (logit - e.output).abs() < 1e-9,
            "{e:?} vs p {}",
            p.probability
        );
        // Only age weighs, so it leads (ties in field order) and the rest contribute nothing.
        assert_eq!(heart_schemas::FIELDS[e.contributions[0].field].name, "age");
        age += e.contributions[0].contribution.abs();
    }
    scorer.wait_metric("scorer_explanations_total", "", |n| n >= 300.0, WAIT);
    assert_eq!(scorer.metric("scorer_explanations_total", ""), Some(300.0));
    let summed = scorer
        .metric("scorer_explanation_abs_contribution_total", "field=\"age\"")
        .unwrap();
    assert!((summed - age).abs() < 1e-9, "{summed} vs {age}");
    assert_eq!(
        scorer.metric(
            "scorer_explanation_abs_contribution_total",
            "field=\"chol\""
        ),
        Some(0.0)
    );
}

#[test]
fn producer_traces_are_continued_on_predictions_and_dead_letters() {
    let t = Topics::create("trace", 3);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let mut scorer = Scorer::start(&t, &support::unique("tx"), &[]);
    scorer.wait_ready(WAIT);
    support::send_cleveland(
        &t.patients,
        &["--count", "100", "--invalid-ratio", "0.1", "--trace"],
    );
    let trace_of = |r: &support::Received| {
        let value = &r.headers[heart_schemas::trace::HEADER];
        let t = heart_schemas::TraceParent::parse(value.as_bytes())
            .unwrap_or_else(|| panic!("not a traceparent: {value:?}"));
        (t.trace_id, t.parent_id)
    };
    let sent = read_committed(&t.patients, 100, WAIT, SETTLE);
    let inputs: BTreeMap<String, (u128, u64)> =
        sent.iter().map(|r| (r.key_str(), trace_of(r))).collect();
    assert_eq!(inputs.len(), sent.len(), "one trace per record");
    let traces: BTreeSet<u128> = inputs.values().map(|t| t.0).collect();
    assert_eq!(traces.len(), inputs.len(), "a new trace for every record");

    let predictions = read_committed(&t.predictions, 100, WAIT, SETTLE);
    let letters = read_committed(&t.dead_letters, 1, WAIT, SETTLE);
    assert!(
        !letters.is_empty(),
        "--invalid-ratio 0.1 makes dead letters"
    );
    for out in predictions.iter().chain(&letters) {
        let (trace, parent) = trace_of(out);
        let (sent_trace, sent_parent) = inputs[&out.key_str()];
        assert_eq!(trace, sent_trace, "{}: the same trace", out.key_str());
        assert_ne!(
            parent,
            sent_parent,
            "{}: the scorer's own span",
            out.key_str()
        );
    }
}

#[test]
fn three_hundred_three_records_in_three_hundred_three_predictions_out() {
    let t = Topics::create("e2e", 6);
    let version = fixtures::model_version(1, 1.2);
    let model = Model::load(version.clone()).unwrap();
    publish_model(&t.models, &version);
    let mut scorer = Scorer::start(&t, &support::unique("tx"), &[]);
    scorer.wait_ready(WAIT);

    let records = cleveland();
    assert_eq!(records.len(), 303);
    produce_patients(&t.patients, &records);
    let out = read_committed(&t.predictions, 303, WAIT, SETTLE);

    assert_eq!(out.len(), 303, "exactly one prediction per record");
    let by_id: BTreeMap<_, _> = records.iter().map(|r| (r.patient_id.clone(), r)).collect();
    let keys: BTreeSet<_> = out.iter().map(support::Received::key_str).collect();
    assert_eq!(keys.len(), 303);
    assert_eq!(keys, by_id.keys().cloned().collect());
    for read in &out {
        let p = read.prediction();
        assert_eq!(read.key_str(), p.patient_id, "key preserved");
        let offline = model.predict(by_id[&p.patient_id]).probability;
        assert!(
            (p.probability - offline).abs() <= 1e-9,
            "{}: streamed {} vs offline {offline}",
            p.patient_id,
            p.probability
        );
        assert_eq!(p.model_version, 1);
        assert_eq!(read.headers[topics::HEADER_MODEL_VERSION], "1");
    }
    assert_eq!(
        scorer.metric("scorer_records_produced_total", "").unwrap(),
        303.0
    );
}

#[test]
fn at_least_once_mode_delivers_every_record() {
    let t = Topics::create("alo", 3);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let mut scorer = Scorer::start(&t, &support::unique("tx"), &["--delivery", "at-least-once"]);
    scorer.wait_ready(WAIT);
    let records = patients("alo", 200);
    produce_patients(&t.patients, &records);
    let out = read_committed(&t.predictions, 200, WAIT, SETTLE);
    let keys: BTreeSet<_> = out.iter().map(support::Received::key_str).collect();
    assert_eq!(keys.len(), 200);
    assert_eq!(
        scorer.metric("scorer_transactions_total", "committed"),
        Some(0.0)
    );
}

#[test]
fn two_replicas_split_the_partitions() {
    let t = Topics::create("split", 6);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let mut a = Scorer::start(&t, &support::unique("tx-a"), &[]);
    let mut b = Scorer::start(&t, &support::unique("tx-b"), &[]);
    a.wait_ready(WAIT);
    b.wait_ready(WAIT);
    // Cooperative-sticky settles on 3 + 3.
    let started = Instant::now();
    loop {
        let (pa, pb) = (
            a.metric("scorer_assigned_partitions", "").unwrap_or(0.0),
            b.metric("scorer_assigned_partitions", "").unwrap_or(0.0),
        );
        if pa > 0.0 && pb > 0.0 && pa + pb == 6.0 {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "assignment never split: {pa} + {pb}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let records = patients("split", 600);
    produce_patients(&t.patients, &records);
    let out = read_committed(&t.predictions, 600, WAIT, SETTLE);
    assert_eq!(out.len(), 600);
    let ca = a.metric("scorer_records_consumed_total", "").unwrap();
    let cb = b.metric("scorer_records_consumed_total", "").unwrap();
    assert!(ca > 0.0 && cb > 0.0, "both replicas scored: {ca} and {cb}");
    assert_eq!(ca + cb, 600.0);
}

#[test]
fn a_replica_joining_mid_stream_causes_no_loss_and_no_duplicates() {
    const CHUNKS: usize = 100;
    const PER_CHUNK: usize = 100;
    const N: usize = CHUNKS * PER_CHUNK;
    let t = Topics::create("join", 6);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let mut a = Scorer::start(&t, &support::unique("tx-a"), &[]);
    a.wait_ready(WAIT);
    // A steady stream of about 10 s; B joins about 1.5 s in.
    let stream = std::thread::spawn({
        let topic = t.patients.clone();
        move || {
            let sender = support::Sender::new();
            for chunk in 0..CHUNKS {
                sender.send_patients(&topic, &patients(&format!("join{chunk}"), PER_CHUNK));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    a.wait_metric("scorer_records_consumed_total", "", |v| v > 0.0, WAIT);
    std::thread::sleep(Duration::from_millis(1500));
    // Cooperative-sticky hands some of A's partitions to B while A is mid-stream.
    let mut b = Scorer::start(&t, &support::unique("tx-b"), &[]);
    b.wait_ready(WAIT);
    b.wait_metric("scorer_assigned_partitions", "", |v| v > 0.0, WAIT);
    assert!(
        !stream.is_finished(),
        "B joined while records were still arriving"
    );
    stream.join().unwrap();

    let out = read_committed(
        &t.predictions,
        N,
        Duration::from_secs(120),
        Duration::from_secs(3),
    );
    let keys: BTreeSet<_> = out.iter().map(support::Received::key_str).collect();
    assert_eq!(keys.len(), N, "every record scored");
    assert_eq!(out.len(), N, "no record scored twice");
    let (ca, cb) = (
        a.metric("scorer_records_consumed_total", "").unwrap(),
        b.metric("scorer_records_consumed_total", "").unwrap(),
    );
    assert!(ca > 0.0 && cb > 0.0, "both scored: {ca} + {cb}");
    assert_eq!(ca + cb, N as f64, "committed work adds up to the input");
}

#[test]
fn sigkill_mid_stream_then_restart_gives_exactly_one_prediction_per_record() {
    const N: usize = 6000;
    let t = Topics::create("kill", 6);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let records = patients("kill", N);
    produce_patients(&t.patients, &records);

    let tx = support::unique("tx-kill");
    // Small batches make the run long enough to be killed in the middle.
    let slow = ["--batch-max-records", "20"];
    let mut first = Scorer::start(&t, &tx, &slow);
    first.wait_ready(WAIT);
    let at_kill = first.wait_metric("scorer_records_consumed_total", "", |v| v >= 500.0, WAIT);
    first.kill();
    assert!(
        at_kill < N as f64,
        "killed mid-stream, not after the end ({at_kill})"
    );

    let mut second = Scorer::start(&t, &tx, &[]);
    second.wait_ready(WAIT);
    let out = read_committed(
        &t.predictions,
        N,
        Duration::from_secs(120),
        Duration::from_secs(3),
    );
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for r in &out {
        *count.entry(r.key_str()).or_default() += 1;
    }
    let duplicated: Vec<_> = count.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        duplicated.is_empty(),
        "duplicates visible to read_committed: {duplicated:?}"
    );
    assert_eq!(count.len(), N, "every record has a prediction");
    assert_eq!(out.len(), N);
}

#[test]
fn a_model_published_mid_stream_is_used_for_later_records_and_none_are_lost() {
    let t = Topics::create("swap", 3);
    let v1 = fixtures::model_version(1, 1.0);
    let v2 = fixtures::model_version(2, -1.0);
    let (m1, m2) = (
        Model::load(v1.clone()).unwrap(),
        Model::load(v2.clone()).unwrap(),
    );
    publish_model(&t.models, &v1);
    let mut scorer = Scorer::start(&t, &support::unique("tx"), &[]);
    scorer.wait_ready(WAIT);

    // A steady stream; v2 is published while it flows.
    let stream = std::thread::spawn({
        let topic = t.patients.clone();
        move || {
            let sender = support::Sender::new();
            for chunk in 0..20 {
                sender.send_patients(&topic, &patients(&format!("swap{chunk}"), 30));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(700));
    publish_model(&t.models, &v2);
    scorer.wait_metric("scorer_model_version", "", |v| v == 2.0, WAIT);
    let after: Vec<_> = patients("after-swap", 50);
    produce_patients(&t.patients, &after);
    stream.join().unwrap();

    let out = read_committed(&t.predictions, 650, WAIT, SETTLE);
    assert_eq!(
        out.len(),
        650,
        "no record lost or duplicated across the swap"
    );
    let mut versions = BTreeMap::new();
    let mut last_per_partition: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &out {
        let p = r.prediction();
        *versions.entry(p.model_version).or_insert(0) += 1;
        let last = last_per_partition.entry(r.partition).or_insert(0);
        assert!(
            p.model_version >= *last,
            "versions never go back within a partition"
        );
        *last = p.model_version;
        // Patients are fixtures::patient(30 + i % 50): recompute offline with the stated version.
        let i: usize = p.patient_id.rsplit('-').next().unwrap().parse().unwrap();
        let record = fixtures::patient(30 + (i % 50) as i32);
        let model = if p.model_version == 1 { &m1 } else { &m2 };
        let offline = model.predict(&record).probability;
        assert!(
            (p.probability - offline).abs() <= 1e-9,
            "{} scored by the version it names",
            p.patient_id
        );
        if p.patient_id.starts_with("after-swap") {
            assert_eq!(p.model_version, 2, "records sent after the swap use v2");
        }
    }
    assert!(versions[&1] > 0 && versions[&2] >= 50, "{versions:?}");
    assert_eq!(
        scorer.metric("scorer_model_swaps_total", "activated"),
        Some(2.0)
    );
}

#[test]
fn bad_records_go_to_the_dead_letter_topic_with_their_reason() {
    let t = Topics::create("dlq", 1);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let mut scorer = Scorer::start(&t, &support::unique("tx"), &[]);
    scorer.wait_ready(WAIT);

    let good = fixtures::patient(50);
    let good_bytes = heart_schemas::AvroRecord::encode(&good).unwrap();
    let out_of_range = heart_schemas::AvroRecord::encode(&PatientRecord {
        age: Some(500),
        ..fixtures::patient(50)
    })
    .unwrap();
    let mut foreign = good_bytes.clone();
    foreign[2..10].copy_from_slice(&[9; 8]);
    let cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("garbage", Some(b"{\"age\": 63}".to_vec()), "malformed_avro"),
        ("empty", None, "empty_value"),
        (
            "truncated",
            Some(good_bytes[..good_bytes.len() - 4].to_vec()),
            "malformed_avro",
        ),
        ("range", Some(out_of_range), "out_of_range"),
        ("foreign", Some(foreign), "unknown_schema"),
        ("good", Some(good_bytes), ""),
    ];
    let records: Vec<_> = cases
        .iter()
        .map(|(k, v, _)| (Some(k.as_bytes().to_vec()), v.clone()))
        .collect();
    produce(&t.patients, &records);

    let letters = read_committed(&t.dead_letters, 5, WAIT, SETTLE);
    assert_eq!(letters.len(), 5);
    for (offset, (key, value, reason)) in cases.iter().take(5).enumerate() {
        let read = letters.iter().find(|r| r.key_str() == *key).unwrap();
        let d = read.dead_letter();
        assert_eq!(d.reason, *reason, "{key}: {}", d.message);
        assert_eq!(read.headers[topics::HEADER_REASON], *reason);
        assert_eq!(d.original_value, *value, "{key}: original bytes kept");
        assert_eq!(d.original_key.as_deref(), Some(key.as_bytes()));
        assert_eq!(
            (d.source_topic.as_str(), d.source_partition),
            (t.patients.as_str(), 0)
        );
        assert_eq!(d.source_offset, offset as i64);
        assert!(!d.message.is_empty());
    }
    let range = letters
        .iter()
        .find(|r| r.key_str() == "range")
        .unwrap()
        .dead_letter();
    assert_eq!(
        range.message,
        "age = 500 is outside the allowed range 1..=120"
    );
    let predictions = read_committed(&t.predictions, 1, WAIT, SETTLE);
    assert_eq!(predictions.len(), 1);
    assert_eq!(predictions[0].key_str(), "good");
    assert_eq!(
        scorer.metric("scorer_records_dead_lettered_total", "malformed_avro"),
        Some(2.0)
    );
}

/// A missing output topic keeps the replica not ready with a reason that names it, consumes
/// nothing meanwhile, and once the topic exists every record is scored.
#[test]
fn a_missing_output_topic_is_named_in_readiness_and_the_replica_starts_once_it_exists() {
    let created = Topics::create("missing-output", 2);
    let t = Topics {
        predictions: support::unique("missing-output-predictions"),
        ..created
    };
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let records = patients("missing-output", 50);
    produce_patients(&t.patients, &records);
    let mut scorer = Scorer::start(&t, &support::unique("tx"), &[]);
    let deadline = Instant::now() + WAIT;
    let reason = loop {
        if let Some((503, body)) = http(scorer.port, "GET", "/readyz", None)
            && body.contains(&t.predictions)
        {
            break body;
        }
        assert!(Instant::now() < deadline, "{}", scorer.log_text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(reason.contains("--predictions-topic"), "{reason}");
    assert_eq!(
        scorer.metric("scorer_records_consumed_total", ""),
        Some(0.0)
    );
    support::create_topic(&t.predictions, 2);
    scorer.wait_ready(WAIT);
    let keys: BTreeSet<String> = records.iter().map(|r| r.patient_id.clone()).collect();
    let out = read_committed(&t.predictions, records.len(), WAIT, SETTLE);
    support::assert_exactly_once(&out, &keys);
    assert!(scorer.alive(), "{}", scorer.log_text());
}

#[test]
fn a_corrupt_model_version_is_rejected_and_the_active_model_stays() {
    let t = Topics::create("corrupt", 1);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let mut tampered = fixtures::model_version(2, 1.0);
    let mid = tampered.payload.len() / 2;
    tampered.payload[mid] ^= 0x40;
    publish_model(&t.models, &tampered);

    // At start the newest version is corrupt: the scorer falls back to the newest valid one.
    let mut scorer = Scorer::start(&t, &support::unique("tx"), &[]);
    scorer.wait_ready(WAIT);
    assert_eq!(scorer.metric("scorer_model_version", ""), Some(1.0));
    assert_eq!(
        scorer.metric("scorer_model_swaps_total", "rejected"),
        Some(1.0)
    );

    // A corrupt version published while running is rejected too; readiness is unaffected.
    let mut tampered3 = fixtures::model_version(3, 1.0);
    tampered3.checksum = "0".repeat(64);
    publish_model(&t.models, &tampered3);
    scorer.wait_metric("scorer_model_swaps_total", "rejected", |v| v == 2.0, WAIT);
    assert_eq!(scorer.metric("scorer_model_version", ""), Some(1.0));
    assert_eq!(http(scorer.port, "GET", "/readyz", None).unwrap().0, 200);
    assert!(scorer.log_text().contains("model version rejected"));

    publish_model(&t.models, &fixtures::model_version(4, 1.0));
    scorer.wait_metric("scorer_model_version", "", |v| v == 4.0, WAIT);
}

#[test]
fn sigterm_drains_commits_and_exits_zero() {
    let t = Topics::create("drain", 3);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let mut scorer = Scorer::start(&t, &support::unique("tx"), &[]);
    scorer.wait_ready(WAIT);
    produce_patients(&t.patients, &patients("drain", 200));
    read_committed(&t.predictions, 200, WAIT, Duration::ZERO);

    let started = Instant::now();
    let status = scorer.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        scorer.log_text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "drained within the 5 s bound (+ margin)"
    );
    assert!(
        scorer
            .log_text()
            .contains("drained and left the consumer group")
    );

    // Offsets were committed: a new replica in the group finds nothing left to score.
    let mut next = Scorer::start(&t, &support::unique("tx"), &[]);
    next.wait_ready(WAIT);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(next.metric("scorer_records_consumed_total", ""), Some(0.0));
    assert_eq!(read_committed(&t.predictions, 200, WAIT, SETTLE).len(), 200);
}

#[test]
fn sidecar_serves_predict_and_metrics_while_streaming() {
    let t = Topics::create("sidecar", 1);
    publish_model(&t.models, &fixtures::model_version(5, 1.0));
    let mut scorer = Scorer::start(&t, &support::unique("tx"), &[]);
    scorer.wait_ready(WAIT);
    let body = serde_json::to_string(&fixtures::patient(61)).unwrap();
    let (status, reply) = http(scorer.port, "POST", "/predict", Some(&body)).unwrap();
    assert_eq!(status, 200, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["model_version"], 5);
    let (status, reply) = http(scorer.port, "POST", "/predict", Some("{\"age\": 1000}")).unwrap();
    assert_eq!(status, 422, "{reply}");
    assert!(reply.contains("\"field\":\"age\""));
    let (status, _) = http(scorer.port, "GET", "/nope", None).unwrap();
    assert_eq!(status, 404);
    let (_, metrics) = http(scorer.port, "GET", "/metrics", None).unwrap();
    for name in [
        "scorer_http_requests_total{method=\"POST\",route=\"/predict\",status=\"200\"} 1",
        "scorer_http_requests_total{method=\"POST\",route=\"/predict\",status=\"422\"} 1",
        "scorer_model_active 1",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(name), "missing {name}");
    }
}

#[test]
fn model_file_mode_serves_without_kafka() {
    let dir = std::env::temp_dir().join(support::unique("model-file"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.avro");
    let v = fixtures::model_version(9, 1.0);
    std::fs::write(&path, heart_schemas::AvroRecord::encode(&v).unwrap()).unwrap();
    let t = Topics {
        patients: "unused".into(),
        predictions: "unused".into(),
        dead_letters: "unused".into(),
        models: "unused".into(),
        group: "unused".into(),
    };
    // An unreachable broker address: the sidecar must not need it.
    let mut scorer = Scorer::start(
        &t,
        "unused",
        &[
            "--model-file",
            path.to_str().unwrap(),
            "--bootstrap-servers",
            "127.0.0.1:1",
        ],
    );
    scorer.wait_ready(WAIT);
    let body = serde_json::to_string(&fixtures::patient(61)).unwrap();
    let (status, reply) = http(scorer.port, "POST", "/predict", Some(&body)).unwrap();
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("\"model_version\":9"));
}

/// Issue: no dashboard panel or alert may point at a metric the scorer does not export. A real
/// Prometheus scrapes a real scorer during a stream, and every expression must return data.
#[test]
fn every_dashboard_and_rule_expression_returns_data_from_a_live_scorer() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let t = Topics::create("promql", 3);
    // A shadow and explanations too, so that their panels have data.
    let (scorer, _) = with_shadow(&t, 0.5, &["--explain-stream"]);

    let stop = Arc::new(AtomicBool::new(false));
    let stream = std::thread::spawn({
        let (topic, stop) = (t.patients.clone(), Arc::clone(&stop));
        move || {
            let sender = support::Sender::new();
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut records: Vec<support::KeyValue> = patients(&format!("prom{round}"), 20)
                    .iter()
                    .map(|r| {
                        (
                            Some(r.patient_id.clone().into_bytes()),
                            Some(heart_schemas::AvroRecord::encode(r).unwrap()),
                        )
                    })
                    .collect();
                records.push((Some(b"bad".to_vec()), Some(b"not avro".to_vec())));
                sender.send(&topic, &records);
                round += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    let body = serde_json::to_string(&fixtures::patient(61)).unwrap();
    for _ in 0..5 {
        http(scorer.port, "POST", "/predict", Some(&body)).unwrap();
    }
    http(scorer.port, "POST", "/predict", Some("{}")).unwrap();
    http(scorer.port, "GET", "/nope", None).unwrap();
    // Let consumer-lag statistics (every 5 s) and a few batches happen first.
    std::thread::sleep(Duration::from_secs(6));

    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/deploy/check-promql");
    let output = std::process::Command::new(&script)
        .arg(format!("http://127.0.0.1:{}/metrics", scorer.port))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    stop.store(true, Ordering::Relaxed);
    stream.join().unwrap();
    assert!(
        output.status.success(),
        "check-promql failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The synchronous fallback: with its broker gone, the sidecar keeps scoring with the model it
/// has. This test runs a broker of its own (scripts/kafka on a free port) so it can stop it.
#[test]
fn predict_keeps_answering_while_the_broker_is_down() {
    let port = support::free_port();
    let controller = support::free_port();
    let state = std::env::temp_dir().join(support::unique("kafka-outage"));
    let kafka = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka");
    let broker = support::OwnBroker::start(&kafka, port, controller, &state);
    let t = Topics {
        patients: "patients".into(),
        predictions: "predictions".into(),
        dead_letters: "dead-letters".into(),
        models: "models".into(),
        group: support::unique("outage"),
    };
    support::with_bootstrap(&broker.bootstrap(), || {
        publish_model(&t.models, &fixtures::model_version(3, 1.0));
    });
    let mut scorer =
        Scorer::start_with_bootstrap(&t, &support::unique("tx"), &[], &broker.bootstrap());
    scorer.wait_ready(WAIT);
    drop(broker); // stops it
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the broker is really gone"
    );

    let body = serde_json::to_string(&fixtures::patient(61)).unwrap();
    for _ in 0..3 {
        let (status, reply) = http(scorer.port, "POST", "/predict", Some(&body)).unwrap();
        assert_eq!(status, 200, "{reply}");
        assert!(reply.contains("\"model_version\":3"), "{reply}");
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(http(scorer.port, "GET", "/healthz", None).unwrap().0, 200);
}

/// Backpressure: when the broker throttles the scorer's output (a produce quota), the scorer
/// does not pull the backlog into memory: fetching pauses while the hand-off is full, its fetch
/// queue stays within --max-queued-kbytes (plus one fetch per partition) and the lag stays
/// large. Uses `scripts/kafka quota`, so the
/// broker must be one `scripts/kafka` runs (as in scripts/test).
#[test]
fn memory_stays_bounded_when_the_output_side_is_slow() {
    const N: usize = 150_000;
    let t = Topics::create("slow", 3);
    publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let sender = support::Sender::new();
    for chunk in 0..(N / 10_000) {
        sender.send_patients(&t.patients, &patients(&format!("slow{chunk}"), 10_000));
    }
    let client = support::unique("slow-client");
    let kafka = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka");
    let quota = std::process::Command::new(&kafka)
        .args(["quota", &client, "20000"])
        .output()
        .unwrap();
    assert!(
        quota.status.success(),
        "scripts/kafka quota failed (is the broker run by scripts/kafka?):\n{}",
        String::from_utf8_lossy(&quota.stderr)
    );

    let property = format!("client.id={client}");
    let mut scorer = Scorer::start(
        &t,
        &support::unique("tx"),
        &[
            "--kafka-property",
            &property,
            "--max-queued-kbytes",
            "1024",
            "--batch-max-records",
            "500",
        ],
    );
    scorer.wait_ready(WAIT);
    scorer.wait_metric("scorer_records_consumed_total", "", |v| v > 0.0, WAIT);
    // Two librdkafka statistics intervals (5 s) under throttling.
    let mut peak_queue = 0.0f64;
    let mut paused = 0.0f64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(11) {
        peak_queue = peak_queue.max(scorer.metric("scorer_fetch_queue_bytes", "").unwrap_or(0.0));
        paused = paused.max(scorer.metric("scorer_fetch_paused", "").unwrap_or(0.0));
        std::thread::sleep(Duration::from_millis(250));
    }
    let consumed = scorer.metric("scorer_records_consumed_total", "").unwrap();
    let lag: f64 = (0..3)
        .filter_map(|p| scorer.metric("scorer_consumer_lag_records", &format!("partition=\"{p}\"")))
        .sum();
    // The prefetch bound, plus one fetch (fetch.message.max.bytes, 1 MiB) per partition that
    // librdkafka may overshoot it by, plus 1 MiB of slack. Without the bound it reached 27 MB.
    let bound = (1024.0 + 3.0 * 1024.0 + 1024.0) * 1024.0;
    assert!(
        consumed < N as f64 / 2.0,
        "the quota made the output slow ({consumed} scored)"
    );
    assert_eq!(
        paused, 1.0,
        "fetching paused while the output stage was behind"
    );
    assert!(
        peak_queue <= bound,
        "fetch queue {peak_queue} B exceeded {bound} B"
    );
    assert!(
        lag > 10.0 * 1000.0,
        "the backlog stayed on the broker (lag {lag})"
    );
    let _ = std::process::Command::new(&kafka)
        .args(["quota", &client, "0"])
        .output();
}
