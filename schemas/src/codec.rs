//! Avro single-object encoding for every record on the wire, and the Confluent wire format.
//!
//! Each message we write is, by default, `C3 01`, the 8-byte little-endian CRC-64-AVRO (Rabin)
//! fingerprint of the Parsing Canonical Form of the writer's schema, then the Avro binary body.
//! We chose it over the Confluent wire format because it names the schema without needing a
//! schema registry: a consumer can tell a wrong or foreign payload from a malformed one with
//! nothing but this crate. The Confluent format (`00`, a 4-byte big-endian registry id, the
//! body) is read and written too ([`Framing`], [`Framed`]), for deployments that run a registry.

use std::collections::HashMap;

use apache_avro::rabin::Rabin;
use apache_avro::types::Value;
use apache_avro::{Schema, from_avro_datum, to_avro_datum};

use crate::canonical::{fingerprint64, parsing_canonical_form};
use crate::error::{DecodeError, EncodeError};
use crate::framing::{self, Framed, Framing};

/// A parsed schema and its single-object fingerprints.
#[derive(Debug)]
pub struct SchemaInfo {
    /// The schema as written in `schemas/avro/` (what a Schema Registry subject is given: the
    /// canonical form would drop its docs and defaults).
    pub text: &'static str,
    /// The parsed Avro schema.
    pub schema: Schema,
    /// The schema's Parsing Canonical Form, as the Avro specification defines it.
    pub canonical_form: String,
    /// CRC-64-AVRO fingerprint of [`SchemaInfo::canonical_form`], little-endian: what Java Avro
    /// and fastavro write and expect, and what this build writes.
    pub fingerprint: [u8; 8],
    /// The fingerprint earlier builds wrote: apache-avro 0.21's, whose canonical form keeps
    /// `{"type":"long"}` for a logical type. Accepted on decode (as [`Framed::Legacy`]) so records
    /// already on topics keep decoding; never written.
    pub legacy_fingerprint: [u8; 8],
    /// Earlier versions of the record's schema, newest first, whose records still decode
    /// ([`Framed::Earlier`], by index here): kept in `schemas/avro/` as `<name>_v<N>.avsc`.
    pub earlier: Vec<SchemaInfo>,
}

impl SchemaInfo {
    /// Parses a schema that is compiled into this crate.
    ///
    /// # Panics
    /// If the text is not a valid Avro schema. The texts are `include_str!` constants that the unit
    /// tests parse, so this cannot happen in a released build.
    #[allow(clippy::expect_used)]
    pub(crate) fn parse(text: &'static str) -> Self {
        let schema = Schema::parse_str(text).expect("compiled-in schema is valid (unit-tested)");
        let json = serde_json::from_str(text).expect("compiled-in schema is JSON (unit-tested)");
        let canonical_form =
            parsing_canonical_form(&json).expect("compiled-in schema has a PCF (unit-tested)");
        let fingerprint = fingerprint64(canonical_form.as_bytes()).to_le_bytes();
        let bytes = schema.fingerprint::<Rabin>().bytes;
        let mut legacy_fingerprint = [0u8; 8];
        legacy_fingerprint.copy_from_slice(&bytes[..8]);
        Self {
            text,
            schema,
            canonical_form,
            fingerprint,
            legacy_fingerprint,
            earlier: Vec::new(),
        }
    }

    /// The schema with the earlier versions its records may have been written with, newest
    /// first.
    ///
    /// # Panics
    /// As [`SchemaInfo::parse`], for the earlier texts.
    pub(crate) fn with_earlier(mut self, texts: &[&'static str]) -> Self {
        self.earlier = texts.iter().map(|t| Self::parse(t)).collect();
        self
    }

    /// Which of [`SchemaInfo::earlier`] has this fingerprint (either form), if any.
    pub(crate) fn earlier_index(&self, fingerprint: &[u8; 8]) -> Option<usize> {
        self.earlier
            .iter()
            .position(|e| e.fingerprint == *fingerprint || e.legacy_fingerprint == *fingerprint)
    }

    /// Which of [`SchemaInfo::earlier`] has this Parsing Canonical Form, if any.
    pub(crate) fn earlier_by_canonical_form(&self, canonical_form: &str) -> Option<usize> {
        self.earlier
            .iter()
            .position(|e| e.canonical_form == canonical_form)
    }
}

/// A typed record with an Avro schema, encoded with single-object encoding.
pub trait AvroRecord: Sized {
    /// The record's Avro name, for error messages.
    const NAME: &'static str;

