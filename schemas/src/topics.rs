//! Default topic names and the Kafka header names the processes agree on.

/// Input: Avro [`crate::PatientRecord`]s keyed by patient id.
pub const PATIENTS: &str = "patients";
/// Output: Avro [`crate::Prediction`]s keyed by patient id.
pub const PREDICTIONS: &str = "predictions";
/// Output: Avro [`crate::DeadLetter`]s keyed like the record that failed.
pub const DEAD_LETTERS: &str = "dead-letters";
/// Compacted: Avro [`crate::ModelVersion`]s keyed by [`model_key`].
pub const MODELS: &str = "models";
/// Output: the shadow model's [`crate::Prediction`]s, keyed by patient id (`--shadow-model-version`).
pub const PREDICTIONS_SHADOW: &str = "predictions-shadow";

/// The key of a model version on the models topic: `<name>/<version>`. One key per version, so
/// compaction drops only a version's duplicates and every version stays readable: a pinned,
/// rolled-back or shadow version is still there after a newer one is published.
pub fn model_key(name: &str, version: i64) -> String {
    format!("{name}/{version}")
}

/// Header on dead letters: the stable [`crate::Reason`] code, so consumers can route without
/// decoding the value.
pub const HEADER_REASON: &str = "heart-risk.reason";
/// Header on predictions (and shadow predictions): the model version that made the prediction,
/// as decimal text.
pub const HEADER_MODEL_VERSION: &str = "heart-risk.model-version";
