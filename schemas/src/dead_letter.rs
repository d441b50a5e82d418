//! Dead letters: records the scorer could not score, with a stable reason code.

use std::sync::LazyLock;

use apache_avro::types::Value;
use serde::Serialize;

use crate::codec::{AvroRecord, FieldReader, SchemaInfo, nullable, record};
use crate::error::DecodeError;
use crate::patient::Invalid;

static SCHEMA: LazyLock<SchemaInfo> =
    LazyLock::new(|| SchemaInfo::parse(include_str!("../avro/dead_letter.avsc")));

/// Why a record was dead-lettered. The codes are stable: they appear in the DLQ header, the
/// `reason` log field and the `reason` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The message had no value (tombstone or zero bytes).
    EmptyValue,
    /// The value is not Avro single-object encoded, or its body does not decode.
    MalformedAvro,
    /// The value names a schema fingerprint this scorer does not know, a registry id that no
    /// registry could resolve, or a writer schema that is not a schema.
    UnknownSchema,
    /// The value's writer schema is known (from the registry) but Avro schema resolution cannot
    /// read it as this scorer's schema: a producer shipped an incompatible schema change.
    IncompatibleSchema,
    /// A field is of the wrong type (the code dates from when fields could be required).
    MissingField,
    /// The record lacks more attributes than the scorer's imputation policy fills in, or one it
    /// never imputes; the message names them.
    TooManyMissing,
    /// A value is outside its allowed range or set.
    OutOfRange,
    /// A value is not finite, or the patient id is empty or too long.
    InvalidValue,
    /// The record's output could not be written at its size (larger than the producer's
    /// `message.max.bytes` or the topic's `max.message.bytes`); the dead letter keeps as much
    /// of the original value as fits, and its original size.
    TooLarge,
}

impl Reason {
    /// Every reason, for pre-registering metric labels.
    pub const ALL: [Self; 9] = [
        Self::EmptyValue,
        Self::MalformedAvro,
        Self::UnknownSchema,
        Self::IncompatibleSchema,
        Self::MissingField,
        Self::TooManyMissing,
        Self::OutOfRange,
        Self::InvalidValue,
        Self::TooLarge,
    ];

