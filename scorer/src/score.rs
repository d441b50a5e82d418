//! Pure scoring: bytes or a record in, a prediction or a rejection out. No I/O here.

use heart_model::Model;
use heart_schemas::{
    AvroRecord, DecodeError, FieldSet, ImputationPolicy, Invalid, PatientRecord, Prediction,
    Reason, RiskThresholds, TooManyMissing,
};

/// What the operator decides about scoring, beyond the model: the risk bands, which missing
/// attributes may be imputed and whether predictions are explained.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rules {
    /// Probability → risk level.
    pub thresholds: RiskThresholds,
    /// Which missing attributes the model's imputer may fill in.
    pub imputation: ImputationPolicy,
    /// Explanations.
    pub explain: Explain,
}

/// Which predictions carry an explanation, and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explain {
    /// Every prediction of the stream and of score-file (HTTP asks per request).
    pub stream: bool,
    /// Contributions listed, largest first.
    pub top_k: usize,
}

impl Default for Explain {
    fn default() -> Self {
        Self {
            stream: false,
            top_k: 5,
        }
    }
}

/// A record that cannot be scored: the reason code and a message naming what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Stable reason code.
    pub reason: Reason,
    /// Human-readable detail.
    pub message: String,
}

/// A prediction plus what the model noticed on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The prediction to publish (its `imputed_fields` name what was filled in).
    pub prediction: Prediction,
    /// One-hot fields with a category unseen in training.
    pub unseen_categories: u32,
    /// The record's bins in the model's training profile, for drift (`None` without a profile).
    pub located: Option<crate::drift::Located>,
    /// Every field's |contribution| when explained (the prediction lists only the top k), for
    /// the explanation metrics.
    pub abs_contributions: Option<[f64; heart_schemas::N_FIELDS]>,
}

/// Scores a validated record with `model`, imputing the missing attributes `imputed` names
/// (what [`ImputationPolicy::check`] allowed), with its explanation if `explain` (and the model
/// can explain itself: [`Model::explainable`]).
pub fn score_record(
    model: &Model,
    rules: &Rules,
    record: PatientRecord,
    imputed: FieldSet,
    now_ms: i64,
    explain: bool,
) -> Scored {
    let features = record.features();
    let out = model.predict_features(&features);
    let probability = out.probability;
    let explained = if explain {
        model.explain(&features).ok()
    } else {
        None
    };
    let abs_contributions = explained.as_ref().map(|e| e.contributions.map(f64::abs));
    let explanation = explained.map(|e| e.summary(rules.explain.top_k));
    Scored {
        prediction: Prediction {
            patient_id: record.patient_id,
            event_time: record.event_time,
            scored_at: now_ms,
            probability,
            label: Prediction::label_for(probability),
            risk_level: rules.thresholds.level(probability),
            model_name: model.name().to_owned(),
            model_version: model.version_number(),
            imputed_fields: imputed,
            explanation,
        },
        unseen_categories: out.unseen_categories,
        located: model
            .artifact
            .profile
            .as_ref()
            .map(|p| crate::drift::locate(p, &features)),
        abs_contributions,
    }
}

impl Rejection {
    /// The rejection of a value that does not decode.
    pub fn undecodable(error: &DecodeError) -> Self {
        Self {
            reason: Reason::for_decode(error),
            message: error.to_string(),
        }
    }

    /// The rejection of a record that fails validation: the first violation decides the reason,
    /// the message lists them all.
    pub fn invalid(error: &Invalid) -> Self {
        Self {
            reason: Reason::for_invalid(error),
            message: error.to_string(),
        }
    }

    /// The rejection of a record missing more than the imputation policy fills in.
    pub fn too_many_missing(error: &TooManyMissing) -> Self {
        Self {
            reason: Reason::TooManyMissing,
            message: error.to_string(),
        }
    }
}

/// Validates a record and checks it against the imputation policy: the attributes to impute.
///
/// # Errors
/// A [`Rejection`] for a bad value ([`Reason::for_invalid`]) or too many missing attributes
/// ([`Reason::TooManyMissing`]).
pub fn admit(rules: &Rules, record: &PatientRecord) -> Result<FieldSet, Rejection> {
    record.validate().map_err(|e| Rejection::invalid(&e))?;
    rules
        .imputation
        .check(&record.features())
        .map_err(|e| Rejection::too_many_missing(&e))
}

/// Decodes, validates and scores one Kafka value framed with this build's schema (single-object
/// encoding). Registry-framed values are decoded by the pipeline's `writer_schemas` and scored
/// with [`score_decoded`].
///
/// # Errors
/// A [`Rejection`] when the value is absent, not decodable or not admitted.
pub fn score_bytes(
    model: &Model,
    rules: &Rules,
    value: Option<&[u8]>,
    now_ms: i64,
) -> Result<Scored, Rejection> {
    let decoded = PatientRecord::decode(value.unwrap_or_default());
    score_decoded(
        model,
        rules,
        decoded.map_err(|e| Rejection::undecodable(&e)),
        now_ms,
    )
}

