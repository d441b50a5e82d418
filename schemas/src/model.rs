//! The envelope a trained model travels in on the compacted models topic.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use apache_avro::types::Value;

use crate::codec::{AvroRecord, FieldReader, SchemaInfo, double_map, record};
use crate::error::DecodeError;

static SCHEMA: LazyLock<SchemaInfo> =
    LazyLock::new(|| SchemaInfo::parse(include_str!("../avro/model_version.avsc")));

/// A model version: metadata a person or dashboard reads, plus the opaque artifact payload.
///
/// The payload's meaning belongs to the `heart-model` crate; this crate only carries it and its
/// checksum.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    /// Model name; the Kafka key.
    pub name: String,
    /// Monotonic per name, from 1.
    pub version: i64,
    /// `logistic_regression`, `decision_tree` or `random_forest`.
    pub algorithm: String,
    /// ms since the epoch.
    pub created_at: i64,
    /// Trainer version that made it.
    pub code_version: String,
    /// Cross-validation metrics, e.g. `cv.roc_auc.mean`.
    pub metrics: BTreeMap<String, f64>,
    /// Input fields the model reads, in order.
    pub feature_spec: Vec<String>,
    /// How `payload` is encoded.
    pub payload_format: String,
    /// The serialized artifact.
    pub payload: Vec<u8>,
    /// sha256 of `payload`, lowercase hex.
    pub checksum: String,
}

impl AvroRecord for ModelVersion {
    const NAME: &'static str = "ModelVersion";

    fn schema_info() -> &'static SchemaInfo {
        &SCHEMA
    }

    fn to_value(&self) -> Value {
        record(vec![
            ("name", Value::String(self.name.clone())),
            ("version", Value::Long(self.version)),
            ("algorithm", Value::String(self.algorithm.clone())),
            ("created_at", Value::TimestampMillis(self.created_at)),
            ("code_version", Value::String(self.code_version.clone())),
            ("metrics", double_map(&self.metrics)),
            (
                "feature_spec",
                Value::Array(
                    self.feature_spec
                        .iter()
                        .map(|s| Value::String(s.clone()))
                        .collect(),
                ),
            ),
            ("payload_format", Value::String(self.payload_format.clone())),
            ("payload", Value::Bytes(self.payload.clone())),
            ("checksum", Value::String(self.checksum.clone())),
        ])
    }

    fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut r = FieldReader::new(Self::NAME, value)?;
        Ok(Self {
            name: r.string("name")?,
            version: r.long("version")?,
            algorithm: r.string("algorithm")?,
            created_at: r.long("created_at")?,
            code_version: r.string("code_version")?,
            metrics: r.double_map("metrics")?,
            feature_spec: r.strings("feature_spec")?,
            payload_format: r.string("payload_format")?,
            payload: r.bytes("payload")?,
            checksum: r.string("checksum")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avro_round_trip() {
        let m = ModelVersion {
            name: "heart".into(),
            version: 3,
            algorithm: "logistic_regression".into(),
            created_at: 9,
            code_version: "0.1.0".into(),
            metrics: BTreeMap::from([("cv.roc_auc.mean".to_owned(), 0.91)]),
            feature_spec: vec!["age".into(), "sex".into()],
            payload_format: "heart-model/postcard/v1".into(),
            payload: vec![1, 2, 3],
            checksum: "abc".into(),
        };
        assert_eq!(ModelVersion::decode(&m.encode().unwrap()).unwrap(), m);
    }

    #[test]
    fn every_compiled_in_schema_parses_and_fingerprints_differ() {
        use crate::{DeadLetter, PatientRecord, Prediction};
        let fps = [
            PatientRecord::schema_info().fingerprint,
            Prediction::schema_info().fingerprint,
            DeadLetter::schema_info().fingerprint,
            ModelVersion::schema_info().fingerprint,
        ];
        for (i, a) in fps.iter().enumerate() {
            for b in &fps[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
