//! L2-regularised logistic regression (linfa-logistic), re-expressed as a heart-model
//! `Estimator::Logistic`.

use std::collections::BTreeMap;

use heart_model::{Algorithm, Estimator};
use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};

use super::{Candidate, Kind, Params};
use crate::error::TrainError;

/// L-BFGS iteration cap (linfa's default of 100 can stop early).
const MAX_ITERATIONS: u64 = 1_000;
/// Gradient-norm tolerance.
const GRADIENT_TOLERANCE: f64 = 1e-6;

/// The kind.
pub(super) const KIND: Kind = Kind {
    algorithm: Algorithm::LogisticRegression,
    grid,
};

/// Hyperparameters of logistic regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticRegressionParams {
    /// Inverse regularisation strength, as scikit-learn's `C`; linfa's `alpha` is `1 / C`
    /// (both penalise `||w||² / 2`, neither the intercept).
    pub c: f64,
}

fn grid() -> Vec<Params> {
    [0.01, 0.03, 0.1, 0.3, 1.0, 10.0]
        .into_iter()
        .map(|c| Params::new(LogisticRegressionParams { c }))
        .collect()
}

impl Candidate for LogisticRegressionParams {
    fn algorithm(&self) -> Algorithm {
        Algorithm::LogisticRegression
    }

    fn to_map(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("C".to_owned(), self.c.to_string()),
            ("alpha".to_owned(), (1.0 / self.c).to_string()),
            ("max_iterations".to_owned(), MAX_ITERATIONS.to_string()),
        ])
    }

    fn label(&self) -> String {
        format!("C={}", self.c)
    }

    /// Fits linfa-logistic and re-expresses it as `P(disease) = sigmoid(w·x + b)`.
    ///
    /// linfa's `predict_probabilities` is the probability of its "positive" class, which is the
    /// *more frequent* label in the training targets (not `true`). When that is `false`, the
    /// coefficients are negated: `1 - sigmoid(z) = sigmoid(-z)`.
    fn fit(&self, x: &Array2<f64>, y: &[bool], _seed: u64) -> Result<Estimator, TrainError> {
        let data = DatasetBase::new(x.clone(), Array1::from(y.to_vec()));
        let fitted = linfa_params(self.c).fit(&data)?;
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        Ok(Estimator::Logistic {
            weights: fitted.params().iter().map(|w| sign * w).collect(),
            intercept: sign * fitted.intercept(),
        })
    }
}

fn linfa_params(c: f64) -> LogisticRegression<f64> {
    LogisticRegression::default()
        .alpha(1.0 / c)
        .max_iterations(MAX_ITERATIONS)
        .gradient_tolerance(GRADIENT_TOLERANCE)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::algorithms::tests::toy;

    #[test]
    fn logistic_conversion_reproduces_linfa_within_1e_9() {
        let (x, y) = toy(60, 7);
        let positives = y.iter().filter(|&&t| t).count();
        assert!(
            positives < 30,
            "positives must be the minority to test the sign flip"
        );
        let est = LogisticRegressionParams { c: 1.0 }.fit(&x, &y, 0).unwrap();
        let data = DatasetBase::new(x.clone(), Array1::from(y.clone()));
        let linfa = linfa_params(1.0).fit(&data).unwrap();
        // linfa's probabilities are of its majority class, here `false`.
        assert!(!linfa.labels().pos.class);
        let p_false = linfa.predict_probabilities(&x);
        for (i, row) in x.outer_iter().enumerate() {
            let ours = est.predict(row.as_slice().unwrap());
            assert!(
                (ours - (1.0 - p_false[i])).abs() < 1e-9,
                "row {i}: {ours} vs {}",
                1.0 - p_false[i]
            );
        }
    }

    #[test]
    fn params_record_c_and_the_matching_alpha() {
        let p = Params::new(LogisticRegressionParams { c: 0.1 });
        let m = p.to_map();
        assert_eq!(m["C"], "0.1");
        assert_eq!(m["alpha"], "10");
        assert_eq!(p.label(), "C=0.1");
    }
}
