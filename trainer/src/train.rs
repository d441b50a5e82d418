//! Training: seeded stratified folds, the grid search over every model kind, selection, and the
//! final artifacts refitted on all rows with their golden vectors.
//!
//! The pieces live apart: model kinds in [`crate::algorithms`], cross-validation in
//! [`crate::cv`], the grid search in [`crate::search`], the thread pool in `pool`. Every
//! probability evaluated goes through heart-model's `Artifact::apply`, the code the scorer runs.

use heart_model::{Algorithm, Artifact, Estimator, Model, Platt};
use indicatif::ProgressBar;

pub use crate::algorithms::Params;
pub use crate::cv::CvResult;
pub use crate::search::ModelResult;

use crate::calibration::{self, Calibration};
use crate::data::{Dataset, Row};
use crate::error::TrainError;
use crate::missing::{self, MaskResult};
use crate::search::{self, argmax};
use crate::{cv, evaluate, features};

/// How many golden vectors come from the training data (spread evenly over it).
const GOLDEN_FROM_DATA: usize = 10;

/// Which model is shipped as `model.avro`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ship {
    /// The cross-validation winner: the highest mean ROC-AUC over every kind's best point.
    Best,
    /// This kind's best grid point, whatever the other kinds scored.
    Algorithm(Algorithm),
}

/// Everything `trainer train` produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per algorithm, in [`TrainOptions::algorithms`] order.
    pub models: Vec<ModelResult>,
    /// Index into `models` of the cross-validation winner (highest mean ROC-AUC).
    pub winner: usize,
    /// Index into `models` of the shipped model: the winner, or the kind asked for.
    pub chosen: usize,
    /// The folds used (row indices of each test fold).
    pub folds: Vec<Vec<usize>>,
    /// Every model's best point refitted on all rows, verified, in `models` order.
    pub candidates: Vec<Artifact>,
    /// The shipped model: `candidates[chosen]`.
    pub artifact: Artifact,
    /// Calibration of each model's best point (Brier scores, reliability, Platt scaling inside
    /// CV), in `models` order.
    pub calibration: Vec<Calibration>,
    /// The chosen model's CV metrics with fields masked in the test folds, in
    /// [`crate::missing::MASKS`] order.
    pub missing: Vec<MaskResult>,
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

/// Cross-validates every candidate of every algorithm and ships the best by mean ROC-AUC
/// ([`train_shipping`] with [`Ship::Best`]).
///
/// # Errors
/// As [`train_shipping`].
pub fn train(
    data: &Dataset,
    opts: &TrainOptions,
    progress: &ProgressBar,
) -> Result<Outcome, TrainError> {
    train_shipping(data, opts, Ship::Best, progress)
}

