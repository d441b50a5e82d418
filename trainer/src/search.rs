//! Grid search: every grid point of every kind is cross-validated (all on one pool), the best
//! point per kind is the one with the highest mean ROC-AUC.

use heart_model::Algorithm;
use indicatif::ProgressBar;

use crate::algorithms;
use crate::cv::{self, CvResult};
use crate::data::Dataset;
use crate::error::TrainError;

/// All candidates of one algorithm, and the best.
#[derive(Debug, Clone)]
pub struct ModelResult {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Every candidate in grid order.
    pub grid: Vec<CvResult>,
    /// Index into `grid` of the highest mean ROC-AUC (first on ties).
    pub best: usize,
}

impl ModelResult {
    /// The best candidate.
    pub fn best(&self) -> &CvResult {
        &self.grid[self.best]
    }
}

/// Cross-validates the grid of each of `algorithms` and picks each one's best point.
///
/// # Errors
/// [`TrainError::Unavailable`] for an algorithm this build cannot train, else the first
/// learner error.
pub fn search(
    data: &Dataset,
    folds: &[Vec<usize>],
    algorithms: &[Algorithm],
    seed: u64,
    progress: &ProgressBar,
) -> Result<Vec<ModelResult>, TrainError> {
    let grids = algorithms
        .iter()
        .map(|&a| {
            algorithms::kind(a)
                .map(|k| (k.grid)())
                .ok_or(TrainError::Unavailable { algorithm: a })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let all: Vec<_> = grids.iter().flatten().cloned().collect();
    let mut results = cv::cross_validate(data, folds, &all, seed, progress)?.into_iter();
    Ok(algorithms
        .iter()
        .zip(&grids)
        .map(|(&algorithm, grid)| {
            let grid: Vec<CvResult> = results.by_ref().take(grid.len()).collect();
            let best = argmax(grid.iter().map(|c| c.summary("roc_auc").mean));
            ModelResult {
                algorithm,
                grid,
                best,
            }
        })
        .collect())
}

/// Index of the largest value, the first on ties (NaN never wins).
pub(crate) fn argmax(values: impl Iterator<Item = f64>) -> usize {
    values
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_ties_and_skips_nan() {
        assert_eq!(argmax([0.5, 0.9, 0.9, 0.1].into_iter()), 1);
        assert_eq!(argmax([f64::NAN, 0.2].into_iter()), 1);
        assert_eq!(argmax(std::iter::empty()), 0);
    }
}
