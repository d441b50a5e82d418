//! Fuzzes `PatientRecord::from_json`, the parser behind `POST /predict` and `/predict/batch`,
//! fed as the scorer feeds it: the body parsed by serde_json, then each JSON object in it.
//!
//! For any input bytes:
//! 1. `from_json` does not panic, and accepts an object exactly when every field is present (or
//!    may be null), a number (a whole one where the field is an integer) and allowed by its spec,
//!    as read here from `FIELDS` independently; otherwise it names exactly the bad fields, once
//!    each, in field order.
//! 2. An accepted record holds the JSON's values (with the documented defaults for `patient_id`
//!    and `event_time`), validates, and comes back unchanged through the Avro codec, as it does
//!    when the producer sends it to the scorer.
#![no_main]

use heart_fuzz::{allowed, check_avro_round_trip, check_validation, field_value};
use heart_schemas::patient::MAX_PATIENT_ID_BYTES;
use heart_schemas::{FIELDS, PatientRecord};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// The event time `from_json` is given for objects without one.
const DEFAULT_EVENT_TIME: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match &body {
        Value::Object(object) => check(object),
        Value::Array(items) => items.iter().filter_map(Value::as_object).for_each(check),
        _ => {}
    }
});

fn check(object: &Map<String, Value>) {
    let bad = bad_fields(object);
    match PatientRecord::from_json(object, DEFAULT_EVENT_TIME) {
        Ok(rec) => {
            assert!(
                bad.is_empty(),
                "from_json accepted {object:?} as {rec:?}, but {bad:?} are bad"
            );
            check_values(object, &rec);
            check_validation(&rec);
            check_avro_round_trip(&rec);
        }
        Err(invalid) => {
            let named: Vec<&str> = invalid.violations.iter().map(|v| v.field).collect();
            assert_eq!(
                named, bad,
                "from_json named the wrong fields for {object:?}"
            );
            let _ = invalid.to_string();
            if let Err(e) = serde_json::to_string(&invalid.violations) {
                panic!("violations of {object:?} do not serialise: {e}");
            }
        }
    }
}

/// The fields `from_json` must report, in field order (`patient_id`, `event_time`, then
/// `FIELDS`).
fn bad_fields(object: &Map<String, Value>) -> Vec<&'static str> {
    let mut bad = Vec::new();
    match present(object, "patient_id") {
        None => {}
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_PATIENT_ID_BYTES => {}
        Some(_) => bad.push("patient_id"),
    }
    if present(object, "event_time").is_some_and(|v| v.as_i64().is_none()) {
        bad.push("event_time");
    }
    for spec in &FIELDS {
        let ok = match present(object, spec.name) {
            None => true,
            Some(v) => v
                .as_f64()
                .filter(|x| !spec.integer || x.fract() == 0.0)
                .is_some_and(|x| allowed(spec, Some(x))),
        };
        if !ok {
            bad.push(spec.name);
        }
    }
    bad
}

/// The value of `key`, treating JSON `null` as absent.
fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

/// Checks that an accepted record holds exactly the values of the JSON object.
fn check_values(object: &Map<String, Value>, rec: &PatientRecord) {
    let id = present(object, "patient_id").map_or(Some("anonymous"), Value::as_str);
    assert_eq!(
        Some(rec.patient_id.as_str()),
        id,
        "patient_id of {object:?}"
    );
    let time = present(object, "event_time").map_or(Some(DEFAULT_EVENT_TIME), Value::as_i64);
    assert_eq!(Some(rec.event_time), time, "event_time of {object:?}");
    for spec in &FIELDS {
        let json = present(object, spec.name).and_then(Value::as_f64);
        assert_eq!(
            field_value(rec, spec.name),
            json,
            "{} of {object:?} became {rec:?}",
            spec.name
        );
    }
}