    /// The schema and fingerprint this build writes and expects.
    fn schema_info() -> &'static SchemaInfo;

    /// Converts to an Avro value in schema field order.
    fn to_value(&self) -> Value;

    /// Converts from an Avro value decoded with [`AvroRecord::schema_info`].
    ///
    /// # Errors
    /// [`DecodeError::FieldType`] when a field holds a value of the wrong Avro type.
    fn from_value(value: Value) -> Result<Self, DecodeError>;

    /// Encodes as an Avro single-object message.
    ///
    /// # Errors
    /// [`EncodeError`] when the record holds a value its own schema cannot represent (a bug).
    fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the Avro single-object message to `out` (batching writers encode many records
    /// into one buffer instead of allocating one per record).
    ///
    /// # Errors
    /// As [`AvroRecord::encode`]; `out` may then hold a partial record.
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_framed_into(Framing::SingleObject, out)
    }

    /// Appends the record to `out` behind the header `framing` chooses; the body is the same.
    ///
    /// # Errors
    /// As [`AvroRecord::encode`]; `out` may then hold a partial record.
    fn encode_framed_into(&self, framing: Framing, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        framing.write_header(Self::schema_info(), out);
        self.encode_body(out)
    }

    /// Decodes an Avro single-object message (current or legacy fingerprint).
    ///
    /// # Errors
    /// A [`DecodeError`] naming what is wrong: empty input, a missing marker, a schema this build
    /// does not know, a malformed body or trailing bytes; [`DecodeError::NeedsRegistry`] for a
    /// Confluent-framed record (use [`AvroRecord::frame`] and a [`crate::WriterSchema`]).
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match Self::frame(bytes)? {
            Framed::Current(body) | Framed::Legacy(body) => Self::decode_body(body),
            Framed::Earlier { index, body } => Self::decode_earlier(index, body),
            Framed::Registry { id, .. } => Err(DecodeError::NeedsRegistry {
                record: Self::NAME,
                id,
            }),
        }
    }

    /// Splits a message into its header's verdict and its body, record by record: `C3 01` is
    /// single-object encoding with this build's fingerprint ([`Framed::Current`]), the one
    /// earlier builds wrote ([`Framed::Legacy`]) or an earlier schema version's
    /// ([`Framed::Earlier`]); `00` is the Confluent wire format ([`Framed::Registry`]).
    ///
    /// # Errors
    /// [`DecodeError::Empty`]; [`DecodeError::BadMarker`] for any other first byte;
    /// [`DecodeError::UnknownSchema`] for a fingerprint that is neither;
    /// [`DecodeError::Malformed`] for a header cut short.
    fn frame(bytes: &[u8]) -> Result<Framed<'_>, DecodeError> {
        framing::split(Self::NAME, Self::schema_info(), bytes)
    }

    /// Decodes a body written with earlier schema `index` of [`SchemaInfo::earlier`], by Avro
    /// schema resolution (records with a hot path override it with a hand-written reader).
    ///
    /// # Errors
    /// As [`AvroRecord::decode_body`]; [`DecodeError::IncompatibleSchema`] if resolution fails.
    fn decode_earlier(index: usize, body: &[u8]) -> Result<Self, DecodeError> {
        let info = Self::schema_info();
        let Some(writer) = info.earlier.get(index) else {
            return Err(DecodeError::Malformed {
                record: Self::NAME,
                detail: format!("no earlier schema {index}"),
            });
        };
        let value = decode_value(Self::NAME, &writer.schema, body)?;
        let resolved =
            value
                .resolve(&info.schema)
                .map_err(|e| DecodeError::IncompatibleSchema {
                    record: Self::NAME,
                    detail: e.to_string(),
                })?;
        Self::from_value(resolved)
    }

    /// Decodes an Avro binary body written with this record's schema (generic apache-avro
    /// path; hot-path records override it with a hand-written reader).
    ///
    /// # Errors
    /// [`DecodeError::Malformed`], [`DecodeError::TrailingBytes`] or a field type error.
    fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        let value = decode_value(Self::NAME, &Self::schema_info().schema, body)?;
        Self::from_value(value)
    }

    /// Encodes the Avro binary body (generic apache-avro path; hot-path records override it).
    ///
    /// # Errors
    /// [`EncodeError`] when the record holds a value its own schema cannot represent (a bug).
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let body = to_avro_datum(&Self::schema_info().schema, self.to_value()).map_err(|e| {
            EncodeError {
                record: Self::NAME,
                detail: e.to_string(),
            }
        })?;
        out.extend_from_slice(&body);
        Ok(())
    }
}

