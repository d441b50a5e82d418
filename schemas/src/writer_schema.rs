//! The schema a record was written with, when a Schema Registry names it rather than this build:
//! bodies written with this build's own schema take the record's fast decoder, others go through
//! Avro schema resolution to this build's (reader) schema.

use std::marker::PhantomData;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;

use crate::canonical::{fingerprint64, parsing_canonical_form};
use crate::codec::{AvroRecord, decode_value};
use crate::error::DecodeError;

/// A writer's schema for record type `R`, checked once to be readable as `R`'s schema.
///
/// Build one per registry id and keep it: [`WriterSchema::decode`] then costs what
/// [`AvroRecord::decode_body`] costs when the writer used this build's schema.
#[derive(Debug)]
pub struct WriterSchema<R> {
    schema: Schema,
    /// CRC-64-AVRO of the writer schema's Parsing Canonical Form, little-endian.
    fingerprint: [u8; 8],
    /// The writer schema has the same Parsing Canonical Form as `R`'s: bodies are byte for byte
    /// what `R`'s hand-written decoder reads, so no resolution is needed.
    same_as_reader: bool,
    /// The writer schema is one of `R`'s earlier versions (index into `SchemaInfo::earlier`):
    /// bodies take that version's decoder.
    earlier: Option<usize>,
    _record: PhantomData<fn() -> R>,
}

impl<R: AvroRecord> WriterSchema<R> {
    /// Parses a writer schema (as a Schema Registry returns it) and checks that records written
    /// with it can be read as `R`.
    ///
    /// # Errors
    /// [`DecodeError::InvalidWriterSchema`] when the text is not an Avro schema;
    /// [`DecodeError::IncompatibleSchema`] when Avro schema resolution cannot read its records as
    /// `R` (a field `R` needs is missing and has no default, a type cannot be promoted, the record
    /// names differ).
    pub fn parse(text: &str) -> Result<Self, DecodeError> {
        let bad = |detail: String| DecodeError::InvalidWriterSchema {
            record: R::NAME,
            detail,
        };
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let schema = Schema::parse_str(text).map_err(|e| bad(e.to_string()))?;
        let canonical = parsing_canonical_form(&json).map_err(|e| bad(e.to_string()))?;
        let fingerprint = fingerprint64(canonical.as_bytes()).to_le_bytes();
        let reader = R::schema_info();
        let same_as_reader = canonical == reader.canonical_form;
        let earlier = reader.earlier_by_canonical_form(&canonical);
        if !same_as_reader && earlier.is_none() {
            SchemaCompatibility::can_read(&schema, &reader.schema).map_err(|e| {
                DecodeError::IncompatibleSchema {
                    record: R::NAME,
                    detail: e.to_string(),
                }
            })?;
        }
        Ok(Self {
            schema,
            fingerprint,
            same_as_reader,
            earlier,
            _record: PhantomData,
        })
    }

    /// CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, little-endian.
    pub fn fingerprint(&self) -> [u8; 8] {
        self.fingerprint
    }

    /// Whether the writer schema is this build's schema for `R` (same Parsing Canonical Form).
    pub fn is_reader_schema(&self) -> bool {
        self.same_as_reader
    }

