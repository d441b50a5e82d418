//! Loading a model version: verify everything, then score.

use heart_schemas::patient::{FIELDS, N_FIELDS};
use heart_schemas::{ModelVersion, PatientRecord};
use thiserror::Error;

use crate::artifact::{Artifact, PAYLOAD_FORMATS, sha256_hex};
use crate::estimator::Estimator;
use crate::explain::{ExplainError, Explainer, Explanation};
use crate::preprocess::{ColumnStep, MAX_WIDTH};
use crate::stumps::StumpTable;

/// Largest difference allowed between a golden vector's probability and ours.
pub const GOLDEN_TOLERANCE: f64 = 1e-9;

/// Why a model version was refused. The current model, if any, stays active.
#[derive(Debug, Error)]
pub enum ModelLoadError {
    /// The payload is in a format this build cannot read.
    #[error(
        "unsupported payload format {found:?} (this build reads {PAYLOAD_FORMATS:?}); a newer trainer wrote it: upgrade this scorer"
    )]
    UnsupportedFormat {
        /// The format named in the envelope.
        found: String,
    },
    /// The payload's sha256 is not the one in the envelope.
    #[error("checksum mismatch: envelope says {expected}, payload hashes to {actual}")]
    ChecksumMismatch {
        /// From the envelope.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// The payload does not deserialize.
    #[error("corrupt payload")]
    Corrupt(#[from] postcard::Error),
    /// The envelope and the payload disagree.
    #[error("envelope says {field} = {envelope:?}, payload says {payload:?}")]
    EnvelopeMismatch {
        /// Which field.
        field: &'static str,
        /// Envelope value.
        envelope: String,
        /// Payload value.
        payload: String,
    },
    /// The artifact breaks a structural invariant.
    #[error("invalid artifact: {0}")]
    Invalid(String),
    /// The artifact carries no golden vectors, so it cannot prove itself.
    #[error("artifact has no golden vectors")]
    NoGoldenVectors,
    /// A golden vector did not reproduce.
    #[error(
        "golden vector {index} does not reproduce: trainer said {expected}, this build computes {actual}"
    )]
    GoldenMismatch {
        /// Which vector.
        index: usize,
        /// The trainer's probability.
        expected: f64,
        /// Ours.
        actual: f64,
    },
}

/// A scored record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Probability of heart disease.
    pub probability: f64,
    /// One-hot fields whose category was not seen in training (encoded as all zeros).
    pub unseen_categories: u32,
}

/// A verified model, ready to score.
#[derive(Debug, Clone)]
pub struct Model {
    /// The envelope (metadata; the payload is kept for re-publishing).
    pub version: ModelVersion,
    /// The decoded artifact.
    pub artifact: Artifact,
    /// A boosted model of stumps, tabulated (checked against the golden vectors like the rest).
    pub(crate) stumps: Option<StumpTable>,
    /// Node expectations and column means, when the artifact has a profile.
    pub(crate) explainer: Option<Explainer>,
}

impl Model {
    /// Verifies a model version: payload format, checksum, envelope/payload agreement, structure,
    /// then every golden vector to within [`GOLDEN_TOLERANCE`].
    ///
    /// # Errors
    /// The first check that fails, as a [`ModelLoadError`].
    pub fn load(version: ModelVersion) -> Result<Self, ModelLoadError> {
        if !PAYLOAD_FORMATS.contains(&version.payload_format.as_str()) {
            return Err(ModelLoadError::UnsupportedFormat {
                found: version.payload_format,
            });
        }
        let actual = sha256_hex(&version.payload);
        if actual != version.checksum {
            return Err(ModelLoadError::ChecksumMismatch {
                expected: version.checksum,
                actual,
            });
        }
        let artifact = Artifact::from_payload(&version.payload_format, &version.payload)?;
        for (field, envelope, payload) in [
            ("name", version.name.as_str(), artifact.name.as_str()),
            (
                "algorithm",
                version.algorithm.as_str(),
                artifact.algorithm.code(),
            ),
        ] {
            if envelope != payload {
                return Err(ModelLoadError::EnvelopeMismatch {
                    field,
                    envelope: envelope.to_owned(),
                    payload: payload.to_owned(),
                });
            }
        }
        check_structure(&artifact).map_err(ModelLoadError::Invalid)?;
        let explainer = Explainer::new(&artifact);
        let stumps = match artifact.estimator.uncalibrated() {
            Estimator::Boosted {
                base_score,
                learning_rate,
                trees,
            } => StumpTable::new(*base_score, *learning_rate, trees).map(|mut table| {
                if let Some(e) = &explainer {
                    table.set_expectations(trees, &e.root_values());
                }
                table
            }),
            _ => None,
        };
        let model = Self {
            version,
            artifact,
            stumps,
            explainer,
        };
        model.verify_golden()?;
        Ok(model)
    }

