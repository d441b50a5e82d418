//! Calibration of out-of-fold probabilities: reliability bins (observed positive fraction
//! against mean predicted probability) and Platt scaling fitted inside cross-validation.
//!
//! Evaluation: for test fold `f`, the map is fitted on out-of-fold scores of `f`'s training
//! folds (an inner cross-validation on them), then applied to `f`'s scores from the model fitted
//! on all of its training folds, so no test row informs its own map.
//!
//! Shipping: when that lowers the mean Brier score, the artifact carries a map fitted on the
//! out-of-fold probabilities of all rows (scikit-learn's `CalibratedClassifierCV` with
//! `ensemble=False` does the same), applied by heart-model as `Estimator::Calibrated`.

use heart_model::estimator::{logit, sigmoid};
use heart_model::{Artifact, Platt};
use indicatif::ProgressBar;
use serde::Serialize;

use crate::algorithms::Params;
use crate::cv::{self, fold_seed};
use crate::data::Dataset;
use crate::error::TrainError;
use crate::evaluate::{self, MeanStd};
use crate::{features, pool};

/// Equal-width bins of the reliability diagram.
pub const RELIABILITY_BINS: usize = 10;

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bin {
    /// Lower edge (inclusive).
    pub lo: f64,
    /// Upper edge (exclusive, except 1.0 for the last bin).
    pub hi: f64,
    /// Rows whose probability falls in the bin.
    pub count: usize,
    /// Mean probability of those rows; NaN when empty.
    pub mean_predicted: f64,
    /// Fraction of those rows with disease; NaN when empty.
    pub observed: f64,
}

/// The reliability diagram of probabilities `p` against labels `y` in `bins` equal-width bins
/// over `[0, 1]`.
pub fn reliability(y: &[bool], p: &[f64], bins: usize) -> Vec<Bin> {
    let mut sums = vec![(0usize, 0.0, 0usize); bins];
    for (&t, &s) in y.iter().zip(p) {
        let k = ((s * bins as f64) as usize).min(bins - 1);
        sums[k].0 += 1;
        sums[k].1 += s;
        sums[k].2 += usize::from(t);
    }
    sums.into_iter()
        .enumerate()
        .map(|(k, (count, sum, positives))| Bin {
            lo: k as f64 / bins as f64,
            hi: (k + 1) as f64 / bins as f64,
            count,
            mean_predicted: sum / count as f64,
            observed: positives as f64 / count as f64,
        })
        .collect()
}