    /// Decodes a body written with this schema as an `R`.
    ///
    /// # Errors
    /// As [`AvroRecord::decode_body`] (truncated, trailing or non-minimal bodies), and
    /// [`DecodeError::IncompatibleSchema`] when a value does not resolve to `R`'s schema.
    pub fn decode(&self, body: &[u8]) -> Result<R, DecodeError> {
        if self.same_as_reader {
            return R::decode_body(body);
        }
        if let Some(index) = self.earlier {
            return R::decode_earlier(index, body);
        }
        let value = decode_value(R::NAME, &self.schema, body)?;
        let resolved = value.resolve(&R::schema_info().schema).map_err(|e| {
            DecodeError::IncompatibleSchema {
                record: R::NAME,
                detail: e.to_string(),
            }
        })?;
        R::from_value(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::Writer;
    use crate::{PatientRecord, Prediction, Reason, RiskLevel};

    const OURS: &str = include_str!("../avro/patient_record.avsc");

    fn rec() -> PatientRecord {
        PatientRecord {
            patient_id: "p-1".into(),
            event_time: 1_700_000_000_000,
            age: Some(63),
            sex: Some(1),
            cp: Some(1),
            trestbps: Some(145.0),
            chol: Some(233.0),
            fbs: Some(1),
            restecg: Some(2),
            thalach: Some(150.0),
            exang: Some(0),
            oldpeak: Some(2.3),
            slope: Some(3),
            ca: Some(0),
            thal: Some(6),
        }
    }

    /// Our schema with its `fields` array edited as JSON.
    fn edited(edit: impl FnOnce(&mut Vec<serde_json::Value>)) -> String {
        let mut json: serde_json::Value = serde_json::from_str(OURS).unwrap();
        edit(json["fields"].as_array_mut().unwrap());
        json.to_string()
    }

    fn field(name: &str) -> impl Fn(&serde_json::Value) -> bool + '_ {
        move |f| f["name"] == name
    }

    /// Encodes `rec` with apache-avro's generic writer under `writer` (the record's fields looked
    /// up by name, extra fields supplied in `extra`).
    fn encode_as(
        writer: &WriterSchema<PatientRecord>,
        rec: &PatientRecord,
        extra: &[(&str, apache_avro::types::Value)],
    ) -> Vec<u8> {
        use apache_avro::types::Value;
        let Value::Record(ours) = rec.to_value() else {
            unreachable!("a record's value is a record")
        };
        let mut by_name: std::collections::HashMap<String, Value> = ours.into_iter().collect();
        by_name.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let Schema::Record(schema) = &writer.schema else {
            unreachable!("a PatientRecord writer schema is a record")
        };
        let fields = schema
            .fields
            .iter()
            .map(|f| {
                let v = by_name[&f.name].clone().resolve(&f.schema).unwrap();
                (f.name.clone(), v)
            })
            .collect();
        apache_avro::to_avro_datum(&writer.schema, Value::Record(fields)).unwrap()
    }

    #[test]
    fn our_own_schema_takes_the_fast_path_whatever_its_formatting() {
        let writer = WriterSchema::<PatientRecord>::parse(OURS).unwrap();
        assert!(writer.is_reader_schema());
        assert_eq!(
            writer.fingerprint(),
            PatientRecord::schema_info().fingerprint
        );
        // Docs and whitespace are not part of the canonical form.
        let plain = edited(|fields| {
            for f in fields {
                f.as_object_mut().unwrap().remove("doc");
            }
        });
        let writer = WriterSchema::<PatientRecord>::parse(&plain).unwrap();
        assert!(writer.is_reader_schema());
        let mut body = Vec::new();
        rec().encode_body(&mut body).unwrap();
        assert_eq!(writer.decode(&body).unwrap(), rec());
    }

    #[test]
    fn a_v2_with_an_extra_defaulted_field_scores() {
        let text = edited(|fields| {
            fields.push(serde_json::json!({"name": "smoker", "type": "boolean", "default": false}));
        });
        let writer = WriterSchema::<PatientRecord>::parse(&text).unwrap();
        assert!(!writer.is_reader_schema());
        let body = encode_as(
            &writer,
            &rec(),
            &[("smoker", apache_avro::types::Value::Boolean(true))],
        );
        assert_eq!(writer.decode(&body).unwrap(), rec());
    }

    #[test]
    fn a_writer_without_a_field_we_default_scores_with_the_default() {
        let text = edited(|fields| fields.retain(|f| !field("thal")(f)));
        let writer = WriterSchema::<PatientRecord>::parse(&text).unwrap();
        let body = encode_as(&writer, &rec(), &[]);
        let want = PatientRecord {
            thal: None,
            ..rec()
        };
        assert_eq!(writer.decode(&body).unwrap(), want);
    }

    #[test]
    fn reordered_fields_score() {
        let text = edited(|fields| fields.reverse());
        let writer = WriterSchema::<PatientRecord>::parse(&text).unwrap();
        assert!(!writer.is_reader_schema());
        let body = encode_as(&writer, &rec(), &[]);
        // Reversed, the body starts with thal (union branch 1, 6).
        assert_eq!(body[..2], [0x02, 0x0c]);
        assert_eq!(writer.decode(&body).unwrap(), rec());
    }

    #[test]
    fn promoted_types_score() {
        // A writer that measured pressure in whole mm Hg: int -> double.
        let text = edited(|fields| {
            let f = fields.iter_mut().find(|f| field("trestbps")(f)).unwrap();
            f["type"] = serde_json::json!(["null", "int"]);
        });
        let writer = WriterSchema::<PatientRecord>::parse(&text).unwrap();
        let mut body = Vec::new();
        let mut w = Writer(&mut body);
        w.string("p-1");
        w.long(1_700_000_000_000);
        for v in [63, 1, 1, 145] {
            w.opt_int(Some(v)); // age sex cp, then trestbps as an int
        }
        w.opt_double(Some(233.0));
        for v in [1, 2] {
            w.opt_int(Some(v));
        }
        w.opt_double(Some(150.0));
        w.opt_int(Some(0));
        w.opt_double(Some(2.3));
        w.opt_int(Some(3));
        w.opt_int(Some(0));
        w.opt_int(Some(6));
        assert_eq!(writer.decode(&body).unwrap(), rec());

        // int -> long. (apache-avro 0.21's compatibility check refuses int -> a long with a
        // logical type such as event_time's timestamp-millis, which Java Avro accepts; so the
        // promotion is shown on a plain long.)
        let mut json: serde_json::Value =
            serde_json::from_str(include_str!("../avro/prediction.avsc")).unwrap();
        json["fields"][7]["type"] = "int".into();
        let writer = WriterSchema::<Prediction>::parse(&json.to_string()).unwrap();
        let mut body = Vec::new();
        let mut w = Writer(&mut body);
        w.string("p");
        w.long(1);
        w.long(2);
        w.double(0.9);
        w.int(1);
        w.int(2);
        w.string("heart");
        w.int(7); // model_version as an int
        w.long(0); // imputed_fields: empty
        w.long(0); // explanation: null
        assert_eq!(writer.decode(&body).unwrap().model_version, 7);
    }

    #[test]
    fn a_writer_missing_a_required_field_is_incompatible() {
        // patient_id has no default: a writer without it cannot be read.
        let text = edited(|fields| fields.retain(|f| !field("patient_id")(f)));
        let err = WriterSchema::<PatientRecord>::parse(&text).unwrap_err();
        assert!(
            matches!(err, DecodeError::IncompatibleSchema { .. }),
            "{err}"
        );
        assert_eq!(Reason::for_decode(&err), Reason::IncompatibleSchema);

        // A narrowing (double -> int) cannot be read either.
        let text = edited(|fields| {
            let f = fields.iter_mut().find(|f| field("age")(f)).unwrap();
            f["type"] = serde_json::json!(["null", "double"]);
        });
        assert!(matches!(
            WriterSchema::<PatientRecord>::parse(&text),
            Err(DecodeError::IncompatibleSchema { .. })
        ));
    }

    #[test]
    fn text_that_is_no_schema_is_invalid_and_unknown() {
        for text in ["", "{", r#"{"type":"record","name":"X"}"#] {
            let err = WriterSchema::<PatientRecord>::parse(text).unwrap_err();
            assert!(
                matches!(err, DecodeError::InvalidWriterSchema { .. }),
                "{text}: {err}"
            );
            assert_eq!(Reason::for_decode(&err), Reason::UnknownSchema);
        }
    }

    #[test]
    fn resolution_keeps_the_generic_body_checks() {
        let text = edited(|fields| fields.reverse());
        let writer = WriterSchema::<PatientRecord>::parse(&text).unwrap();
        let body = encode_as(&writer, &rec(), &[]);
        for cut in 1..body.len() {
            let err = writer.decode(&body[..body.len() - cut]).unwrap_err();
            assert_eq!(Reason::for_decode(&err), Reason::MalformedAvro, "{err}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(matches!(
            writer.decode(&longer),
            Err(DecodeError::TrailingBytes { extra: 1, .. })
        ));
        // thal = Some(6) with an overlong union index: 82 00 0c instead of 02 0c.
        let mut overlong = vec![0x82, 0x00];
        overlong.extend_from_slice(&body[1..]);
        assert!(matches!(
            writer.decode(&overlong),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn an_enum_written_in_another_order_resolves_by_name() {
        let mut json: serde_json::Value =
            serde_json::from_str(include_str!("../avro/prediction.avsc")).unwrap();
        json["fields"][5]["type"]["symbols"] = serde_json::json!(["HIGH", "MEDIUM", "LOW"]);
        let writer = WriterSchema::<Prediction>::parse(&json.to_string()).unwrap();
        let mut body = Vec::new();
        let mut w = Writer(&mut body);
        w.string("p");
        w.long(1);
        w.long(2);
        w.double(0.9);
        w.int(1);
        w.int(0); // HIGH is index 0 in the writer's enum
        w.string("heart");
        w.long(7);
        w.long(0); // imputed_fields: empty
        w.long(0); // explanation: null
        assert_eq!(writer.decode(&body).unwrap().risk_level, RiskLevel::High);
    }
}