/// Decodes a whole Avro body written with `schema` into a generic value, strictly: a truncated
/// body, trailing bytes and a non-minimal encoding are errors.
pub(crate) fn decode_value(
    record: &'static str,
    schema: &Schema,
    body: &[u8],
) -> Result<Value, DecodeError> {
    let mut reader = BodyReader {
        rest: body,
        past_end: false,
    };
    let value = from_avro_datum(schema, &mut reader, None).map_err(|e| DecodeError::Malformed {
        record,
        detail: e.to_string(),
    })?;
    // apache-avro reads a union or string cut off by the end of input as null instead of
    // failing, so a truncated body would decode; the reader saw it ask for the missing bytes.
    if reader.past_end {
        return Err(DecodeError::Malformed {
            record,
            detail: "body ends inside a field: truncated".to_owned(),
        });
    }
    if !reader.rest.is_empty() {
        return Err(DecodeError::TrailingBytes {
            record,
            extra: reader.rest.len(),
        });
    }
    // A non-minimal encoding (an overlong varint) decodes too; re-encoding shows it.
    let expected = to_avro_datum(schema, value.clone()).map_or(0, |b| b.len());
    if expected != body.len() {
        return Err(DecodeError::Malformed {
            record,
            detail: format!(
                "body is {} bytes, its fields re-encode to {expected}: not minimal",
                body.len()
            ),
        });
    }
    Ok(value)
}

/// An Avro body being read that remembers whether the decoder asked for bytes past its end.
struct BodyReader<'a> {
    rest: &'a [u8],
    past_end: bool,
}

impl std::io::Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.rest.is_empty() && !buf.is_empty() {
            self.past_end = true;
        }
        self.rest.read(buf)
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Reads a decoded record's fields in schema order, naming the field when one has the wrong type.
pub(crate) struct FieldReader {
    record: &'static str,
    fields: std::vec::IntoIter<(String, Value)>,
}

impl FieldReader {
    pub(crate) fn new(record: &'static str, value: Value) -> Result<Self, DecodeError> {
        match value {
            Value::Record(fields) => Ok(Self {
                record,
                fields: fields.into_iter(),
            }),
            _ => Err(DecodeError::Malformed {
                record,
                detail: "top-level value is not a record".to_owned(),
            }),
        }
    }

    fn next(&mut self, field: &'static str) -> Result<Value, DecodeError> {
        match self.fields.next() {
            Some((name, value)) if name == field => Ok(value),
            _ => Err(self.wrong(field)),
        }
    }

    fn wrong(&self, field: &'static str) -> DecodeError {
        DecodeError::FieldType {
            record: self.record,
            field,
        }
    }

