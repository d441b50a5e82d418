//! Evaluation: stratified folds and the classification metrics (accuracy, precision, recall, F1,
//! ROC-AUC, Brier score, confusion matrix). Pure functions, no I/O.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

/// The decision threshold for the threshold metrics.
pub const THRESHOLD: f64 = 0.5;

/// Splits sample indices into `k` folds that keep the class ratio: each class is shuffled with a
/// seeded RNG and dealt round-robin, continuing where the previous class stopped so that fold
/// sizes differ by at most one.
pub fn stratified_folds(target: &[bool], k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for class in [false, true] {
        let mut idx: Vec<usize> = (0..target.len()).filter(|&i| target[i] == class).collect();
        idx.shuffle(&mut rng);
        for i in idx {
            folds[next].push(i);
            next = (next + 1) % k;
        }
    }
    for f in &mut folds {
        f.sort_unstable();
    }
    folds
}

/// The training indices for test fold `f`: every other fold.
pub fn train_indices(folds: &[Vec<usize>], f: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = folds
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != f)
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    idx.sort_unstable();
    idx
}

/// Counts at [`THRESHOLD`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Healthy, predicted healthy.
    pub tn: usize,
    /// Healthy, predicted disease.
    pub fp: usize,
    /// Disease, predicted healthy.
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// Disease, predicted disease.
    pub tp: usize,
}

impl Confusion {
    /// Counts predictions `p >= THRESHOLD` against `y`.
    pub fn new(y: &[bool], p: &[f64]) -> Self {
        let mut c = Self::default();
        for (&t, &s) in y.iter().zip(p) {
            match (t, s >= THRESHOLD) {
                (false, false) => c.tn += 1,
                (false, true) => c.fp += 1,
                (true, false) => c.fn_ += 1,
                (true, true) => c.tp += 1,
            }
        }
        c
    }
}

impl std::ops::Add for Confusion {
    type Output = Self;

    fn add(self, o: Self) -> Self {
        Self {
            tn: self.tn + o.tn,
            fp: self.fp + o.fp,
            fn_: self.fn_ + o.fn_,
            tp: self.tp + o.tp,
        }
    }
}

/// The metrics of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// (tp + tn) / n.
    pub accuracy: f64,
    /// tp / (tp + fp), 0 when nothing is predicted positive.
    pub precision: f64,
    /// tp / (tp + fn).
    pub recall: f64,
    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub f1: f64,
    /// Area under the ROC curve.
    pub roc_auc: f64,
    /// Brier score: mean squared difference between probability and outcome (lower is better).
    pub brier: f64,
    /// The counts behind the threshold metrics.
    pub confusion: Confusion,
}

/// Names of the scalar metrics, in report order.
pub const METRIC_NAMES: [&str; 6] = ["roc_auc", "accuracy", "precision", "recall", "f1", "brier"];

impl Metrics {
    /// Computes every metric for labels `y` and probabilities `p`.
    pub fn new(y: &[bool], p: &[f64]) -> Self {
        let c = Confusion::new(y, p);
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(c.tp, c.tp + c.fp);
        let recall = ratio(c.tp, c.tp + c.fn_);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Self {
            accuracy: ratio(c.tp + c.tn, y.len()),
            precision,
            recall,
            f1,
            roc_auc: roc_auc(y, p),
            brier: brier(y, p),
            confusion: c,
        }
    }

    /// A scalar metric by name (one of [`METRIC_NAMES`]).
    pub fn get(&self, name: &str) -> f64 {
        match name {
            "roc_auc" => self.roc_auc,
            "accuracy" => self.accuracy,
            "precision" => self.precision,
            "recall" => self.recall,
            "f1" => self.f1,
            "brier" => self.brier,
            _ => f64::NAN,
        }
    }
}

/// Mean and population standard deviation (divide by n, not n - 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
}

impl MeanStd {
    /// Summarises `values`; NaN for an empty slice.
    pub fn of(values: &[f64]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Self {
            mean,
            std: var.sqrt(),
        }
    }
}

/// The Brier score: mean of `(p - y)²` with `y` as 0 or 1; NaN for no rows.
pub fn brier(y: &[bool], p: &[f64]) -> f64 {
    let sum: f64 = y
        .iter()
        .zip(p)
        .map(|(&t, &s)| (s - if t { 1.0 } else { 0.0 }).powi(2))
        .sum();
    sum / y.len() as f64
}