    fn verify_golden(&self) -> Result<(), ModelLoadError> {
        if self.artifact.golden.is_empty() {
            return Err(ModelLoadError::NoGoldenVectors);
        }
        for (index, g) in self.artifact.golden.iter().enumerate() {
            let actual = self.predict_features(&g.input).probability;
            if (actual - g.probability).abs() > GOLDEN_TOLERANCE || !actual.is_finite() {
                return Err(ModelLoadError::GoldenMismatch {
                    index,
                    expected: g.probability,
                    actual,
                });
            }
        }
        Ok(())
    }

    /// Scores a record. The record should be validated first; this does not re-check ranges.
    pub fn predict(&self, record: &PatientRecord) -> Scored {
        self.predict_features(&record.features())
    }

    /// Scores raw attributes in field order.
    pub fn predict_features(&self, features: &[Option<f64>; N_FIELDS]) -> Scored {
        match &self.stumps {
            Some(table) => {
                let platt = self.artifact.estimator.calibration();
                self.artifact.apply_with(features, |x| {
                    let p = table.predict(x);
                    platt.map_or(p, |m| m.apply(p))
                })
            }
            None => self.artifact.apply(features),
        }
    }

    /// Whether [`Model::explain`] can answer: the artifact has a training profile.
    ///
    /// # Errors
    /// [`ExplainError::NoProfile`] for an artifact older than payload format v3.
    pub fn explainable(&self) -> Result<(), ExplainError> {
        match self.explainer {
            Some(_) => Ok(()),
            None => Err(self.no_profile()),
        }
    }

    fn no_profile(&self) -> ExplainError {
        ExplainError::NoProfile {
            name: self.version.name.clone(),
            version: self.version.version,
            format: self.version.payload_format.clone(),
        }
    }

    /// Explains the model's output for raw attributes in field order (see [`crate::explain`]).
    ///
    /// # Errors
    /// [`ExplainError::NoProfile`] for an artifact older than payload format v3.
    pub fn explain(&self, features: &[Option<f64>; N_FIELDS]) -> Result<Explanation, ExplainError> {
        match &self.explainer {
            Some(explainer) => {
                Ok(explainer.explain(&self.artifact, self.stumps.as_ref(), features))
            }
            None => Err(self.no_profile()),
        }
    }

    /// Model name.
    pub fn name(&self) -> &str {
        &self.version.name
    }

    /// Model version.
    pub fn version_number(&self) -> i64 {
        self.version.version
    }
}