    /// The field's value as it is, for a type with a reader of its own.
    pub(crate) fn value(&mut self, field: &'static str) -> Result<Value, DecodeError> {
        self.next(field)
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        match self.next(field)? {
            Value::String(s) => Ok(s),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn int(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        match self.next(field)? {
            Value::Int(v) => Ok(v),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn long(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        match self.next(field)? {
            Value::Long(v) | Value::TimestampMillis(v) => Ok(v),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn double(&mut self, field: &'static str) -> Result<f64, DecodeError> {
        match self.next(field)? {
            Value::Double(v) => Ok(v),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, DecodeError> {
        match self.next(field)? {
            Value::Bytes(v) => Ok(v),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn enum_symbol(&mut self, field: &'static str) -> Result<String, DecodeError> {
        match self.next(field)? {
            Value::Enum(_, s) => Ok(s),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn opt_int(&mut self, field: &'static str) -> Result<Option<i32>, DecodeError> {
        match self.next(field)? {
            Value::Union(_, inner) => match *inner {
                Value::Null => Ok(None),
                Value::Int(v) => Ok(Some(v)),
                _ => Err(self.wrong(field)),
            },
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn opt_double(&mut self, field: &'static str) -> Result<Option<f64>, DecodeError> {
        match self.next(field)? {
            Value::Union(_, inner) => match *inner {
                Value::Null => Ok(None),
                Value::Double(v) => Ok(Some(v)),
                _ => Err(self.wrong(field)),
            },
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn opt_string(
        &mut self,
        field: &'static str,
    ) -> Result<Option<String>, DecodeError> {
        match self.next(field)? {
            Value::Union(_, inner) => match *inner {
                Value::Null => Ok(None),
                Value::String(v) => Ok(Some(v)),
                _ => Err(self.wrong(field)),
            },
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn opt_long(&mut self, field: &'static str) -> Result<Option<i64>, DecodeError> {
        match self.next(field)? {
            Value::Union(_, inner) => match *inner {
                Value::Null => Ok(None),
                Value::Long(v) => Ok(Some(v)),
                _ => Err(self.wrong(field)),
            },
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn opt_bytes(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.next(field)? {
            Value::Union(_, inner) => match *inner {
                Value::Null => Ok(None),
                Value::Bytes(v) => Ok(Some(v)),
                _ => Err(self.wrong(field)),
            },
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn double_map(
        &mut self,
        field: &'static str,
    ) -> Result<std::collections::BTreeMap<String, f64>, DecodeError> {
        match self.next(field)? {
            Value::Map(map) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::Double(d) => Ok((k, d)),
                    _ => Err(self.wrong(field)),
                })
                .collect(),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn strings(&mut self, field: &'static str) -> Result<Vec<String>, DecodeError> {
        match self.next(field)? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(self.wrong(field)),
                })
                .collect(),
            _ => Err(self.wrong(field)),
        }
    }
}

/// Builders for Avro values, so the `to_value` impls read as a list of fields.
pub(crate) fn record(fields: Vec<(&'static str, Value)>) -> Value {
    Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A `["null", T]` union value.
pub(crate) fn nullable(value: Option<Value>) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(v)),
    }
}

/// An Avro map of doubles.
pub(crate) fn double_map(map: &std::collections::BTreeMap<String, f64>) -> Value {
    Value::Map(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::Double(*v)))
            .collect::<HashMap<_, _>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeadLetter, ModelVersion, PatientRecord, Prediction};

    fn sample() -> Prediction {
        Prediction {
            patient_id: "p-1".into(),
            event_time: 1,
            scored_at: 2,
            probability: 0.8125,
            label: 1,
            risk_level: crate::RiskLevel::High,
            model_name: "heart".into(),
            model_version: 7,
            imputed_fields: crate::FieldSet::EMPTY,
            explanation: None,
        }
    }

    /// The Parsing Canonical Forms follow from the specification's rules applied by hand (names
    /// in full, docs, defaults, namespaces and logical types stripped, `name` before `type`); they
    /// are also what fastavro 1.13.1's `to_parsing_canonical_form` gives. The fingerprints are
    /// what fastavro and Java Avro compute (interop/test_avro_spec.py checks them there); the
    /// legacy ones are what builds before this one wrote.
    #[test]
    fn every_schema_has_the_specified_canonical_form_and_fingerprints() {
        let cases: [(&SchemaInfo, &str, &str, &str); 7] = [
            (
                PatientRecord::schema_info(),
                "ac0b2f0d495356af",
                "717311cf15205a28",
                r#"{"name":"io.heartrisk.v1.PatientRecord","type":"record","fields":[{"name":"patient_id","type":"string"},{"name":"event_time","type":"long"},{"name":"age","type":["null","int"]},{"name":"sex","type":["null","int"]},{"name":"cp","type":["null","int"]},{"name":"trestbps","type":["null","double"]},{"name":"chol","type":["null","double"]},{"name":"fbs","type":["null","int"]},{"name":"restecg","type":["null","int"]},{"name":"thalach","type":["null","double"]},{"name":"exang","type":["null","int"]},{"name":"oldpeak","type":["null","double"]},{"name":"slope","type":["null","int"]},{"name":"ca","type":["null","int"]},{"name":"thal","type":["null","int"]}]}"#,
            ),
            (
                &PatientRecord::schema_info().earlier[0],
                "17c5d7210c0f326b",
                "67ef21008670b8a0",
                r#"{"name":"io.heartrisk.v1.PatientRecord","type":"record","fields":[{"name":"patient_id","type":"string"},{"name":"event_time","type":"long"},{"name":"age","type":"int"},{"name":"sex","type":"int"},{"name":"cp","type":"int"},{"name":"trestbps","type":"double"},{"name":"chol","type":"double"},{"name":"fbs","type":"int"},{"name":"restecg","type":"int"},{"name":"thalach","type":"double"},{"name":"exang","type":"int"},{"name":"oldpeak","type":"double"},{"name":"slope","type":"int"},{"name":"ca","type":["null","int"]},{"name":"thal","type":["null","int"]}]}"#,
            ),
            (
                Prediction::schema_info(),
                "4e0ac83e6853d49a",
                "2615e5323c49276a",
                r#"{"name":"io.heartrisk.v1.Prediction","type":"record","fields":[{"name":"patient_id","type":"string"},{"name":"event_time","type":"long"},{"name":"scored_at","type":"long"},{"name":"probability","type":"double"},{"name":"label","type":"int"},{"name":"risk_level","type":{"name":"io.heartrisk.v1.RiskLevel","type":"enum","symbols":["LOW","MEDIUM","HIGH"]}},{"name":"model_name","type":"string"},{"name":"model_version","type":"long"},{"name":"imputed_fields","type":{"type":"array","items":"string"}},{"name":"explanation","type":["null",{"name":"io.heartrisk.v1.Explanation","type":"record","fields":[{"name":"space","type":{"name":"io.heartrisk.v1.OutputSpace","type":"enum","symbols":["LOG_ODDS","PROBABILITY"]}},{"name":"base","type":"double"},{"name":"output","type":"double"},{"name":"contributions","type":{"type":"array","items":{"name":"io.heartrisk.v1.Contribution","type":"record","fields":[{"name":"field","type":"string"},{"name":"value","type":"double"},{"name":"contribution","type":"double"}]}}},{"name":"other","type":"double"}]}]}]}"#,
            ),
            (
                &Prediction::schema_info().earlier[1],
                "10a00dda24b6eff7",
                "15a93367b601660b",
                r#"{"name":"io.heartrisk.v1.Prediction","type":"record","fields":[{"name":"patient_id","type":"string"},{"name":"event_time","type":"long"},{"name":"scored_at","type":"long"},{"name":"probability","type":"double"},{"name":"label","type":"int"},{"name":"risk_level","type":{"name":"io.heartrisk.v1.RiskLevel","type":"enum","symbols":["LOW","MEDIUM","HIGH"]}},{"name":"model_name","type":"string"},{"name":"model_version","type":"long"},{"name":"imputed_fields","type":{"type":"array","items":"string"}}]}"#,
            ),
            (
                &Prediction::schema_info().earlier[0],
                "3837b1635421e739",
                "12f9ccdf07470597",
                r#"{"name":"io.heartrisk.v1.Prediction","type":"record","fields":[{"name":"patient_id","type":"string"},{"name":"event_time","type":"long"},{"name":"scored_at","type":"long"},{"name":"probability","type":"double"},{"name":"label","type":"int"},{"name":"risk_level","type":{"name":"io.heartrisk.v1.RiskLevel","type":"enum","symbols":["LOW","MEDIUM","HIGH"]}},{"name":"model_name","type":"string"},{"name":"model_version","type":"long"}]}"#,
            ),
            (
                DeadLetter::schema_info(),
                "e438a3880c3eac1c",
                "26d9de02f72ed456",
                r#"{"name":"io.heartrisk.v1.DeadLetter","type":"record","fields":[{"name":"original_key","type":["null","bytes"]},{"name":"original_value","type":["null","bytes"]},{"name":"original_value_bytes","type":["null","long"]},{"name":"source_topic","type":"string"},{"name":"source_partition","type":"int"},{"name":"source_offset","type":"long"},{"name":"reason","type":"string"},{"name":"message","type":"string"},{"name":"failed_at","type":"long"}]}"#,
            ),
            (
                ModelVersion::schema_info(),
                "08fae8e746c8faa3",
                "91a13620e6a17155",
                r#"{"name":"io.heartrisk.v1.ModelVersion","type":"record","fields":[{"name":"name","type":"string"},{"name":"version","type":"long"},{"name":"algorithm","type":"string"},{"name":"created_at","type":"long"},{"name":"code_version","type":"string"},{"name":"metrics","type":{"type":"map","values":"double"}},{"name":"feature_spec","type":{"type":"array","items":"string"}},{"name":"payload_format","type":"string"},{"name":"payload","type":"bytes"},{"name":"checksum","type":"string"},{"name":"mlflow_run_id","type":["null","string"]},{"name":"mlflow_model_version","type":["null","long"]}]}"#,
            ),
        ];
        for (info, fingerprint, legacy, canonical) in cases {
            assert_eq!(info.canonical_form, canonical);
            assert_eq!(hex(&info.fingerprint), fingerprint, "{canonical}");
            assert_eq!(hex(&info.legacy_fingerprint), legacy, "{canonical}");
        }
    }

    #[test]
    fn records_are_written_with_the_specification_fingerprint() {
        let bytes = sample().encode().unwrap();
        assert_eq!(bytes[..2], [0xC3, 0x01]);
        assert_eq!(hex(&bytes[2..10]), "4e0ac83e6853d49a");
    }

    #[test]
    fn the_legacy_fingerprint_still_decodes_and_is_reported() {
        let mut bytes = sample().encode().unwrap();
        bytes[2..10].copy_from_slice(&Prediction::schema_info().legacy_fingerprint);
        assert!(matches!(Prediction::frame(&bytes), Ok(Framed::Legacy(_))));
        assert_eq!(Prediction::decode(&bytes).unwrap(), sample());
        // Also through the generic (apache-avro) body decoder.
        let letter = DeadLetter {
            original_key: None,
            original_value: Some(vec![1]),
            original_value_bytes: Some(1),
            source_topic: "patients".into(),
            source_partition: 0,
            source_offset: 1,
            reason: "malformed_avro".into(),
            message: "m".into(),
            failed_at: 3,
        };
        let mut bytes = letter.encode().unwrap();
        assert!(matches!(DeadLetter::frame(&bytes), Ok(Framed::Current(_))));
        bytes[2..10].copy_from_slice(&DeadLetter::schema_info().legacy_fingerprint);
        assert_eq!(DeadLetter::decode(&bytes).unwrap(), letter);
    }

    #[test]
    fn encode_framed_into_writes_either_header_before_the_same_body() {
        let p = sample();
        let mut single = Vec::new();
        p.encode_framed_into(Framing::SingleObject, &mut single)
            .unwrap();
        assert_eq!(single, p.encode().unwrap());

        let mut confluent = vec![0xAA]; // appends, keeping what is there
        p.encode_framed_into(Framing::Confluent { id: 42 }, &mut confluent)
            .unwrap();
        assert_eq!(confluent[..6], [0xAA, 0, 0, 0, 0, 42]);
        assert_eq!(confluent[6..], single[10..]);

        let Framed::Registry { id, body } = Prediction::frame(&confluent[1..]).unwrap() else {
            panic!("not read as registry-framed");
        };
        assert_eq!(id, 42);
        assert_eq!(Prediction::decode_body(body).unwrap(), p);
    }

    #[test]
    fn decode_without_a_registry_says_one_is_needed() {
        let mut bytes = Vec::new();
        sample()
            .encode_framed_into(Framing::Confluent { id: 7 }, &mut bytes)
            .unwrap();
        let err = Prediction::decode(&bytes).unwrap_err();
        assert!(
            matches!(err, DecodeError::NeedsRegistry { id: 7, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("needs a registry"), "{err}");
    }

    #[test]
    fn fingerprints_differ_between_schemas_and_from_their_legacy_ones() {
        let infos = [
            PatientRecord::schema_info(),
            Prediction::schema_info(),
            DeadLetter::schema_info(),
            ModelVersion::schema_info(),
        ];
        let mut all: Vec<_> = infos
            .iter()
            .flat_map(|i| [i.fingerprint, i.legacy_fingerprint])
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 8);
    }
}