/// ROC-AUC by the rank statistic (Mann-Whitney U), with tied scores given their average rank.
/// NaN when `y` holds only one class.
pub fn roc_auc(y: &[bool], p: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && p[order[j + 1]] == p[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let avg = (i + j + 2) as f64 / 2.0;
        rank_sum_pos += avg * order[i..=j].iter().filter(|&&k| y[k]).count() as f64;
        i = j + 1;
    }
    let n_pos = y.iter().filter(|&&t| t).count() as f64;
    let n_neg = y.len() as f64 - n_pos;
    (rank_sum_pos - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// The ROC curve as (false positive rate, true positive rate) points from (0, 0) to (1, 1), one
/// point per distinct score.
pub fn roc_curve(y: &[bool], p: &[f64]) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let n_pos = y.iter().filter(|&&t| t).count().max(1) as f64;
    let n_neg = (y.len() as f64 - y.iter().filter(|&&t| t).count() as f64).max(1.0);
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = vec![(0.0, 0.0)];
    for (k, &i) in order.iter().enumerate() {
        if y[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_tie = order.get(k + 1).is_none_or(|&n| p[n] != p[i]);
        if last_of_tie {
            points.push((fp / n_neg, tp / n_pos));
        }
    }
    points
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_hand_computed_values() {
        // tp = 2 (0.9, 0.6), fn = 1 (0.4), fp = 1 (0.7), tn = 2 (0.2, 0.1).
        let y = [true, true, true, false, false, false];
        let p = [0.9, 0.6, 0.4, 0.7, 0.2, 0.1];
        let m = Metrics::new(&y, &p);
        assert_eq!(
            m.confusion,
            Confusion {
                tn: 2,
                fp: 1,
                fn_: 1,
                tp: 2
            }
        );
        assert_eq!(m.accuracy, 4.0 / 6.0);
        assert_eq!(m.precision, 2.0 / 3.0);
        assert_eq!(m.recall, 2.0 / 3.0);
        assert!((m.f1 - 2.0 / 3.0).abs() < 1e-15);
        // Pairs (pos, neg) ranked correctly: 0.9 beats all 3; 0.6 beats 2; 0.4 beats 2 -> 7/9.
        assert_eq!(m.roc_auc, 7.0 / 9.0);
        // (0.1² + 0.4² + 0.6² + 0.7² + 0.2² + 0.1²) / 6 = 1.07 / 6.
        assert!((m.brier - 1.07 / 6.0).abs() < 1e-15, "{}", m.brier);
        assert_eq!(m.get("brier"), m.brier);
    }

    #[test]
    fn brier_is_zero_when_certain_and_right_and_one_when_certain_and_wrong() {
        assert_eq!(brier(&[true, false], &[1.0, 0.0]), 0.0);
        assert_eq!(brier(&[true, false], &[0.0, 1.0]), 1.0);
        assert_eq!(brier(&[true, false, true, false], &[0.5; 4]), 0.25);
    }

    #[test]
    fn roc_auc_averages_ties() {
        // One positive tied with one negative counts half: pairs (0.5 vs 0.5) = 0.5, (0.8 vs 0.5) = 1,
        // (0.5 vs 0.1) = 1, (0.8 vs 0.1) = 1 -> 3.5 / 4.
        let y = [true, false, true, false];
        let p = [0.5, 0.5, 0.8, 0.1];
        assert_eq!(roc_auc(&y, &p), 0.875);
        assert_eq!(roc_auc(&[true, false], &[0.3, 0.3]), 0.5);
        assert_eq!(roc_auc(&[true, false], &[0.1, 0.9]), 0.0);
    }

    #[test]
    fn precision_is_zero_when_nothing_is_predicted_positive() {
        let m = Metrics::new(&[true, false], &[0.1, 0.2]);
        assert_eq!((m.precision, m.recall, m.f1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn mean_std_is_the_population_std() {
        let s = MeanStd::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.mean, 2.5);
        assert!((s.std - 1.25f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn roc_curve_runs_from_origin_to_one_one() {
        let y = [true, false, true, false];
        let p = [0.5, 0.5, 0.8, 0.1];
        assert_eq!(
            roc_curve(&y, &p),
            vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]
        );
    }

    #[test]
    fn stratified_folds_partition_keep_ratios_and_are_seeded() {
        let target: Vec<bool> = (0..303).map(|i| i % 303 < 139).collect();
        let folds = stratified_folds(&target, 5, 42);
        let mut all: Vec<usize> = folds.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..303).collect::<Vec<_>>(), "a partition");
        for f in &folds {
            let pos = f.iter().filter(|&&i| target[i]).count();
            assert!((60..=61).contains(&f.len()), "size {}", f.len());
            assert!((27..=28).contains(&pos), "139 / 5 positives, got {pos}");
        }
        assert_eq!(folds, stratified_folds(&target, 5, 42));
        assert_ne!(folds, stratified_folds(&target, 5, 43));
        let train = train_indices(&folds, 0);
        assert_eq!(train.len() + folds[0].len(), 303);
        assert!(train.iter().all(|i| !folds[0].contains(i)));
    }
}