/// Admits and scores a decoded record (or passes its decoding's rejection on).
///
/// # Errors
/// The decoding's [`Rejection`], or one for a record that is not admitted ([`admit`]).
pub fn score_decoded(
    model: &Model,
    rules: &Rules,
    decoded: Result<PatientRecord, Rejection>,
    now_ms: i64,
) -> Result<Scored, Rejection> {
    let record = decoded?;
    let imputed = admit(rules, &record)?;
    let scored = score_record(model, rules, record, imputed, now_ms, rules.explain.stream);
    if scored.prediction.probability.is_finite() {
        Ok(scored)
    } else {
        Err(Rejection {
            reason: Reason::InvalidValue,
            message: "model produced a non-finite probability".to_owned(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use heart_model::{Algorithm, Artifact, Estimator, Preprocessor};
    use heart_schemas::RiskLevel;

    use super::*;

    pub(crate) fn record() -> PatientRecord {
        PatientRecord {
            patient_id: "p-1".into(),
            event_time: 1_000,
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

    /// A tiny logistic model whose probability depends only on age: sigmoid((age - 55) / 8 * w).
    pub(crate) fn model(version: i64, weight: f64) -> Model {
        let rows: Vec<_> = [45, 55, 65]
            .iter()
            .map(|&age| {
                PatientRecord {
                    age: Some(age),
                    ..record()
                }
                .features()
            })
            .collect();
        let preprocessor = Preprocessor::fit(&rows);
        let mut weights = vec![0.0; preprocessor.width()];
        weights[0] = weight;
        let mut artifact = Artifact {
            name: "heart-disease".into(),
            algorithm: Algorithm::LogisticRegression,
            hyperparameters: BTreeMap::new(),
            preprocessor,
            estimator: Estimator::Logistic {
                weights,
                intercept: 0.0,
            },
            training_data_sha256: String::new(),
            cv_metrics: BTreeMap::new(),
            golden: vec![],
            profile: None,
        };
        artifact.set_golden(&rows);
        Model::load(artifact.to_version(version, 0, "test").unwrap()).unwrap()
    }

    #[test]
    fn valid_bytes_score_with_model_version_and_level() {
        let m = model(3, 2.0);
        let bytes = record().encode().unwrap();
        let s = score_bytes(&m, &Rules::default(), Some(&bytes), 5).unwrap();
        assert_eq!(s.prediction.model_version, 3);
        assert_eq!(s.prediction.scored_at, 5);
        assert_eq!(s.prediction.event_time, 1_000);
        // age 63 is above the training mean 55, so with a positive weight p > 0.5.
        assert!(s.prediction.probability > 0.5);
        assert_eq!(s.prediction.label, 1);
        assert_eq!(
            s.prediction.risk_level,
            Rules::default().thresholds.level(s.prediction.probability)
        );
    }

    #[test]
    fn each_bad_input_gets_its_reason() {
        let m = model(1, 1.0);
        let t = Rules::default();
        let out_of_range = PatientRecord {
            age: Some(500),
            ..record()
        }
        .encode()
        .unwrap();
        let cases: [(Option<&[u8]>, Reason); 4] = [
            (None, Reason::EmptyValue),
            (Some(b"not avro"), Reason::MalformedAvro),
            (Some(&out_of_range), Reason::OutOfRange),
            (Some(&out_of_range[..12]), Reason::MalformedAvro),
        ];
        for (value, want) in cases {
            let err = score_bytes(&m, &t, value, 0).unwrap_err();
            assert_eq!(err.reason, want, "{}", err.message);
        }
        let err = score_bytes(&m, &t, Some(&out_of_range), 0).unwrap_err();
        assert_eq!(
            err.message,
            "age = 500 is outside the allowed range 1..=120"
        );
    }

    #[test]
    fn thresholds_decide_the_level() {
        let m = model(1, 0.0); // p = 0.5 for everyone
        let rules = |medium, high| Rules {
            thresholds: RiskThresholds::new(medium, high).unwrap(),
            ..Rules::default()
        };
        let s = score_record(&m, &rules(0.4, 0.6), record(), FieldSet::EMPTY, 0, false);
        assert_eq!(s.prediction.probability, 0.5);
        assert_eq!(s.prediction.risk_level, RiskLevel::Medium);
        let s = score_record(&m, &rules(0.1, 0.5), record(), FieldSet::EMPTY, 0, false);
        assert_eq!(s.prediction.risk_level, RiskLevel::High);
    }

    #[test]
    fn missing_attributes_are_imputed_and_named_within_the_policy() {
        let m = model(1, 1.0);
        let incomplete = PatientRecord {
            chol: Some(0.0), // "not measured", by the contract
            slope: None,
            ca: None,
            thal: None,
            ..record()
        };
        let s = score_decoded(&m, &Rules::default(), Ok(incomplete.clone()), 0).unwrap();
        assert_eq!(
            s.prediction.imputed_fields.names().collect::<Vec<_>>(),
            ["chol", "slope", "ca", "thal"]
        );
        // The imputed values are the training statistics: only age carries weight here, so the
        // probability is the complete record's.
        let full = score_decoded(&m, &Rules::default(), Ok(record()), 0).unwrap();
        assert_eq!(s.prediction.probability, full.prediction.probability);
        assert!(full.prediction.imputed_fields.is_empty());

        // A missing age (never imputed by default) is a dead letter naming it.
        let no_age = PatientRecord {
            age: None,
            ..incomplete.clone()
        };
        let err = score_decoded(&m, &Rules::default(), Ok(no_age), 0).unwrap_err();
        assert_eq!(err.reason, Reason::TooManyMissing);
        assert!(
            err.message.contains("age may never be imputed"),
            "{}",
            err.message
        );

        // A stricter policy refuses what the default takes.
        let strict = Rules {
            imputation: ImputationPolicy::new(3, FieldSet::EMPTY),
            ..Rules::default()
        };
        let err = score_decoded(&m, &strict, Ok(incomplete), 0).unwrap_err();
        assert_eq!(err.reason, Reason::TooManyMissing);
        assert_eq!(
            err.message,
            "missing chol, slope, ca, thal (4 of 13); at most 3 may be imputed"
        );
    }
}
