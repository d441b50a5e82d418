//! Fixtures shared by the api and broker tests: patients, a small verified model, an app.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use heart_model::{Algorithm, Artifact, Estimator, Model, Preprocessor};
use heart_schemas::{ModelVersion, PatientRecord};
use heart_scorer::http::AppState;
use heart_scorer::metrics::Metrics;
use heart_scorer::model_store::ModelStore;
use heart_scorer::score::Rules;
use heart_scorer::status::PipelineStatus;

pub fn patient(age: i32) -> PatientRecord {
    PatientRecord {
        patient_id: format!("p-{age}"),
        event_time: 1_700_000_000_000,
        age: Some(age),
        sex: Some(1),
        cp: Some(4),
        trestbps: Some(130.0),
        chol: Some(250.0),
        fbs: Some(0),
        restecg: Some(0),
        thalach: Some(150.0),
        exang: Some(0),
        oldpeak: Some(1.0),
        slope: Some(2),
        ca: Some(0),
        thal: Some(3),
    }
}

/// A logistic model whose probability rises with age: sigmoid(weight * standardized age).
pub fn model_version(version: i64, weight: f64) -> ModelVersion {
    with_profile(version, weight, true)
}

/// [`model_version`] as a trainer before payload format v3 wrote it: no training profile, so it
/// scores but cannot explain itself.
pub fn model_version_without_profile(version: i64, weight: f64) -> ModelVersion {
    with_profile(version, weight, false)
}

fn with_profile(version: i64, weight: f64, profile: bool) -> ModelVersion {
    let rows: Vec<_> = [40, 50, 60, 70]
        .iter()
        .map(|&a| patient(a).features())
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
        training_data_sha256: "test".into(),
        cv_metrics: BTreeMap::from([("cv.roc_auc.mean".to_owned(), 0.9)]),
        golden: vec![],
        profile: None,
    };
    if profile {
        artifact.set_profile(&rows);
    }
    artifact.set_golden(&rows);
    artifact.to_version(version, 0, "test").unwrap()
}

/// A logistic model fitted (weights made up, statistics real) on `rows`, with its training
/// profile: the reference the scorer's drift window compares with.
pub fn trained_on(rows: &[PatientRecord], version: i64) -> ModelVersion {
    let features: Vec<_> = rows.iter().map(PatientRecord::features).collect();
    let preprocessor = Preprocessor::fit(&features);
    let weights = (0..preprocessor.width())
        .map(|j| if j % 2 == 0 { 0.3 } else { -0.2 })
        .collect();
    let mut artifact = Artifact {
        name: "heart-disease".into(),
        algorithm: Algorithm::LogisticRegression,
        hyperparameters: BTreeMap::new(),
        preprocessor,
        estimator: Estimator::Logistic {
            weights,
            intercept: -0.1,
        },
        training_data_sha256: "test".into(),
        cv_metrics: BTreeMap::new(),
        golden: vec![],
        profile: None,
    };
    artifact.set_profile(&features);
    artifact.set_golden(&features[..10]);
    artifact.to_version(version, 0, "test").unwrap()
}

pub struct TestApp {
    pub state: AppState,
}

impl TestApp {
    pub fn new(with_model: bool) -> Self {
        let metrics = Metrics::new().unwrap();
        let store = Arc::new(ModelStore::new(
            "heart-disease".into(),
            None,
            metrics.clone(),
        ));
        if with_model {
            store.offer(model_version(7, 1.5));
        }
        Self {
            state: AppState {
                store,
                metrics,
                rules: Rules::default(),
                status: Arc::new(PipelineStatus::default()),
                kafka: false,
                max_body_bytes: 4096,
                predict_batch_max: 3,
            },
        }
    }

    pub fn model(&self) -> Arc<Model> {
        self.state.store.current().unwrap()
    }
}
