//! Oracles shared by the fuzz targets in `fuzz_targets/`. Each one restates a rule of
//! `heart-schemas` from the field table or from apache-avro directly, so that a bug in the code
//! under test cannot also hide in the check that is meant to catch it.
//!
//! - [`same_record`]: equality with doubles compared by bits (a decoded record may hold NaN).
//! - [`violated_fields`] and [`check_validation`]: which fields break [`FIELDS`], and whether
//!   `validate` names exactly those.
//! - [`check_avro_round_trip`]: encode, decode and re-encode, by hand and by apache-avro.
//! - [`decode_reference`]: the reference decoder, apache-avro's generic reader used strictly.
//! - [`Generic`]: PatientRecord through the crate's default (apache-avro) codec path.

use std::io::Read;

use apache_avro::types::Value;
use apache_avro::{from_avro_datum, to_avro_datum};
use heart_schemas::codec::SchemaInfo;
use heart_schemas::patient::MAX_PATIENT_ID_BYTES;
use heart_schemas::{AvroRecord, DecodeError, FIELDS, FieldKind, PatientRecord};

/// Length of the single-object header: marker `C3 01` and the 8-byte fingerprint.
pub const HEADER_LEN: usize = 10;

/// Largest allocation apache-avro may make while decoding. Fuzz inputs are a few KiB, so no
/// string that fits in one is refused; without a limit a 10-byte input claiming a 500 MB string
/// makes apache-avro allocate 500 MB (its default limit is 512 MiB), which only slows fuzzing.
const MAX_AVRO_ALLOCATION_BYTES: usize = 1 << 20;

/// Whether two records are equal field by field, doubles compared bit for bit.
pub fn same_record(a: &PatientRecord, b: &PatientRecord) -> bool {
    a.patient_id == b.patient_id
        && a.event_time == b.event_time
        && FIELDS
            .iter()
            .all(|spec| same_value(field_value(a, spec.name), field_value(b, spec.name)))
}

fn same_value(a: Option<f64>, b: Option<f64>) -> bool {
    a.map(f64::to_bits) == b.map(f64::to_bits)
}

/// The value of the clinical attribute called `name`, read from the struct field of that name
/// (not through `PatientRecord::features`, so a mix-up there shows).
///
/// # Panics
/// If `name` is not one of the 13 attributes: `FIELDS` and the struct disagree.
pub fn field_value(rec: &PatientRecord, name: &str) -> Option<f64> {
    let int = |v: Option<i32>| v.map(f64::from);
    match name {
        "age" => int(rec.age),
        "sex" => int(rec.sex),
        "cp" => int(rec.cp),
        "trestbps" => rec.trestbps,
        "chol" => rec.chol,
        "fbs" => int(rec.fbs),
        "restecg" => int(rec.restecg),
        "thalach" => rec.thalach,
        "exang" => int(rec.exang),
        "oldpeak" => rec.oldpeak,
        "slope" => int(rec.slope),
        "ca" => rec.ca.map(f64::from),
        "thal" => rec.thal.map(f64::from),
        other => panic!("FIELDS names {other:?}, which PatientRecord does not have"),
    }
}

/// Whether `value` is allowed for the attribute `spec` describes (`None` = missing).
pub fn allowed(spec: &heart_schemas::FieldSpec, value: Option<f64>) -> bool {
    // Every attribute may be missing (schema version 2); the scorer's policy decides later.
    let Some(x) = spec.normalize(value) else {
        return true;
    };
    x.is_finite()
        && match spec.kind {
            FieldKind::Numeric { min, max } => min <= x && x <= max,
            FieldKind::Categorical { allowed } => allowed.iter().any(|&a| f64::from(a) == x),
        }
}

/// The fields of `rec` that break their spec, in the order `validate` reports them.
pub fn violated_fields(rec: &PatientRecord) -> Vec<&'static str> {
    let mut bad = Vec::new();
    if rec.patient_id.is_empty() || rec.patient_id.len() > MAX_PATIENT_ID_BYTES {
        bad.push("patient_id");
    }
    for spec in &FIELDS {
        if !allowed(spec, field_value(rec, spec.name)) {
            bad.push(spec.name);
        }
    }
    bad
}

/// Checks that `validate` accepts `rec` exactly when every field is within its spec, and that
/// otherwise it names exactly the fields that are not, in a message and a JSON body that build.
///
/// # Panics
/// When it does not.
pub fn check_validation(rec: &PatientRecord) {
    let expected = violated_fields(rec);
    match rec.validate() {
        Ok(()) => assert!(
            expected.is_empty(),
            "validate accepted {rec:?}, but {expected:?} break their specs"
        ),
        Err(invalid) => {
            let named: Vec<&str> = invalid.violations.iter().map(|v| v.field).collect();
            assert_eq!(
                named, expected,
                "validate named the wrong fields for {rec:?}"
            );
            let message = invalid.to_string();
            for field in named {
                assert!(message.contains(field), "{message:?} does not name {field}");
            }
            // The scorer's 422 body and dead-letter message are built from these.
            if let Err(e) = serde_json::to_string(&invalid.violations) {
                panic!("violations of {rec:?} do not serialise: {e}");
            }
        }
    }
}

