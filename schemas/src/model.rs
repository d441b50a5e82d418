//! The envelope a trained model travels in on the compacted models topic.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use apache_avro::types::Value;

use crate::codec::{AvroRecord, FieldReader, SchemaInfo, double_map, nullable, record};
use crate::error::DecodeError;

static SCHEMA: LazyLock<SchemaInfo> = LazyLock::new(|| {
    // Version 1 (before the MLflow lineage fields) still decodes: models already on the topic.
    SchemaInfo::parse(include_str!("../avro/model_version.avsc"))
        .with_earlier(&[include_str!("../avro/model_version_v1.avsc")])
});

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
    /// The MLflow run that logged it, when published from the MLflow registry.
    pub mlflow_run_id: Option<String>,
    /// The MLflow registered model version it was published from.
    pub mlflow_model_version: Option<i64>,
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
            (
                "mlflow_run_id",
                nullable(self.mlflow_run_id.clone().map(Value::String)),
            ),
            (
                "mlflow_model_version",
                nullable(self.mlflow_model_version.map(Value::Long)),
            ),
        ])
    }

    /// Reads a value in this schema (version 1 records arrive resolved to it, the MLflow
    /// fields `None`).
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
            mlflow_run_id: r.opt_string("mlflow_run_id")?,
            mlflow_model_version: r.opt_long("mlflow_model_version")?,
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
            mlflow_run_id: None,
            mlflow_model_version: None,
        };
        assert_eq!(ModelVersion::decode(&m.encode().unwrap()).unwrap(), m);
        let with_lineage = ModelVersion {
            mlflow_run_id: Some("0123abcd".into()),
            mlflow_model_version: Some(4),
            ..m
        };
        assert_eq!(
            ModelVersion::decode(&with_lineage.encode().unwrap()).unwrap(),
            with_lineage
        );
    }

    #[test]
    fn a_version_1_record_still_decodes_without_lineage() {
        let m = ModelVersion {
            name: "heart".into(),
            version: 2,
            algorithm: "decision_tree".into(),
            created_at: 5,
            code_version: "0.1.0".into(),
            metrics: BTreeMap::new(),
            feature_spec: vec!["age".into()],
            payload_format: "heart-model/postcard/v1".into(),
            payload: vec![4],
            checksum: "def".into(),
            mlflow_run_id: Some("dropped".into()),
            mlflow_model_version: Some(1),
        };
        // Encode as an earlier build did: the v1 schema's header and body.
        let mut fields = match m.to_value() {
            Value::Record(f) => f,
            _ => unreachable!(),
        };
        fields.truncate(10);
        let body =
            apache_avro::to_avro_datum(&SCHEMA.earlier[0].schema, Value::Record(fields)).unwrap();
        let mut bytes = vec![0xC3, 0x01];
        bytes.extend_from_slice(&SCHEMA.earlier[0].fingerprint);
        bytes.extend_from_slice(&body);
        let decoded = ModelVersion::decode(&bytes).unwrap();
        assert_eq!(decoded.mlflow_run_id, None);
        assert_eq!(decoded.mlflow_model_version, None);
        assert_eq!(decoded.checksum, "def");
        assert_ne!(SCHEMA.earlier[0].fingerprint, SCHEMA.fingerprint);
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
