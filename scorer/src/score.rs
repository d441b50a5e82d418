//! Pure scoring: bytes or a record in, a prediction or a rejection out. No I/O here.

use heart_model::Model;
use heart_schemas::{
    AvroRecord, DecodeError, Invalid, PatientRecord, Prediction, Reason, RiskThresholds,
};

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
    /// The prediction to publish.
    pub prediction: Prediction,
    /// One-hot fields with a category unseen in training.
    pub unseen_categories: u32,
}

/// Scores a validated record with `model`.
pub fn score_record(
    model: &Model,
    thresholds: &RiskThresholds,
    record: PatientRecord,
    now_ms: i64,
) -> Scored {
    let out = model.predict(&record);
    let probability = out.probability;
    Scored {
        prediction: Prediction {
            patient_id: record.patient_id,
            event_time: record.event_time,
            scored_at: now_ms,
            probability,
            label: Prediction::label_for(probability),
            risk_level: thresholds.level(probability),
            model_name: model.name().to_owned(),
            model_version: model.version_number(),
        },
        unseen_categories: out.unseen_categories,
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
}

/// Decodes, validates and scores one Kafka value framed with this build's schema (single-object
/// encoding). Registry-framed values are decoded by the pipeline's `writer_schemas` and scored
/// with [`score_decoded`].
///
/// # Errors
/// A [`Rejection`] when the value is absent, not decodable or fails validation.
pub fn score_bytes(
    model: &Model,
    thresholds: &RiskThresholds,
    value: Option<&[u8]>,
    now_ms: i64,
) -> Result<Scored, Rejection> {
    let decoded = PatientRecord::decode(value.unwrap_or_default());
    score_decoded(
        model,
        thresholds,
        decoded.map_err(|e| Rejection::undecodable(&e)),
        now_ms,
    )
}

/// Validates and scores a decoded record (or passes its decoding's rejection on).
///
/// # Errors
/// The decoding's [`Rejection`], or one for a record that fails validation.
pub fn score_decoded(
    model: &Model,
    thresholds: &RiskThresholds,
    decoded: Result<PatientRecord, Rejection>,
    now_ms: i64,
) -> Result<Scored, Rejection> {
    let record = decoded?;
    record.validate().map_err(|e| Rejection::invalid(&e))?;
    let scored = score_record(model, thresholds, record, now_ms);
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
            age: 63,
            sex: 1,
            cp: 1,
            trestbps: 145.0,
            chol: 233.0,
            fbs: 1,
            restecg: 2,
            thalach: 150.0,
            exang: 0,
            oldpeak: 2.3,
            slope: 3,
            ca: Some(0),
            thal: Some(6),
        }
    }

    /// A tiny logistic model whose probability depends only on age: sigmoid((age - 55) / 8 * w).
    pub(crate) fn model(version: i64, weight: f64) -> Model {
        let rows: Vec<_> = [45, 55, 65]
            .iter()
            .map(|&age| PatientRecord { age, ..record() }.features())
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
        };
        artifact.set_golden(&rows);
        Model::load(artifact.to_version(version, 0, "test").unwrap()).unwrap()
    }

    #[test]
    fn valid_bytes_score_with_model_version_and_level() {
        let m = model(3, 2.0);
        let bytes = record().encode().unwrap();
        let s = score_bytes(&m, &RiskThresholds::default(), Some(&bytes), 5).unwrap();
        assert_eq!(s.prediction.model_version, 3);
        assert_eq!(s.prediction.scored_at, 5);
        assert_eq!(s.prediction.event_time, 1_000);
        // age 63 is above the training mean 55, so with a positive weight p > 0.5.
        assert!(s.prediction.probability > 0.5);
        assert_eq!(s.prediction.label, 1);
        assert_eq!(
            s.prediction.risk_level,
            RiskThresholds::default().level(s.prediction.probability)
        );
    }

    #[test]
    fn each_bad_input_gets_its_reason() {
        let m = model(1, 1.0);
        let t = RiskThresholds::default();
        let out_of_range = PatientRecord {
            age: 500,
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
        let s = score_record(&m, &RiskThresholds::new(0.4, 0.6).unwrap(), record(), 0);
        assert_eq!(s.prediction.probability, 0.5);
        assert_eq!(s.prediction.risk_level, RiskLevel::Medium);
        let s = score_record(&m, &RiskThresholds::new(0.1, 0.5).unwrap(), record(), 0);
        assert_eq!(s.prediction.risk_level, RiskLevel::High);
    }
}
