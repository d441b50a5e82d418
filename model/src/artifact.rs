//! The model artifact: fitted preprocessing and estimator, provenance, and golden vectors.

use std::collections::BTreeMap;

use heart_schemas::patient::{FIELDS, N_FIELDS};
use heart_schemas::{AvroRecord, ModelVersion};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::estimator::Estimator;
use crate::preprocess::Preprocessor;
use crate::profile::TrainingProfile;

/// The first payload format: postcard of [`Artifact`] without [`Estimator::Calibrated`].
pub const PAYLOAD_FORMAT_V1: &str = "heart-model/postcard/v1";
/// v1 plus [`Estimator::Calibrated`]; written only for an artifact that has a calibration, so
/// that every other artifact stays readable by v1 readers.
pub const PAYLOAD_FORMAT_V2: &str = "heart-model/postcard/v2";
/// v2 plus [`Artifact::profile`], the training data's summary that drift and explanations
/// need; what the trainer writes from this build on.
pub const PAYLOAD_FORMAT_V3: &str = "heart-model/postcard/v3";
/// Every `payload_format` this build reads.
pub const PAYLOAD_FORMATS: [&str; 3] = [PAYLOAD_FORMAT_V1, PAYLOAD_FORMAT_V2, PAYLOAD_FORMAT_V3];

/// Which learning algorithm produced an estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Algorithm {
    /// L2-regularised logistic regression (fitted with linfa-logistic).
    LogisticRegression,
    /// A single CART tree.
    DecisionTree,
    /// Bagged CART trees with columns drawn per split ([`crate::Estimator::Forest`]).
    RandomForest,
    /// Gradient-boosted trees ([`crate::Estimator::Boosted`]).
    GradientBoosting,
}

impl Algorithm {
    /// Every algorithm.
    pub const ALL: [Self; 4] = [
        Self::LogisticRegression,
        Self::DecisionTree,
        Self::RandomForest,
        Self::GradientBoosting,
    ];

    /// Stable snake_case name.
    pub const fn code(self) -> &'static str {
        match self {
            Self::LogisticRegression => "logistic_regression",
            Self::DecisionTree => "decision_tree",
            Self::RandomForest => "random_forest",
            Self::GradientBoosting => "gradient_boosting",
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// An input and the probability the trainer computed for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenVector {
    /// The 13 attributes in field order, `None` for missing.
    pub input: [Option<f64>; N_FIELDS],
    /// The trainer's probability.
    pub probability: f64,
}

/// A trained model, as serialized into [`ModelVersion::payload`].
///
/// It holds nothing time-dependent, so the same data and seed give a byte-identical payload;
/// version and creation time live in the envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// Model name, e.g. `heart-disease`.
    pub name: String,
    /// What produced the estimator.
    pub algorithm: Algorithm,
    /// The chosen hyperparameters, as text.
    pub hyperparameters: BTreeMap<String, String>,
    /// Fitted preprocessing.
    pub preprocessor: Preprocessor,
    /// Fitted estimator over the preprocessed features.
    pub estimator: Estimator,
    /// sha256 of the training data file, lowercase hex.
    pub training_data_sha256: String,
    /// Cross-validation metrics, e.g. `cv.roc_auc.mean`.
    pub cv_metrics: BTreeMap<String, f64>,
    /// Inputs and the trainer's probabilities; every loader must reproduce them.
    pub golden: Vec<GoldenVector>,
    /// The training data's summary (payload format v3); `None` in older artifacts, which then
    /// score but cannot be explained or watched for drift.
    pub profile: Option<TrainingProfile>,
}

/// An artifact in payload format v1 or v2: [`Artifact`] without its profile. Postcard writes
/// fields in order with no names, so an older payload ends where the profile would begin.
#[derive(Deserialize)]
struct ArtifactV2 {
    name: String,
    algorithm: Algorithm,
    hyperparameters: BTreeMap<String, String>,
    preprocessor: Preprocessor,
    estimator: Estimator,
    training_data_sha256: String,
    cv_metrics: BTreeMap<String, f64>,
    golden: Vec<GoldenVector>,
}

impl From<ArtifactV2> for Artifact {
    fn from(a: ArtifactV2) -> Self {
        Self {
            name: a.name,
            algorithm: a.algorithm,
            hyperparameters: a.hyperparameters,
            preprocessor: a.preprocessor,
            estimator: a.estimator,
            training_data_sha256: a.training_data_sha256,
            cv_metrics: a.cv_metrics,
            golden: a.golden,
            profile: None,
        }
    }
}