/// Encodes `rec`, decodes it back, and checks that nothing changed, that the hand-written
/// encoder writes what apache-avro writes, and that apache-avro reads it back the same.
/// Returns the encoding.
///
/// # Panics
/// When any of that fails.
pub fn check_avro_round_trip(rec: &PatientRecord) -> Vec<u8> {
    let bytes = rec
        .encode()
        .unwrap_or_else(|e| panic!("{rec:?} does not encode: {e}"));
    let back = PatientRecord::decode(&bytes)
        .unwrap_or_else(|e| panic!("the encoding of {rec:?} does not decode: {e}"));
    assert!(same_record(rec, &back), "{rec:?} came back as {back:?}");
    let again = back
        .encode()
        .unwrap_or_else(|e| panic!("{back:?} does not encode: {e}"));
    assert_eq!(again, bytes, "encoding {rec:?} is not deterministic");

    let reference = to_avro_datum(&PatientRecord::schema_info().schema, rec.to_value())
        .unwrap_or_else(|e| panic!("apache-avro cannot encode {rec:?}: {e}"));
    assert_eq!(
        &bytes[HEADER_LEN..],
        reference.as_slice(),
        "the hand-written and apache-avro encoders disagree on {rec:?}"
    );
    let generic = Generic(rec.clone())
        .encode()
        .unwrap_or_else(|e| panic!("the generic path cannot encode {rec:?}: {e}"));
    assert_eq!(generic, bytes, "the generic encoder disagrees on {rec:?}");
    for (path, read) in [
        ("apache-avro", decode_reference(&bytes)),
        ("the generic path", Generic::decode(&bytes).map(|g| g.0)),
    ] {
        let read = read.unwrap_or_else(|e| panic!("{path} cannot read {rec:?}: {e}"));
        assert!(same_record(rec, &read), "{path} read {rec:?} as {read:?}");
    }
    bytes
}

/// Decodes a single-object message with apache-avro's generic reader, strictly: it fails if
/// the reader asks for a byte past the end (apache-avro itself reads a union or a string cut off
/// there as null) or leaves bytes over. Written here, apart from `heart-schemas`, as the
/// reference both of its decoders are held to. Non-minimal varints are accepted, as
/// apache-avro accepts them.
///
/// # Errors
/// [`DecodeError::Malformed`] for a body apache-avro rejects or that is truncated,
/// [`DecodeError::TrailingBytes`], a header error, or a field type error.
pub fn decode_reference(bytes: &[u8]) -> Result<PatientRecord, DecodeError> {
    apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION_BYTES);
    let record = PatientRecord::NAME;
    let body = match PatientRecord::frame(bytes)? {
        heart_schemas::Framed::Current(body) | heart_schemas::Framed::Legacy(body) => body,
        _ => return PatientRecord::decode(bytes),
    };
    let mut reader = Strict {
        rest: body,
        past_end: false,
    };
    let value =
        from_avro_datum(&PatientRecord::schema_info().schema, &mut reader, None).map_err(|e| {
            DecodeError::Malformed {
                record,
                detail: e.to_string(),
            }
        })?;
    if reader.past_end {
        return Err(DecodeError::Malformed {
            record,
            detail: "truncated".to_owned(),
        });
    }
    if !reader.rest.is_empty() {
        return Err(DecodeError::TrailingBytes {
            record,
            extra: reader.rest.len(),
        });
    }
    PatientRecord::from_value(value)
}

/// A body being read that notes whether the reader asked for more bytes than there are.
struct Strict<'a> {
    rest: &'a [u8],
    past_end: bool,
}

impl Read for Strict<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.rest.is_empty() && !buf.is_empty() {
            self.past_end = true;
        }
        self.rest.read(buf)
    }
}

/// A PatientRecord encoded and decoded through `AvroRecord`'s default, apache-avro-based
/// `encode_body` and `decode_body`: the path DeadLetter and ModelVersion take, which the
/// hand-written PatientRecord codec overrides. Fuzzing it through PatientRecord's schema covers
/// that shared code.
#[derive(Debug)]
pub struct Generic(pub PatientRecord);

impl AvroRecord for Generic {
    const NAME: &'static str = PatientRecord::NAME;

    fn schema_info() -> &'static SchemaInfo {
        PatientRecord::schema_info()
    }

    fn to_value(&self) -> Value {
        self.0.to_value()
    }

    fn from_value(value: Value) -> Result<Self, DecodeError> {
        PatientRecord::from_value(value).map(Generic)
    }
}