    /// The stable snake_case code.
    pub const fn code(self) -> &'static str {
        match self {
            Self::EmptyValue => "empty_value",
            Self::MalformedAvro => "malformed_avro",
            Self::UnknownSchema => "unknown_schema",
            Self::IncompatibleSchema => "incompatible_schema",
            Self::MissingField => "missing_field",
            Self::TooManyMissing => "too_many_missing",
            Self::OutOfRange => "out_of_range",
            Self::InvalidValue => "invalid_value",
            Self::TooLarge => "too_large",
        }
    }

    /// The reason for a decode failure.
    pub fn for_decode(err: &DecodeError) -> Self {
        match err {
            DecodeError::Empty { .. } => Self::EmptyValue,
            DecodeError::UnknownSchema { .. }
            | DecodeError::NeedsRegistry { .. }
            | DecodeError::InvalidWriterSchema { .. } => Self::UnknownSchema,
            DecodeError::IncompatibleSchema { .. } => Self::IncompatibleSchema,
            DecodeError::FieldType { .. } => Self::MissingField,
            DecodeError::BadMarker { .. }
            | DecodeError::Malformed { .. }
            | DecodeError::TrailingBytes { .. } => Self::MalformedAvro,
        }
    }

    /// The reason for a validation failure: the first violation decides.
    pub fn for_invalid(err: &Invalid) -> Self {
        use crate::patient::Problem;
        match err.violations.first().map(|v| &v.problem) {
            Some(Problem::WrongType { .. }) => Self::MissingField,
            Some(Problem::OutOfRange { .. } | Problem::NotAllowed { .. }) => Self::OutOfRange,
            Some(Problem::NotFinite | Problem::BadLength { .. }) | None => Self::InvalidValue,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A record that could not be scored, with everything needed to replay or debug it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The input key, untouched.
    pub original_key: Option<Vec<u8>>,
    /// The input value, untouched — or, for [`Reason::TooLarge`], its first bytes.
    pub original_value: Option<Vec<u8>>,
    /// Size of the input value in bytes (compare with `original_value` to see a cut).
    pub original_value_bytes: Option<i64>,
    /// Where the input came from.
    pub source_topic: String,
    /// Its partition.
    pub source_partition: i32,
    /// Its offset.
    pub source_offset: i64,
    /// Stable code ([`Reason::code`]).
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// When the scorer gave up on it, ms since the epoch.
    pub failed_at: i64,
}

impl AvroRecord for DeadLetter {
    const NAME: &'static str = "DeadLetter";

    fn schema_info() -> &'static SchemaInfo {
        &SCHEMA
    }

    fn to_value(&self) -> Value {
        record(vec![
            (
                "original_key",
                nullable(self.original_key.clone().map(Value::Bytes)),
            ),
            (
                "original_value",
                nullable(self.original_value.clone().map(Value::Bytes)),
            ),
            (
                "original_value_bytes",
                nullable(self.original_value_bytes.map(Value::Long)),
            ),
            ("source_topic", Value::String(self.source_topic.clone())),
            ("source_partition", Value::Int(self.source_partition)),
            ("source_offset", Value::Long(self.source_offset)),
            ("reason", Value::String(self.reason.clone())),
            ("message", Value::String(self.message.clone())),
            ("failed_at", Value::TimestampMillis(self.failed_at)),
        ])
    }

    fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut r = FieldReader::new(Self::NAME, value)?;
        Ok(Self {
            original_key: r.opt_bytes("original_key")?,
            original_value: r.opt_bytes("original_value")?,
            original_value_bytes: r.opt_long("original_value_bytes")?,
            source_topic: r.string("source_topic")?,
            source_partition: r.int("source_partition")?,
            source_offset: r.long("source_offset")?,
            reason: r.string("reason")?,
            message: r.string("message")?,
            failed_at: r.long("failed_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PatientRecord;

    #[test]
    fn avro_round_trip_keeps_original_bytes() {
        let d = DeadLetter {
            original_key: Some(b"k".to_vec()),
            original_value: Some(vec![0, 159, 255]),
            original_value_bytes: Some(3),
            source_topic: "patients".into(),
            source_partition: 3,
            source_offset: 42,
            reason: Reason::MalformedAvro.code().into(),
            message: "bad".into(),
            failed_at: 5,
        };
        assert_eq!(DeadLetter::decode(&d.encode().unwrap()).unwrap(), d);
        let none = DeadLetter {
            original_key: None,
            original_value: None,
            original_value_bytes: None,
            ..d
        };
        assert_eq!(DeadLetter::decode(&none.encode().unwrap()).unwrap(), none);
    }

    #[test]
    fn decode_failures_map_to_reasons() {
        let cases: [(&[u8], Reason); 6] = [
            (b"", Reason::EmptyValue),
            (b"{\"age\": 1}", Reason::MalformedAvro),
            (
                &[0xC3, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                Reason::UnknownSchema,
            ),
            (&[0xC3, 0x01], Reason::MalformedAvro),
            // Confluent framing, but no registry to name the schema.
            (&[0, 0, 0, 0, 1, 2], Reason::UnknownSchema),
            (&[0, 0, 0], Reason::MalformedAvro),
        ];
        for (bytes, want) in cases {
            let err = PatientRecord::decode(bytes).unwrap_err();
            assert_eq!(Reason::for_decode(&err), want, "{err}");
        }
    }

    #[test]
    fn truncated_body_is_malformed() {
        let rec = PatientRecord {
            patient_id: "p".into(),
            event_time: 0,
            age: Some(50),
            sex: Some(1),
            cp: Some(1),
            trestbps: Some(120.0),
            chol: Some(200.0),
            fbs: Some(0),
            restecg: Some(0),
            thalach: Some(150.0),
            exang: Some(0),
            oldpeak: Some(1.0),
            slope: Some(1),
            ca: None,
            thal: None,
        };
        let bytes = rec.encode().unwrap();
        for cut in 1..bytes.len() - 10 {
            let err = PatientRecord::decode(&bytes[..bytes.len() - cut]).unwrap_err();
            assert_eq!(
                Reason::for_decode(&err),
                Reason::MalformedAvro,
                "cut {cut}: {err}"
            );
        }
        let with_nulls = PatientRecord {
            ca: None,
            thal: None,
            ..rec.clone()
        }
        .encode()
        .unwrap();
        // Cutting both null unions off must not read as "both missing".
        let err = PatientRecord::decode(&with_nulls[..with_nulls.len() - 2]).unwrap_err();
        assert_eq!(Reason::for_decode(&err), Reason::MalformedAvro, "{err}");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            PatientRecord::decode(&longer),
            Err(DecodeError::TrailingBytes { extra: 1, .. })
        ));
    }

    #[test]
    fn codes_are_unique_snake_case() {
        let codes: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Reason::ALL.len());
        assert!(
            codes
                .iter()
                .all(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'))
        );
    }
}
