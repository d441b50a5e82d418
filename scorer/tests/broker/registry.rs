//! Both framings on one topic, writer schemas from a Schema Registry (the stand-in of
//! `scripts/schema-registry`), and a registry outage that makes records wait, not dead letters.

use std::collections::BTreeSet;
use std::time::Duration;

use apache_avro::types::Value;
use heart_registry::{StandIn, value_subject};
use heart_schemas::{AvroRecord, DeadLetter, Framed, Framing, PatientRecord, Prediction};

use crate::fixtures;
use crate::support::{self, Scorer, Sender, Topics, http, read_committed};

const WAIT: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(2);

fn patient(id: String) -> PatientRecord {
    PatientRecord {
        patient_id: id,
        event_time: heart_schemas::now_ms(),
        ..fixtures::patient(57)
    }
}

/// PatientRecord as a newer producer writes it: one more field, with a default, at the front.
fn newer_schema() -> String {
    let mut schema: serde_json::Value =
        serde_json::from_str(PatientRecord::schema_info().text).unwrap();
    schema["fields"].as_array_mut().unwrap().insert(
        0,
        serde_json::json!({"name": "source_system", "type": "string", "default": "unknown"}),
    );
    schema.to_string()
}

/// `record` written with [`newer_schema`] in the Confluent framing with registry id `id`.
fn encode_newer(record: &PatientRecord, schema: &apache_avro::Schema, id: u32) -> Vec<u8> {
    let Value::Record(mut fields) = record.to_value() else {
        unreachable!()
    };
    fields.insert(0, ("source_system".into(), Value::String("ehr-7".into())));
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend(apache_avro::to_avro_datum(schema, Value::Record(fields)).unwrap());
    out
}

fn confluent(record: &PatientRecord, id: u32) -> Vec<u8> {
    let mut out = Vec::new();
    record
        .encode_framed_into(Framing::Confluent { id }, &mut out)
        .unwrap();
    out
}

/// The single-object message with the fingerprint builds before the specification fix wrote.
fn legacy(record: &PatientRecord) -> Vec<u8> {
    let mut out = record.encode().unwrap();
    out[2..10].copy_from_slice(&PatientRecord::schema_info().legacy_fingerprint);
    out
}

#[test]
fn both_framings_on_one_topic_are_scored_and_outputs_carry_registry_ids() {
    let registry = StandIn::start();
    let client = registry.registry();
    let t = Topics::create("framings", 3);
    let subject = value_subject(&t.patients);
    let current_id = client
        .register(&subject, PatientRecord::schema_info().text)
        .unwrap();
    let newer = newer_schema();
    let newer_id = client.register(&subject, &newer).unwrap();
    assert_ne!(current_id, newer_id);
    let newer_parsed = apache_avro::Schema::parse_str(&newer).unwrap();

    support::publish_model(&t.models, &fixtures::model_version(1, 1.2));
    let mut scorer = Scorer::start(
        &t,
        &support::unique("tx"),
        &[
            "--schema-registry-url",
            registry.url(),
            "--output-framing",
            "confluent",
            "--schema-registry-auto-register",
        ],
    );
    scorer.wait_ready(WAIT);

    let mut sent = Vec::new();
    let mut keys = BTreeSet::new();
    for i in 0..40 {
        let r = patient(format!("framing-{i}"));
        let value = match i % 4 {
            0 => r.encode().unwrap(),
            1 => legacy(&r),
            2 => confluent(&r, current_id),
            _ => encode_newer(&r, &newer_parsed, newer_id),
        };
        keys.insert(r.patient_id.clone());
        sent.push((Some(r.patient_id.into_bytes()), Some(value)));
    }
    // An id no registry has: a dead letter, not a wait.
    let stray = patient("stray".into());
    sent.push((Some(b"stray".to_vec()), Some(confluent(&stray, 987_654))));
    Sender::new().send(&t.patients, &sent);

    let predictions_id = client
        .lookup(
            &value_subject(&t.predictions),
            Prediction::schema_info().text,
        )
        .unwrap();
    let out = read_committed(&t.predictions, 40, WAIT, SETTLE);
    support::assert_exactly_once(&out, &keys);
    for read in &out {
        let value = read.value.as_deref().unwrap();
        let Framed::Registry { id, body } = Prediction::frame(value).unwrap() else {
            panic!("prediction not in the Confluent framing: {value:02x?}");
        };
        assert_eq!(id, predictions_id);
        let p = Prediction::decode_body(body).unwrap();
        assert_eq!(p.patient_id, read.key_str());
        assert_eq!(p.model_version, 1);
    }
    let dead = read_committed(&t.dead_letters, 1, WAIT, SETTLE);
    assert_eq!(dead.len(), 1);
    let Framed::Registry { body, .. } =
        DeadLetter::frame(dead[0].value.as_deref().unwrap()).unwrap()
    else {
        panic!("dead letter not in the Confluent framing");
    };
    let letter = DeadLetter::decode_body(body).unwrap();
    assert_eq!(letter.reason, "unknown_schema", "{}", letter.message);
    assert!(letter.message.contains("987654"), "{}", letter.message);

    assert_eq!(
        scorer.metric("scorer_legacy_fingerprint_records_total", ""),
        Some(10.0)
    );
    assert_eq!(
        scorer.metric("scorer_schema_registry_lookups_total", "outcome=\"found\""),
        Some(2.0),
        "each id is looked up once"
    );
}