impl Artifact {
    /// Applies the artifact to raw attributes (field order, `None` for missing) without
    /// verifying it first; loaders use [`crate::Model`], which verifies.
    ///
    /// # Panics
    /// If the artifact breaks its structural invariants (checked by [`crate::Model::load`]).
    pub fn apply(&self, features: &[Option<f64>; N_FIELDS]) -> crate::Scored {
        self.apply_with(features, |x| self.estimator.predict(x))
    }

    /// As [`Artifact::apply`], with `estimate` in place of the estimator (a faster form of it).
    pub(crate) fn apply_with(
        &self,
        features: &[Option<f64>; N_FIELDS],
        estimate: impl FnOnce(&[f64]) -> f64,
    ) -> crate::Scored {
        let mut x = [0.0; crate::preprocess::MAX_WIDTH];
        let t = self.preprocessor.transform(features, &mut x);
        crate::Scored {
            probability: estimate(&x[..t.width]),
            unseen_categories: t.unseen,
        }
    }

    /// Records `inputs` and this artifact's own probabilities for them as golden vectors.
    pub fn set_golden(&mut self, inputs: &[[Option<f64>; N_FIELDS]]) {
        self.golden = inputs
            .iter()
            .map(|input| GoldenVector {
                input: *input,
                probability: self.apply(input).probability,
            })
            .collect();
    }

    /// Summarises the training `rows` into [`Artifact::profile`]; call it after the estimator
    /// is final.
    pub fn set_profile(&mut self, rows: &[[Option<f64>; N_FIELDS]]) {
        self.profile = Some(TrainingProfile::fit(
            rows,
            &self.preprocessor,
            &self.estimator,
        ));
    }

    /// The oldest payload format that holds this artifact.
    pub fn payload_format(&self) -> &'static str {
        match (&self.profile, &self.estimator) {
            (Some(_), _) => PAYLOAD_FORMAT_V3,
            (None, Estimator::Calibrated { .. }) => PAYLOAD_FORMAT_V2,
            (None, _) => PAYLOAD_FORMAT_V1,
        }
    }

    /// Serializes the artifact (postcard: compact and deterministic) in
    /// [`Artifact::payload_format`]: an artifact without a profile as v1 or v2 wrote it.
    ///
    /// # Errors
    /// Only if serialization fails, which postcard does not do for these types.
    pub fn to_payload(&self) -> Result<Vec<u8>, postcard::Error> {
        let mut bytes = postcard::to_allocvec(self)?;
        if self.profile.is_none() {
            // The `None` tag of the profile; v1 and v2 payloads end before it.
            bytes.pop();
        }
        Ok(bytes)
    }

    /// Deserializes a payload of `format` (one of [`PAYLOAD_FORMATS`]; the caller checks).
    ///
    /// # Errors
    /// The postcard error of a payload that does not decode.
    pub fn from_payload(format: &str, payload: &[u8]) -> Result<Self, postcard::Error> {
        if format == PAYLOAD_FORMAT_V3 {
            postcard::from_bytes(payload)
        } else {
            postcard::from_bytes::<ArtifactV2>(payload).map(Self::from)
        }
    }

    /// Wraps the artifact in the envelope published on the models topic.
    ///
    /// # Errors
    /// As [`Artifact::to_payload`].
    pub fn to_version(
        &self,
        version: i64,
        created_at: i64,
        code_version: &str,
    ) -> Result<ModelVersion, postcard::Error> {
        let payload = self.to_payload()?;
        Ok(ModelVersion {
            name: self.name.clone(),
            version,
            algorithm: self.algorithm.code().to_owned(),
            created_at,
            code_version: code_version.to_owned(),
            metrics: self.cv_metrics.clone(),
            feature_spec: FIELDS.iter().map(|f| f.name.to_owned()).collect(),
            payload_format: self.payload_format().to_owned(),
            checksum: sha256_hex(&payload),
            payload,
            mlflow_run_id: None,
            mlflow_model_version: None,
        })
    }
}

/// sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    heart_schemas::codec::hex(&Sha256::digest(bytes))
}

/// Writes a model version as an Avro single-object file (what `trainer train --out` writes and
/// `scorer --model-file` reads).
///
/// # Errors
/// The Avro encoding error, which cannot happen for a well-formed version.
pub fn version_file_bytes(version: &ModelVersion) -> Result<Vec<u8>, heart_schemas::EncodeError> {
    version.encode()
}
