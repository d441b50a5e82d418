//! Model kinds, one file each: its hyperparameters, its grid and how to fit one grid point,
//! behind the one small trait [`Candidate`].
//!
//! A new kind is one file with a parameters type implementing [`Candidate`] and a `grid()`,
//! plus one line in [`KINDS`]; cross-validation, search, reporting and the artifact take it
//! from there.

mod decision_tree;
mod gradient_boosting;
mod logistic_regression;
mod random_forest;

use std::collections::BTreeMap;
use std::sync::Arc;

use heart_model::{Algorithm, Estimator};
use ndarray::Array2;

use crate::error::TrainError;

pub use decision_tree::DecisionTreeParams;
pub use gradient_boosting::GradientBoostingParams;
pub use logistic_regression::LogisticRegressionParams;
pub use random_forest::RandomForestParams;

/// One grid point of one model kind.
pub trait Candidate: std::fmt::Debug + Send + Sync {
    /// The algorithm recorded in the artifact.
    fn algorithm(&self) -> Algorithm;

    /// The hyperparameters as name → text, as stored in the artifact.
    fn to_map(&self) -> BTreeMap<String, String>;

    /// Short text for tables, e.g. `max_depth=3, min_samples_leaf=10`.
    fn label(&self) -> String {
        self.to_map()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Fits an estimator on encoded features `x` and labels `y`. `seed` drives any sampling; a
    /// deterministic learner ignores it.
    ///
    /// # Errors
    /// The learner's error, if fitting fails.
    fn fit(&self, x: &Array2<f64>, y: &[bool], seed: u64) -> Result<Estimator, TrainError>;
}

/// Hyperparameters of one candidate model: a shared, immutable [`Candidate`].
#[derive(Debug, Clone)]
pub struct Params(Arc<dyn Candidate>);

impl Params {
    /// Wraps one kind's parameters.
    pub fn new(candidate: impl Candidate + 'static) -> Self {
        Self(Arc::new(candidate))
    }

    /// The algorithm these parameters are for.
    pub fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }

    /// The parameters as name → text, as stored in the artifact.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.to_map()
    }

    /// Short text, e.g. `C=0.1`.
    pub fn label(&self) -> String {
        self.0.label()
    }

    /// Fits these parameters (see [`Candidate::fit`]).
    ///
    /// # Errors
    /// The learner's error, if fitting fails.
    pub fn fit(&self, x: &Array2<f64>, y: &[bool], seed: u64) -> Result<Estimator, TrainError> {
        self.0.fit(x, y, seed)
    }
}

impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.algorithm() == other.algorithm() && self.to_map() == other.to_map()
    }
}

/// A model kind: its algorithm and the grid cross-validation searches.
#[derive(Debug)]
pub struct Kind {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The grid points, in report order.
    pub grid: fn() -> Vec<Params>,
}

/// Every kind this build can train, in report order.
pub const KINDS: &[Kind] = &[
    logistic_regression::KIND,
    decision_tree::KIND,
    random_forest::KIND,
    gradient_boosting::KIND,
];

/// The kind of `algorithm`, if this build can train it.
pub fn kind(algorithm: Algorithm) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.algorithm == algorithm)
}

/// The kind whose algorithm code is `code` (e.g. `random_forest`), if this build can train it.
pub fn by_code(code: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.algorithm.code() == code)
}

/// Every algorithm this build can train.
pub fn available() -> Vec<Algorithm> {
    KINDS.iter().map(|k| k.algorithm).collect()
}

/// The grid of `algorithm`, empty if this build cannot train it.
pub fn grid(algorithm: Algorithm) -> Vec<Params> {
    kind(algorithm).map_or_else(Vec::new, |k| (k.grid)())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A tiny seeded problem: 3 features, label from a noisy linear rule, positives the minority.
    pub(crate) fn toy(n: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, 3), |_| rng.gen_range(-2.0..2.0));
        let y = (0..n)
            .map(|i| x[(i, 0)] - 0.5 * x[(i, 1)] + rng.gen_range(-0.7..0.7) > 0.6)
            .collect();
        (x, y)
    }

    #[test]
    fn every_kind_has_a_grid_of_its_own_algorithm_without_duplicates() {
        for k in KINDS {
            let g = (k.grid)();
            assert!(!g.is_empty(), "{}", k.algorithm);
            assert!(g.iter().all(|p| p.algorithm() == k.algorithm));
            for (i, p) in g.iter().enumerate() {
                assert!(!g[..i].contains(p), "{} listed twice", p.label());
            }
        }
        assert_eq!(grid(Algorithm::LogisticRegression).len(), 6);
        assert_eq!(grid(Algorithm::DecisionTree).len(), 15);
        assert_eq!(grid(Algorithm::RandomForest).len(), 12);
        assert_eq!(grid(Algorithm::GradientBoosting).len(), 16);
    }

    #[test]
    fn kinds_are_found_by_code_and_unknown_codes_are_not() {
        assert_eq!(
            by_code("decision_tree").map(|k| k.algorithm),
            Some(Algorithm::DecisionTree)
        );
        assert!(by_code("gradient_boosting_x").is_none());
    }
}