fn check_structure(a: &Artifact) -> Result<(), String> {
    let steps = &a.preprocessor.steps;
    if steps.len() != N_FIELDS || steps.iter().enumerate().any(|(i, s)| s.field() != i) {
        return Err(format!(
            "preprocessor must have one step per field in order ({N_FIELDS})"
        ));
    }
    for step in steps {
        match step {
            ColumnStep::Scaled {
                median, mean, std, ..
            } => {
                if ![*median, *mean, *std].iter().all(|v| v.is_finite()) || *std <= 0.0 {
                    return Err(format!(
                        "{}: scaling parameters must be finite with std > 0",
                        FIELDS[step.field()].name
                    ));
                }
            }
            ColumnStep::OneHot { categories, .. } => {
                if categories.is_empty() || categories.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!(
                        "{}: categories must be non-empty and strictly ascending",
                        FIELDS[step.field()].name
                    ));
                }
            }
        }
    }
    let width = a.preprocessor.width();
    if width > MAX_WIDTH {
        return Err(format!(
            "{width} encoded features exceed the maximum {MAX_WIDTH}"
        ));
    }
    a.estimator.check(width)?;
    match &a.profile {
        Some(profile) => profile.check(width, &a.estimator),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::artifact::Algorithm;
    use crate::estimator::{Estimator, Node, Tree, sigmoid};
    use crate::preprocess::Preprocessor;

    pub(crate) fn rows() -> Vec<[Option<f64>; N_FIELDS]> {
        (0..10)
            .map(|i| {
                let f = f64::from(i);
                [
                    Some(40.0 + f),
                    Some(f64::from(i % 2)),
                    Some(f64::from(1 + i % 4)),
                    Some(120.0 + f),
                    Some(200.0 + 3.0 * f),
                    Some(0.0),
                    Some(f64::from(i % 3)),
                    Some(150.0 - f),
                    Some(f64::from(i % 2)),
                    Some(f / 4.0),
                    Some(f64::from(1 + i % 3)),
                    if i == 3 { None } else { Some(f64::from(i % 4)) },
                    Some([3.0, 6.0, 7.0][(i % 3) as usize]),
                ]
            })
            .collect()
    }

    fn artifact() -> Artifact {
        let rows = rows();
        let preprocessor = Preprocessor::fit(&rows);
        let width = preprocessor.width();
        let estimator = Estimator::Logistic {
            weights: (0..width).map(|i| (i as f64 - 10.0) / 20.0).collect(),
            intercept: -0.25,
        };
        let mut a = Artifact {
            name: "heart-disease".into(),
            algorithm: Algorithm::LogisticRegression,
            hyperparameters: BTreeMap::from([("alpha".into(), "1".into())]),
            preprocessor,
            estimator,
            training_data_sha256: "00".into(),
            cv_metrics: BTreeMap::new(),
            golden: Vec::new(),
            profile: None,
        };
        a.set_golden(&rows);
        a
    }

    #[test]
    fn a_well_formed_version_loads_and_scores() {
        let a = artifact();
        let model = Model::load(a.to_version(4, 1, "test").unwrap()).unwrap();
        assert_eq!(model.version_number(), 4);
        let p = model.predict_features(&rows()[0]).probability;
        assert!((0.0..=1.0).contains(&p));
    }

    #[test]
    fn payload_is_deterministic() {
        assert_eq!(
            artifact().to_payload().unwrap(),
            artifact().to_payload().unwrap()
        );
    }

    #[test]
    fn a_flipped_payload_byte_fails_the_checksum() {
        let mut v = artifact().to_version(1, 0, "t").unwrap();
        let mid = v.payload.len() / 2;
        v.payload[mid] ^= 0x01;
        assert!(matches!(
            Model::load(v),
            Err(ModelLoadError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn a_changed_weight_with_a_fixed_checksum_fails_golden_vectors() {
        let mut a = artifact();
        let golden = a.golden.clone();
        if let Estimator::Logistic { weights, .. } = &mut a.estimator {
            weights[0] += 0.5;
        }
        a.golden = golden;
        let err = Model::load(a.to_version(1, 0, "t").unwrap()).unwrap_err();
        assert!(
            matches!(err, ModelLoadError::GoldenMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn garbage_payload_is_corrupt_and_foreign_format_is_refused() {
        let mut v = artifact().to_version(1, 0, "t").unwrap();
        v.payload = vec![0xFF; 8];
        v.checksum = sha256_hex(&v.payload);
        assert!(matches!(
            Model::load(v.clone()),
            Err(ModelLoadError::Corrupt(_))
        ));
        v.payload_format = "pickle".into();
        assert!(matches!(
            Model::load(v),
            Err(ModelLoadError::UnsupportedFormat { .. })
        ));
    }

    #[test]
    fn no_golden_vectors_is_refused() {
        let mut a = artifact();
        a.golden.clear();
        assert!(matches!(
            Model::load(a.to_version(1, 0, "t").unwrap()),
            Err(ModelLoadError::NoGoldenVectors)
        ));
    }

    #[test]
    fn envelope_name_must_match_payload() {
        let mut v = artifact().to_version(1, 0, "t").unwrap();
        v.name = "other".into();
        assert!(matches!(
            Model::load(v),
            Err(ModelLoadError::EnvelopeMismatch { field: "name", .. })
        ));
    }

    /// `artifact()` with a hand-built boosted estimator on column 0 (standardised age).
    fn boosted_artifact() -> Artifact {
        let mut a = artifact();
        a.algorithm = Algorithm::GradientBoosting;
        a.estimator = Estimator::Boosted {
            base_score: 0.2,
            learning_rate: 0.1,
            trees: vec![
                Tree::stump(0, 0.0, -1.5, 2.5),
                Tree {
                    nodes: vec![Node::Leaf { probability: 0.75 }],
                },
            ],
        };
        a.set_golden(&rows());
        a
    }

    #[test]
    fn a_boosted_artifact_round_trips_with_hand_computed_probabilities() {
        let a = boosted_artifact();
        let v = a.to_version(3, 0, "t").unwrap();
        assert_eq!(v.algorithm, "gradient_boosting");
        let model = Model::load(v).unwrap();
        assert_eq!(model.artifact, a);
        // Ages 40..=49 standardise around 44.5: the young half go left.
        // Left: 0.2 + 0.1 × (-1.5 + 0.75) = 0.125; right: 0.2 + 0.1 × (2.5 + 0.75) = 0.525.
        let (left, right) = (sigmoid(0.125), sigmoid(0.525));
        assert!((left - 0.531_209_373_373_756_3).abs() < 1e-15);
        assert!((right - 0.628_316_188_295_366_3).abs() < 1e-15);
        for (i, row) in rows().iter().enumerate() {
            let p = model.predict_features(row).probability;
            assert_eq!(p, a.golden[i].probability);
            let expected = if i < 5 { left } else { right };
            assert!((p - expected).abs() < 1e-15, "row {i}: {p}");
        }
    }

    #[test]
    fn a_boosted_artifact_with_a_changed_leaf_score_fails_golden_vectors() {
        let mut a = boosted_artifact();
        if let Estimator::Boosted { trees, .. } = &mut a.estimator {
            trees[1].nodes[0] = Node::Leaf { probability: 0.5 };
        }
        let err = Model::load(a.to_version(1, 0, "t").unwrap()).unwrap_err();
        assert!(
            matches!(err, ModelLoadError::GoldenMismatch { .. }),
            "{err}"
        );
        let mut b = boosted_artifact();
        if let Estimator::Boosted { learning_rate, .. } = &mut b.estimator {
            *learning_rate = -0.1;
        }
        let err = Model::load(b.to_version(1, 0, "t").unwrap()).unwrap_err();
        assert!(matches!(err, ModelLoadError::Invalid(_)), "{err}");
    }

    #[test]
    fn model_is_send_and_sync() {
        fn assert_traits<T: Send + Sync + 'static>() {}
        assert_traits::<Model>();
    }

    #[test]
    fn a_calibrated_boosted_artifact_is_format_v2_and_scores_through_its_table_and_map() {
        let plain = boosted_artifact();
        assert_eq!(
            plain.to_version(1, 0, "t").unwrap().payload_format,
            "heart-model/postcard/v1",
            "an artifact without calibration stays readable by v1 readers"
        );
        let platt = crate::estimator::Platt { a: 1.5, b: -0.25 };
        let mut a = plain.clone();
        a.estimator = Estimator::Calibrated {
            estimator: Box::new(plain.estimator.clone()),
            platt,
        };
        a.set_golden(&rows());
        let v = a.to_version(2, 0, "t").unwrap();
        assert_eq!(v.payload_format, "heart-model/postcard/v2");
        let model = Model::load(v.clone()).unwrap();
        assert!(
            model.stumps.is_some(),
            "the table serves the calibrated stumps too"
        );
        // The map of the hand-computed logits of the uncalibrated test above.
        let (left, right) = (sigmoid(1.5 * 0.125 - 0.25), sigmoid(1.5 * 0.525 - 0.25));
        for (i, row) in rows().iter().enumerate() {
            let p = model.predict_features(row).probability;
            let expected = if i < 5 { left } else { right };
            assert!((p - expected).abs() < 1e-12, "row {i}: {p} vs {expected}");
            assert_eq!(p, a.golden[i].probability);
        }
        // A v1-only reader would see an unknown format, and so does this build for a v4.
        let mut future = v;
        future.payload_format = "heart-model/postcard/v4".into();
        let err = Model::load(future).unwrap_err();
        assert!(err.to_string().contains("upgrade this scorer"), "{err}");
    }
}