/// Fits a Platt map to probabilities `p` for labels `y` by maximum likelihood with Platt's
/// smoothed targets (`(n₊ + 1) / (n₊ + 2)` for positives, `1 / (n₋ + 2)` for negatives), which
/// keeps the fit finite on separable scores. Newton's method with step halving.
pub fn fit_platt(p: &[f64], y: &[bool]) -> Platt {
    let x: Vec<f64> = p.iter().map(|&s| logit(s)).collect();
    let n_pos = y.iter().filter(|&&t| t).count() as f64;
    let n_neg = y.len() as f64 - n_pos;
    let t: Vec<f64> = y
        .iter()
        .map(|&v| {
            if v {
                (n_pos + 1.0) / (n_pos + 2.0)
            } else {
                1.0 / (n_neg + 2.0)
            }
        })
        .collect();
    let nll = |a: f64, b: f64| -> f64 {
        x.iter()
            .zip(&t)
            .map(|(&xi, &ti)| {
                let z = a * xi + b;
                ti * softplus(-z) + (1.0 - ti) * softplus(z)
            })
            .sum()
    };
    let (mut a, mut b) = (0.0, ((n_neg + 1.0) / (n_pos + 1.0)).ln());
    let mut current = nll(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
        for (&xi, &ti) in x.iter().zip(&t) {
            let q = sigmoid(a * xi + b);
            let w = q * (1.0 - q);
            ga += (q - ti) * xi;
            gb += q - ti;
            haa += w * xi * xi;
            hab += w * xi;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det <= 0.0 || !det.is_finite() {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        let mut step = 1.0;
        let mut improved = false;
        while step > 1e-10 {
            let (na, nb) = (a - step * da, b - step * db);
            let next = nll(na, nb);
            if next <= current {
                (a, b) = (na, nb);
                improved = current - next > 1e-14 * current.abs().max(1.0);
                current = next;
                break;
            }
            step /= 2.0;
        }
        if !improved || (da.abs() + db.abs()) * step < 1e-12 {
            break;
        }
    }
    Platt { a, b }
}

/// `ln(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// Calibration of one model's cross-validated probabilities.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// Brier score of the raw test-fold probabilities, per fold.
    pub raw_brier: Vec<f64>,
    /// Brier score after Platt scaling fitted inside each fold's training folds, per fold.
    pub platt_brier: Vec<f64>,
    /// The map fitted for each test fold.
    pub platt: Vec<Platt>,
    /// Reliability of the raw out-of-fold probabilities.
    pub reliability: Vec<Bin>,
    /// Reliability of the Platt-scaled out-of-fold probabilities.
    pub platt_reliability: Vec<Bin>,
    /// The map the artifact carries: fitted on every row's out-of-fold probability, present
    /// only when Platt scaling lowered the mean Brier score above (and the fitted slope is
    /// positive, so the order of the probabilities is kept).
    pub shipped: Option<Platt>,
}

impl Calibration {
    /// Mean and population std of the raw Brier score over folds.
    pub fn raw(&self) -> MeanStd {
        MeanStd::of(&self.raw_brier)
    }

    /// Mean and population std of the Platt-scaled Brier score over folds.
    pub fn calibrated(&self) -> MeanStd {
        MeanStd::of(&self.platt_brier)
    }
}

/// Platt scaling inside cross-validation for `params`, whose model for each fold is
/// `fold_models[f]` (as [`cv::fit_folds`] fits them). The inner folds split each fold's
/// training rows stratified into `folds - 1` parts (at least 2).
///
/// # Errors
/// The first learner error of an inner fit.
pub(crate) fn platt_cv(
    data: &Dataset,
    folds: &[Vec<usize>],
    params: &Params,
    fold_models: &[Artifact],
    seed: u64,
    progress: &ProgressBar,
) -> Result<Calibration, TrainError> {
    let inner_k = (folds.len() - 1).max(2);
    let inner: Vec<Vec<Vec<usize>>> = (0..folds.len())
        .map(|f| {
            let train = evaluate::train_indices(folds, f);
            let y: Vec<bool> = train.iter().map(|&i| data.target[i]).collect();
            evaluate::stratified_folds(&y, inner_k, fold_seed(seed, f))
                .into_iter()
                .map(|fold| fold.into_iter().map(|j| train[j]).collect())
                .collect()
        })
        .collect();
    let jobs: Vec<(usize, usize)> = (0..folds.len())
        .flat_map(|f| (0..inner_k).map(move |g| (f, g)))
        .collect();
    progress.inc_length(jobs.len() as u64);
    let scores = pool::map(&jobs, |&(f, g)| {
        let train = evaluate::train_indices(&inner[f], g);
        let model = features::fit_model(data, &train, params, fold_seed(fold_seed(seed, f), g))?;
        progress.inc(1);
        Ok::<_, TrainError>(cv::score(&model, &data.rows, &inner[f][g]).0)
    })?;
    let mut raw_oof = vec![f64::NAN; data.len()];
    let mut platt_oof = vec![f64::NAN; data.len()];
    let (mut raw_brier, mut platt_brier, mut platt) = (Vec::new(), Vec::new(), Vec::new());
    for (f, test) in folds.iter().enumerate() {
        let (mut p, mut y) = (Vec::new(), Vec::new());
        for (&(jf, g), s) in jobs.iter().zip(&scores) {
            if jf == f {
                p.extend_from_slice(s);
                y.extend(inner[f][g].iter().map(|&i| data.target[i]));
            }
        }
        let map = fit_platt(&p, &y);
        let (raw, _) = cv::score(&fold_models[f], &data.rows, test);
        let calibrated: Vec<f64> = raw.iter().map(|&s| map.apply(s)).collect();
        let y_test: Vec<bool> = test.iter().map(|&i| data.target[i]).collect();
        raw_brier.push(evaluate::brier(&y_test, &raw));
        platt_brier.push(evaluate::brier(&y_test, &calibrated));
        platt.push(map);
        for ((&i, r), c) in test.iter().zip(raw).zip(calibrated) {
            raw_oof[i] = r;
            platt_oof[i] = c;
        }
    }
    let improves = MeanStd::of(&platt_brier).mean < MeanStd::of(&raw_brier).mean;
    let full = fit_platt(&raw_oof, &data.target);
    Ok(Calibration {
        raw_brier,
        platt_brier,
        platt,
        reliability: reliability(&data.target, &raw_oof, RELIABILITY_BINS),
        platt_reliability: reliability(&data.target, &platt_oof, RELIABILITY_BINS),
        shipped: (improves && full.check().is_ok()).then_some(full),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reliability_bins_are_hand_checked() {
        // 0.05 and 0.15 (both bins alone), three in [0.9, 1.0] including 1.0 itself.
        let y = [false, true, true, false, true];
        let p = [0.05, 0.15, 0.95, 0.9, 1.0];
        let bins = reliability(&y, &p, 10);
        assert_eq!(bins.len(), 10);
        assert_eq!((bins[0].count, bins[0].observed), (1, 0.0));
        assert_eq!(bins[0].mean_predicted, 0.05);
        assert_eq!((bins[1].count, bins[1].observed), (1, 1.0));
        assert_eq!(bins[9].count, 3);
        assert!((bins[9].mean_predicted - 2.85 / 3.0).abs() < 1e-15);
        assert_eq!(bins[9].observed, 2.0 / 3.0);
        assert_eq!(bins[5].count, 0);
        assert!(bins[5].observed.is_nan());
        assert_eq!((bins[3].lo, bins[3].hi), (0.3, 0.4));
    }

    #[test]
    fn platt_on_two_points_hits_the_smoothed_targets_exactly() {
        // One positive at logit +1, one negative at logit -1: the targets are 2/3 and 1/3, and
        // two parameters fit two points exactly: sigmoid(a + b) = 2/3, sigmoid(-a + b) = 1/3,
        // so b = 0 and a = ln 2.
        let m = fit_platt(&[sigmoid(1.0), sigmoid(-1.0)], &[true, false]);
        assert!((m.a - 2f64.ln()).abs() < 1e-9, "{m:?}");
        assert!(m.b.abs() < 1e-9, "{m:?}");
        assert!((m.apply(sigmoid(1.0)) - 2.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn platt_stays_finite_on_separable_scores_and_keeps_their_order() {
        let p = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9];
        let y = [false, false, false, true, true, true];
        let m = fit_platt(&p, &y);
        assert!(m.a.is_finite() && m.b.is_finite() && m.a > 0.0, "{m:?}");
        let q: Vec<f64> = p.iter().map(|&s| m.apply(s)).collect();
        assert!(q.windows(2).all(|w| w[0] < w[1]), "{q:?}");
        // At the optimum the score equations hold: the calibrated mean equals the mean smoothed
        // target, (3 · 4/5 + 3 · 1/5) / 6 = 1/2, and by symmetry the map is odd around 1/2.
        let mean = q.iter().sum::<f64>() / 6.0;
        assert!((mean - 0.5).abs() < 1e-9, "{q:?}");
        assert!(
            m.b.abs() < 1e-9 && (q[0] + q[5] - 1.0).abs() < 1e-9,
            "{m:?}"
        );
    }

    #[test]
    fn platt_of_calibrated_scores_is_close_to_identity() {
        // Scores equal to the observed frequency of their group: the best map is near a = 1, b = 0.
        let mut p = Vec::new();
        let mut y = Vec::new();
        for (s, pos) in [(0.2, 20), (0.5, 50), (0.8, 80)] {
            for i in 0..100 {
                p.push(s);
                y.push(i < pos);
            }
        }
        let m = fit_platt(&p, &y);
        assert!((m.a - 1.0).abs() < 0.05 && m.b.abs() < 0.05, "{m:?}");
    }
}