/// Cross-validates every candidate of every algorithm, picks each kind's best point by mean
/// ROC-AUC, refits each on all rows into a verified artifact, and ships the one `ship` names.
///
/// # Errors
/// [`TrainError`] if a fit fails, an artifact fails its own verification, or `ship` names an
/// algorithm that is not in `opts.algorithms`.
pub fn train_shipping(
    data: &Dataset,
    opts: &TrainOptions,
    ship: Ship,
    progress: &ProgressBar,
) -> Result<Outcome, TrainError> {
    if let Ship::Algorithm(algorithm) = ship
        && !opts.algorithms.contains(&algorithm)
    {
        return Err(TrainError::NotSearched { algorithm });
    }
    let smaller = data.positives().min(data.len() - data.positives());
    if smaller < opts.folds {
        return Err(TrainError::TooFewRows {
            folds: opts.folds,
            found: smaller,
        });
    }
    let folds = evaluate::stratified_folds(&data.target, opts.folds, opts.seed);
    let models = search::search(data, &folds, &opts.algorithms, opts.seed, progress)?;
    let winner = argmax(models.iter().map(|m| m.best().summary("roc_auc").mean));
    let chosen = match ship {
        Ship::Best => winner,
        Ship::Algorithm(a) => models
            .iter()
            .position(|m| m.algorithm == a)
            .unwrap_or(winner),
    };
    // The models cross-validation fitted for each kind's best point (same rows, same seeds),
    // kept to evaluate calibration and masked fields without refitting the outer folds.
    let fold_models = models
        .iter()
        .map(|m| cv::fit_folds(data, &folds, &m.best().params, opts.seed))
        .collect::<Result<Vec<_>, _>>()?;
    let calibration = models
        .iter()
        .zip(&fold_models)
        .map(|(m, fitted)| {
            calibration::platt_cv(data, &folds, &m.best().params, fitted, opts.seed, progress)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let candidates = models
        .iter()
        .zip(&calibration)
        .map(|(m, c)| build_artifact(data, opts, m, c.shipped))
        .collect::<Result<Vec<_>, _>>()?;
    let artifact = candidates[chosen].clone();
    let missing = missing::masked_cv(data, &folds, &fold_models[chosen], &missing::MASKS);
    Ok(Outcome {
        models,
        winner,
        chosen,
        folds,
        candidates,
        artifact,
        calibration,
        missing,
    })
}

/// Refits `model`'s best candidate on every row and builds the artifact with golden vectors,
/// its probabilities mapped through `calibration` when given.
///
/// # Errors
/// If the fit fails or the artifact does not load.
pub fn build_artifact(
    data: &Dataset,
    opts: &TrainOptions,
    model: &ModelResult,
    calibration: Option<Platt>,
) -> Result<Artifact, TrainError> {
    let best = model.best();
    let all: Vec<usize> = (0..data.len()).collect();
    let mut artifact = features::fit_model(data, &all, &best.params, opts.seed)?;
    if let Some(platt) = calibration {
        artifact.estimator = Estimator::Calibrated {
            estimator: Box::new(artifact.estimator),
            platt,
        };
    }
    artifact.name = opts.name.clone();
    artifact
        .hyperparameters
        .insert("seed".to_owned(), opts.seed.to_string());
    artifact.training_data_sha256 = data.sha256.clone();
    artifact.cv_metrics = best.metric_map();
    artifact.set_profile(&data.rows);
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
    use crate::data::tests::cleveland;

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
                    max_features: crate::trees::MaxFeatures::Fraction(0.5),
                    min_samples_leaf: 1,
                }),
                folds: vec![],
                oof: vec![],
                unseen_categories: 0,
            }],
            best: 0,
        };
        let a = build_artifact(&data, &opts, &model, None)
            .unwrap()
            .to_payload()
            .unwrap();
        let b = build_artifact(&data, &opts, &model, None)
            .unwrap()
            .to_payload()
            .unwrap();
        assert_eq!(a, b);
        let other = TrainOptions { seed: 43, ..opts };
        let c = build_artifact(&data, &other, &model, None)
            .unwrap()
            .to_payload()
            .unwrap();
        assert_ne!(a, c, "the seed drives the forest");
    }

    #[test]
    fn ship_algorithm_ships_that_kinds_best_point_and_every_candidate_loads() {
        let data = cleveland();
        let opts = TrainOptions {
            name: "heart-disease".into(),
            seed: 42,
            folds: 3,
            algorithms: vec![Algorithm::LogisticRegression, Algorithm::DecisionTree],
        };
        let hidden = ProgressBar::hidden();
        let best = train(&data, &opts, &hidden).unwrap();
        assert_eq!(best.chosen, best.winner);
        let winner = best.models[best.winner].algorithm;
        let other = if winner == Algorithm::DecisionTree {
            Algorithm::LogisticRegression
        } else {
            Algorithm::DecisionTree
        };
        let shipped = train_shipping(&data, &opts, Ship::Algorithm(other), &hidden).unwrap();
        assert_eq!(shipped.models[shipped.chosen].algorithm, other);
        assert_eq!(
            shipped.winner, best.winner,
            "the winner does not depend on --algorithm"
        );
        assert_eq!(shipped.artifact.algorithm, other);
        assert_eq!(
            shipped.artifact.cv_metrics,
            shipped.models[shipped.chosen].best().metric_map()
        );
        assert_eq!(shipped.candidates.len(), 2);
        for (m, a) in shipped.models.iter().zip(&shipped.candidates) {
            assert_eq!(a.algorithm, m.algorithm);
            Model::load(a.to_version(0, 0, "test").unwrap()).unwrap();
        }
        assert_eq!(
            shipped.candidates, best.candidates,
            "same seed, same artifacts"
        );
        let err = train_shipping(
            &data,
            &opts,
            Ship::Algorithm(Algorithm::RandomForest),
            &hidden,
        )
        .unwrap_err();
        assert!(matches!(err, TrainError::NotSearched { .. }), "{err}");
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
        // The calibration and masking use the CV models: their raw numbers are the CV numbers.
        let best = outcome.models[0].best();
        let cv_brier: Vec<f64> = best.folds.iter().map(|m| m.brier).collect();
        assert_eq!(outcome.calibration[0].raw_brier, cv_brier);
        // The artifact carries the calibration exactly when CV says it lowers the Brier score.
        let c = &outcome.calibration[0];
        assert_eq!(a.estimator.calibration(), c.shipped);
        assert_eq!(
            c.shipped.is_some(),
            c.calibrated().mean < c.raw().mean,
            "{:?} vs {:?}",
            c.calibrated(),
            c.raw()
        );
        let cv_auc: Vec<f64> = best.folds.iter().map(|m| m.roc_auc).collect();
        assert_eq!(outcome.missing[0].name, "none");
        assert_eq!(outcome.missing[0].roc_auc, cv_auc);
        assert_eq!(outcome.missing.len(), missing::MASKS.len());
    }
}