/// A stand-in registry with the patients subject registered (its id), and topics whose models
/// topic holds version 1.
fn registered(test: &str) -> (StandIn, Topics, u32) {
    let registry = StandIn::start();
    let t = Topics::create(test, 2);
    let id = registry
        .registry()
        .register(
            &value_subject(&t.patients),
            PatientRecord::schema_info().text,
        )
        .unwrap();
    support::publish_model(&t.models, &fixtures::model_version(1, 1.2));
    (registry, t, id)
}

/// Sends `records` Confluent-framed with writer schema `id`, keyed by patient id; their keys.
fn send_confluent(topic: &str, records: &[PatientRecord], id: u32) -> BTreeSet<String> {
    let sent: Vec<_> = records
        .iter()
        .map(|r| {
            (
                Some(r.patient_id.clone().into_bytes()),
                Some(confluent(r, id)),
            )
        })
        .collect();
    Sender::new().send(topic, &sent);
    records.iter().map(|r| r.patient_id.clone()).collect()
}

#[test]
fn records_wait_while_the_registry_is_down_and_none_is_dead_lettered() {
    let (registry, t, id) = registered("registry-outage");
    let mut scorer = Scorer::start(
        &t,
        &support::unique("tx"),
        &[
            "--schema-registry-url",
            registry.url(),
            "--schema-registry-timeout-ms",
            "500",
            "--stall-timeout-ms",
            "2000",
        ],
    );
    scorer.wait_ready(WAIT);
    registry.set_outage(true);

    let records: Vec<_> = (0..30).map(|i| patient(format!("wait-{i}"))).collect();
    let keys = send_confluent(&t.patients, &records, id);

    scorer.wait_metric(
        "scorer_schema_registry_waiting_partitions",
        "",
        |v| v >= 1.0,
        WAIT,
    );
    let started = std::time::Instant::now();
    let not_ready = loop {
        match http(scorer.port, "GET", "/readyz", None) {
            Some((503, body)) => break body,
            _ if started.elapsed() > WAIT => panic!("still ready:\n{}", scorer.log_text()),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(not_ready.contains("schema registry"), "{not_ready}");
    assert_eq!(
        scorer
            .metric("scorer_records_dead_lettered_total", "")
            .unwrap_or(0.0),
        0.0
    );
    assert!(scorer.alive());

    registry.set_outage(false);
    let out = read_committed(&t.predictions, records.len(), WAIT, SETTLE);
    support::assert_exactly_once(&out, &keys);
    scorer.wait_ready(WAIT);
    assert_eq!(
        scorer.metric("scorer_schema_registry_waiting_partitions", ""),
        Some(0.0)
    );
    let dead = read_committed(&t.dead_letters, 0, Duration::from_secs(1), SETTLE);
    assert!(dead.is_empty(), "{} dead letters", dead.len());
}

/// A partition held for the registry that moves to another replica and back is read again
/// when the registry answers: librdkafka keeps a pause across a revoke and a re-assignment, so
/// the replica must resume what it gives away.
#[test]
fn a_held_partition_that_moves_away_and_back_is_scored_once_the_registry_answers() {
    let (registry, t, id) = registered("registry-move");
    let flags = [
        "--schema-registry-url",
        registry.url(),
        "--schema-registry-timeout-ms",
        "500",
    ];
    let mut a = Scorer::start(&t, &support::unique("tx-a"), &flags);
    a.wait_ready(WAIT);
    registry.set_outage(true);
    let records: Vec<_> = (0..40).map(|i| patient(format!("move-{i}"))).collect();
    let keys = send_confluent(&t.patients, &records, id);
    a.wait_metric(
        "scorer_schema_registry_waiting_partitions",
        "",
        |v| v >= 2.0,
        WAIT,
    );

    // B takes one of A's held partitions (cooperative-sticky), then leaves: it comes back.
    let mut b = Scorer::start(&t, &support::unique("tx-b"), &flags);
    b.wait_metric("scorer_assigned_partitions", "", |v| v >= 1.0, WAIT);
    a.wait_metric("scorer_assigned_partitions", "", |v| v <= 1.0, WAIT);
    assert!(b.terminate(WAIT).success());
    a.wait_metric("scorer_assigned_partitions", "", |v| v >= 2.0, WAIT);

    registry.set_outage(false);
    let out = read_committed(&t.predictions, records.len(), WAIT, SETTLE);
    support::assert_exactly_once(&out, &keys);
    a.wait_metric(
        "scorer_schema_registry_waiting_partitions",
        "",
        |v| v == 0.0,
        WAIT,
    );
    assert!(a.alive());
}

#[test]
fn a_missing_output_subject_is_a_startup_error_that_names_it() {
    let registry = StandIn::start();
    let t = Topics::create("registry-subject", 1);
    support::publish_model(&t.models, &fixtures::model_version(1, 1.2));
    let mut scorer = Scorer::start(
        &t,
        &support::unique("tx"),
        &[
            "--schema-registry-url",
            registry.url(),
            "--output-framing",
            "confluent",
        ],
    );
    let status = scorer.wait_exit(WAIT);
    assert!(!status.success());
    let log = scorer.log_text();
    assert!(log.contains(&value_subject(&t.predictions)), "{log}");
    assert!(log.contains("--schema-registry-auto-register"), "{log}");
}

/// `record` written with PatientRecord schema version 1 (every attribute but ca and thal
/// required), behind `framing`'s header. `record` must have the 11 attributes set.
fn version_1(record: &PatientRecord, framing: Framing) -> Vec<u8> {
    let v1 = &PatientRecord::schema_info().earlier[0];
    let int = |v: Option<i32>| Value::Int(v.unwrap());
    let double = |v: Option<f64>| Value::Double(v.unwrap());
    let opt = |v: Option<i32>| match v {
        Some(x) => Value::Union(1, Box::new(Value::Int(x))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    let value = Value::Record(vec![
        (
            "patient_id".into(),
            Value::String(record.patient_id.clone()),
        ),
        (
            "event_time".into(),
            Value::TimestampMillis(record.event_time),
        ),
        ("age".into(), int(record.age)),
        ("sex".into(), int(record.sex)),
        ("cp".into(), int(record.cp)),
        ("trestbps".into(), double(record.trestbps)),
        ("chol".into(), double(record.chol)),
        ("fbs".into(), int(record.fbs)),
        ("restecg".into(), int(record.restecg)),
        ("thalach".into(), double(record.thalach)),
        ("exang".into(), int(record.exang)),
        ("oldpeak".into(), double(record.oldpeak)),
        ("slope".into(), int(record.slope)),
        ("ca".into(), opt(record.ca)),
        ("thal".into(), opt(record.thal)),
    ]);
    let mut out = match framing {
        Framing::SingleObject => {
            let mut h = vec![0xC3, 0x01];
            h.extend_from_slice(&v1.fingerprint);
            h
        }
        Framing::Confluent { id } => {
            let mut h = vec![0];
            h.extend_from_slice(&id.to_be_bytes());
            h
        }
    };
    out.extend(apache_avro::to_avro_datum(&v1.schema, value).unwrap());
    out
}

#[test]
fn records_missing_attributes_in_both_schema_versions_and_framings_are_imputed_and_named() {
    let registry = StandIn::start();
    let client = registry.registry();
    let t = Topics::create("missing", 2);
    let subject = value_subject(&t.patients);
    let v1_id = client
        .register(&subject, PatientRecord::schema_info().earlier[0].text)
        .unwrap();
    let v2_id = client
        .register(&subject, PatientRecord::schema_info().text)
        .unwrap();
    assert_ne!(v1_id, v2_id);

    support::publish_model(&t.models, &fixtures::model_version(1, 1.2));
    let mut scorer = Scorer::start(
        &t,
        &support::unique("tx"),
        &["--schema-registry-url", registry.url()],
    );
    scorer.wait_ready(WAIT);

    let no_exercise_test = PatientRecord {
        slope: None,
        ca: None,
        thal: None,
        chol: None,
        ..patient("v2-single".into())
    };
    let no_fbs = PatientRecord {
        fbs: None,
        ca: None,
        ..patient("v2-confluent".into())
    };
    let v1_nulls = PatientRecord {
        ca: None,
        thal: None,
        ..patient("v1-single".into())
    };
    let v1_zero_chol = PatientRecord {
        chol: Some(0.0), // version 1 had no null: 0 was how a site said "not measured"
        thal: None,
        ..patient("v1-confluent".into())
    };
    let no_age = PatientRecord {
        age: None,
        ..patient("no-age".into())
    };
    let sent = [
        (no_exercise_test.encode().unwrap(), &no_exercise_test),
        (confluent(&no_fbs, v2_id), &no_fbs),
        (version_1(&v1_nulls, Framing::SingleObject), &v1_nulls),
        (
            version_1(&v1_zero_chol, Framing::Confluent { id: v1_id }),
            &v1_zero_chol,
        ),
        (no_age.encode().unwrap(), &no_age),
    ];
    let records: Vec<_> = sent
        .iter()
        .map(|(v, r)| (Some(r.patient_id.clone().into_bytes()), Some(v.clone())))
        .collect();
    Sender::new().send(&t.patients, &records);

    let out = read_committed(&t.predictions, 4, WAIT, SETTLE);
    let imputed: BTreeSet<(String, String)> = out
        .iter()
        .map(|read| {
            let p = Prediction::decode(read.value.as_deref().unwrap()).unwrap();
            (p.patient_id, p.imputed_fields.to_string())
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("v2-single", "chol, slope, ca, thal"),
        ("v2-confluent", "fbs, ca"),
        ("v1-single", "ca, thal"),
        ("v1-confluent", "chol, thal"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(imputed, want);
    assert_eq!(out.len(), 4, "exactly once");

    let dead = read_committed(&t.dead_letters, 1, WAIT, SETTLE);
    assert_eq!(dead.len(), 1);
    let letter = DeadLetter::decode(dead[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(letter.reason, "too_many_missing");
    assert_eq!(
        letter.message,
        "missing age (1 of 13); age may never be imputed"
    );

    scorer.wait_metric(
        "scorer_imputed_fields_total",
        "field=\"ca\"",
        |v| v >= 3.0,
        WAIT,
    );
    assert_eq!(
        scorer.metric("scorer_imputed_fields_total", "field=\"thal\""),
        Some(3.0)
    );
    assert_eq!(
        scorer.metric("scorer_imputed_fields_total", "field=\"age\""),
        Some(0.0)
    );
}
