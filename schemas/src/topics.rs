//! Default topic names and the Kafka header names the processes agree on.

/// Input: Avro [`crate::PatientRecord`]s keyed by patient id.
pub const PATIENTS: &str = "patients";
/// Output: Avro [`crate::Prediction`]s keyed by patient id.
pub const PREDICTIONS: &str = "predictions";
/// Output: Avro [`crate::DeadLetter`]s keyed like the record that failed.
pub const DEAD_LETTERS: &str = "dead-letters";
/// Compacted: Avro [`crate::ModelVersion`]s keyed by model name.
pub const MODELS: &str = "models";

/// Header on dead letters: the stable [`crate::Reason`] code, so consumers can route without
/// decoding the value.
pub const HEADER_REASON: &str = "heart-risk.reason";
/// Header on predictions: the model version that made the prediction, as decimal text.
pub const HEADER_MODEL_VERSION: &str = "heart-risk.model-version";
