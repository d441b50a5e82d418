//! Training: seeded stratified folds, the grid search over every model kind, selection, and the
//! final artifacts refitted on all rows with their golden vectors.
//!
//! The pieces live apart: model kinds in [`crate::algorithms`], cross-validation in
//! [`crate::cv`], the grid search in [`crate::search`], the thread pool in `pool`. Every
//! probability evaluated goes through heart-model's `Artifact::apply`, the code the scorer runs.

use heart_model::{Algorithm, Artifact, Model};
use indicatif::ProgressBar;

pub use crate::algorithms::Params;
pub use crate::cv::CvResult;
pub use crate::search::ModelResult;

use crate::data::{Dataset, Row};
use crate::error::TrainError;
use crate::evaluate;
use crate::features;
use crate::search::{self, argmax};

/// How many golden vectors come from the training data (spread evenly over it).
const GOLDEN_FROM_DATA: usize = 10;

/// Everything `trainer train` produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per algorithm, in [`TrainOptions::algorithms`] order.
    pub models: Vec<ModelResult>,
    /// Index into `models` of the chosen model (highest mean ROC-AUC).
    pub chosen: usize,
    /// The folds used (row indices of each test fold).
    pub folds: Vec<Vec<usize>>,
    /// The chosen model refitted on all rows.
    pub artifact: Artifact,
}

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Model name.
    pub name: String,
    /// Seed for folds and forests.
    pub seed: u64,
    /// Number of folds.
    pub folds: usize,
    /// Which algorithms to try (every one this build can train, by default).
    pub algorithms: Vec<Algorithm>,
}

/// Cross-validates every candidate of every algorithm, picks the best by mean ROC-AUC, refits it
/// on all rows and builds the artifact, then checks it loads.
///
/// # Errors
/// [`TrainError`] if a fit fails or the artifact fails its own verification.
pub fn train(
    data: &Dataset,
    opts: &TrainOptions,
    progress: &ProgressBar,
) -> Result<Outcome, TrainError> {
    let smaller = data.positives().min(data.len() - data.positives());
    if smaller < opts.folds {
        return Err(TrainError::TooFewRows {
            folds: opts.folds,
            found: smaller,
        });
    }
    let folds = evaluate::stratified_folds(&data.target, opts.folds, opts.seed);
    let models = search::search(data, &folds, &opts.algorithms, opts.seed, progress)?;
    let chosen = argmax(models.iter().map(|m| m.best().summary("roc_auc").mean));
    let artifact = build_artifact(data, opts, &models[chosen])?;
    Ok(Outcome {
        models,
        chosen,
        folds,
        artifact,
    })
}

/// Refits `model`'s best candidate on every row and builds the artifact with golden vectors.
///
/// # Errors
/// If the fit fails or the artifact does not load.
pub fn build_artifact(
    data: &Dataset,
    opts: &TrainOptions,
    model: &ModelResult,
) -> Result<Artifact, TrainError> {
    let best = model.best();
    let all: Vec<usize> = (0..data.len()).collect();
    let mut artifact = features::fit_model(data, &all, &best.params, opts.seed)?;
    artifact.name = opts.name.clone();
    artifact
        .hyperparameters
        .insert("seed".to_owned(), opts.seed.to_string());
    artifact.training_data_sha256 = data.sha256.clone();
    artifact.cv_metrics = best.metric_map();
    artifact.set_golden(&golden_inputs(&data.rows));
    // The artifact must prove itself exactly as the scorer will check it.
    Model::load(artifact.to_version(0, 0, crate::CODE_VERSION)?)?;
    Ok(artifact)
}

/// Rows spread over the data, plus an all-missing row and a row with unseen categories, so that
/// imputation and the unseen-category path are pinned too.
fn golden_inputs(rows: &[Row]) -> Vec<Row> {
    let n = GOLDEN_FROM_DATA.min(rows.len());
    let mut inputs: Vec<Row> = (0..n).map(|k| rows[k * rows.len() / n]).collect();
    inputs.push([None; heart_schemas::N_FIELDS]);
    let mut unseen = rows[0];
    unseen[2] = Some(9.0); // cp has codes 1..=4
    unseen[12] = Some(5.0); // thal has codes 3, 6, 7
    inputs.push(unseen);
    inputs
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::algorithms::RandomForestParams;
    use crate::cv::tests::cleveland;

    #[test]
    fn same_seed_gives_a_byte_identical_payload() {
        let data = cleveland();
        let opts = TrainOptions {
            name: "heart-disease".into(),
            seed: 42,
            folds: 3,
            algorithms: vec![Algorithm::RandomForest],
        };
        let model = ModelResult {
            algorithm: Algorithm::RandomForest,
            grid: vec![CvResult {
                params: Params::new(RandomForestParams {
                    n_trees: 30,
                    max_depth: 4,
                    max_features: 0.5,
                    min_samples_leaf: 1,
                }),
                folds: vec![],
                oof: vec![],
                unseen_categories: 0,
            }],
            best: 0,
        };
        let a = build_artifact(&data, &opts, &model)
            .unwrap()
            .to_payload()
            .unwrap();
        let b = build_artifact(&data, &opts, &model)
            .unwrap()
            .to_payload()
            .unwrap();
        assert_eq!(a, b);
        let other = TrainOptions { seed: 43, ..opts };
        let c = build_artifact(&data, &other, &model)
            .unwrap()
            .to_payload()
            .unwrap();
        assert_ne!(a, c, "the seed drives the forest");
    }

    #[test]
    fn golden_vectors_are_the_artifacts_own_probabilities() {
        let data = cleveland();
        let opts = TrainOptions {
            name: "heart-disease".into(),
            seed: 42,
            folds: 3,
            algorithms: vec![Algorithm::LogisticRegression],
        };
        let outcome = train(&data, &opts, &ProgressBar::hidden()).unwrap();
        let a = &outcome.artifact;
        assert_eq!(a.golden.len(), GOLDEN_FROM_DATA + 2);
        for g in &a.golden {
            assert_eq!(g.probability, a.apply(&g.input).probability);
        }
        assert_eq!(a.hyperparameters["seed"], "42");
        assert_eq!(a.cv_metrics, outcome.models[0].best().metric_map());
    }
}
