//! Cross-validation of grid points: per fold, preprocessing and the model are fitted on the
//! training folds only ([`features::fit_model`]) and the test fold is scored by heart-model's
//! `Artifact::apply`, the code the scorer runs. One pool job per (grid point, fold).

use std::collections::BTreeMap;

use heart_model::Artifact;
use indicatif::ProgressBar;

use crate::algorithms::Params;
use crate::data::{Dataset, Row};
use crate::error::TrainError;
use crate::evaluate::{self, METRIC_NAMES, MeanStd, Metrics};
use crate::{features, pool};

/// Cross-validation of one candidate.
#[derive(Debug, Clone)]
pub struct CvResult {
    /// The candidate.
    pub params: Params,
    /// Metrics on each test fold.
    pub folds: Vec<Metrics>,
    /// Out-of-fold probability of every row (each row is in exactly one test fold).
    pub oof: Vec<f64>,
    /// Test rows whose one-hot fields held a category unseen in their training folds.
    pub unseen_categories: u32,
}

impl CvResult {
    /// Mean and population std of a metric over the folds.
    pub fn summary(&self, metric: &str) -> MeanStd {
        MeanStd::of(&self.folds.iter().map(|m| m.get(metric)).collect::<Vec<_>>())
    }

    /// The cv metrics as stored in the artifact: `cv.<metric>.mean` / `.std`.
    pub fn metric_map(&self) -> BTreeMap<String, f64> {
        METRIC_NAMES
            .iter()
            .flat_map(|m| {
                let s = self.summary(m);
                [
                    (format!("cv.{m}.mean"), s.mean),
                    (format!("cv.{m}.std"), s.std),
                ]
            })
            .collect()
    }
}

/// A per-fold seed, so that a fold's fit does not depend on which other folds ran.
pub(crate) fn fold_seed(seed: u64, fold: usize) -> u64 {
    seed ^ (fold as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Fits `params` on every fold but `f` (preprocessing included), with fold `f`'s seed.
///
/// # Errors
/// The learner's error.
pub(crate) fn fit_fold(
    data: &Dataset,
    folds: &[Vec<usize>],
    f: usize,
    params: &Params,
    seed: u64,
) -> Result<Artifact, TrainError> {
    let train = evaluate::train_indices(folds, f);
    features::fit_model(data, &train, params, fold_seed(seed, f))
}

/// The model of every fold, as cross-validation fits them (the same rows and seeds), in fold
/// order.
///
/// # Errors
/// The first learner error.
pub(crate) fn fit_folds(
    data: &Dataset,
    folds: &[Vec<usize>],
    params: &Params,
    seed: u64,
) -> Result<Vec<Artifact>, TrainError> {
    let jobs: Vec<usize> = (0..folds.len()).collect();
    pool::map(&jobs, |&f| fit_fold(data, folds, f, params, seed))
}

/// Probabilities of the rows at `idx` by `model`, and how many one-hot fields held a category
/// the model never saw.
pub(crate) fn score(model: &Artifact, rows: &[Row], idx: &[usize]) -> (Vec<f64>, u32) {
    let scored: Vec<_> = idx.iter().map(|&i| model.apply(&rows[i])).collect();
    (
        scored.iter().map(|s| s.probability).collect(),
        scored.iter().map(|s| s.unseen_categories).sum(),
    )
}

struct FoldResult {
    metrics: Metrics,
    probabilities: Vec<f64>,
    unseen: u32,
}

/// Cross-validates every candidate over `folds`; results in candidate order.
///
/// # Errors
/// The first learner error.
pub fn cross_validate(
    data: &Dataset,
    folds: &[Vec<usize>],
    candidates: &[Params],
    seed: u64,
    progress: &ProgressBar,
) -> Result<Vec<CvResult>, TrainError> {
    let jobs: Vec<(usize, usize)> = (0..candidates.len())
        .flat_map(|c| (0..folds.len()).map(move |f| (c, f)))
        .collect();
    progress.inc_length(jobs.len() as u64);
    let results = pool::map(&jobs, |&(c, f)| {
        let model = fit_fold(data, folds, f, &candidates[c], seed)?;
        let (probabilities, unseen) = score(&model, &data.rows, &folds[f]);
        let y: Vec<bool> = folds[f].iter().map(|&i| data.target[i]).collect();
        progress.inc(1);
        Ok::<_, TrainError>(FoldResult {
            metrics: Metrics::new(&y, &probabilities),
            probabilities,
            unseen,
        })
    })?;
    let mut out: Vec<CvResult> = candidates
        .iter()
        .map(|params| CvResult {
            params: params.clone(),
            folds: Vec::new(),
            oof: vec![f64::NAN; data.len()],
            unseen_categories: 0,
        })
        .collect();
    for (&(c, f), r) in jobs.iter().zip(results) {
        let cv = &mut out[c];
        cv.folds.push(r.metrics);
        cv.unseen_categories += r.unseen;
        for (&i, p) in folds[f].iter().zip(r.probabilities) {
            cv.oof[i] = p;
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use crate::algorithms::{LogisticRegressionParams, RandomForestParams};
    use crate::data::tests::cleveland;

    fn small_forest() -> Params {
        Params::new(RandomForestParams {
            n_trees: 15,
            max_depth: 3,
            max_features: crate::trees::MaxFeatures::Fraction(0.3),
            min_samples_leaf: 1,
        })
    }

    #[test]
    fn the_same_seed_gives_identical_cv_numbers_and_another_seed_does_not() {
        let data = cleveland();
        let folds = evaluate::stratified_folds(&data.target, 3, 42);
        let candidates = [
            Params::new(LogisticRegressionParams { c: 0.1 }),
            small_forest(),
        ];
        let hidden = ProgressBar::hidden();
        let a = cross_validate(&data, &folds, &candidates, 42, &hidden).unwrap();
        let b = cross_validate(&data, &folds, &candidates, 42, &hidden).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.folds, y.folds);
            assert_eq!(
                x.oof.iter().map(|p| p.to_bits()).collect::<Vec<_>>(),
                y.oof.iter().map(|p| p.to_bits()).collect::<Vec<_>>()
            );
        }
        assert!(a.iter().all(|c| c.oof.iter().all(|p| p.is_finite())));
        let c = cross_validate(&data, &folds, &candidates[1..], 43, &hidden).unwrap();
        assert_ne!(a[1].oof, c[0].oof, "the seed drives the forest");
    }

    #[test]
    fn fold_models_rescore_to_the_cv_out_of_fold_probabilities() {
        let data = cleveland();
        let folds = evaluate::stratified_folds(&data.target, 3, 7);
        let params = small_forest();
        let cv = cross_validate(
            &data,
            &folds,
            std::slice::from_ref(&params),
            7,
            &ProgressBar::hidden(),
        )
        .unwrap()
        .remove(0);
        let models = fit_folds(&data, &folds, &params, 7).unwrap();
        for (f, model) in models.iter().enumerate() {
            let (p, _) = score(model, &data.rows, &folds[f]);
            let expected: Vec<f64> = folds[f].iter().map(|&i| cv.oof[i]).collect();
            assert_eq!(p, expected, "fold {f}");
        }
    }
}
