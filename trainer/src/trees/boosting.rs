//! Gradient boosting for log loss on our CART trees ([`Estimator::Boosted`]), as scikit-learn's
//! `GradientBoostingClassifier` does it: start from the training log-odds; at every stage fit a
//! squared-error tree to the residuals `y - p` of a row subsample, set each leaf to the Newton
//! step `Σ(y - p) / Σ p(1 - p)` over its rows, and add `learning_rate ×` the tree to every row's
//! score.

use heart_model::Estimator;
use heart_model::estimator::sigmoid;
use ndarray::ArrayView2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;

use super::cart::{self, MaxFeatures, TreeParams};
use super::{FitError, Matrix, invalid};

/// A Newton leaf whose hessian sum is below this is set to 0 (scikit-learn's guard): only pure
/// leaves of saturated rows get there.
const MIN_HESSIAN: f64 = 1e-150;

/// How boosted trees are grown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoostingParams {
    /// Number of boosting stages (trees); at least 1.
    pub n_estimators: usize,
    /// Shrinkage of every tree's score; finite and positive.
    pub learning_rate: f64,
    /// Fraction of rows, drawn without replacement per stage, each tree is fitted on; in (0, 1].
    pub subsample: f64,
    /// Per tree; see [`TreeParams`] (`min_samples_leaf` counts subsampled rows).
    pub tree: TreeParams,
}

impl Default for BoostingParams {
    /// scikit-learn's `GradientBoostingClassifier` defaults.
    fn default() -> Self {
        Self {
            n_estimators: 100,
            learning_rate: 0.1,
            subsample: 1.0,
            tree: TreeParams {
                max_depth: Some(3),
                min_samples_leaf: 1,
                max_features: MaxFeatures::All,
            },
        }
    }
}

impl BoostingParams {
    fn validate(&self) -> Result<(), FitError> {
        if self.n_estimators == 0 {
            return Err(invalid("n_estimators", 0, "at least 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(invalid(
                "learning_rate",
                self.learning_rate,
                "finite and positive",
            ));
        }
        if !(self.subsample > 0.0 && self.subsample <= 1.0) {
            return Err(invalid("subsample", self.subsample, "a fraction in (0, 1]"));
        }
        self.tree.validate()
    }
}

/// Fits gradient-boosted trees on `x` (one row per sample) and targets `y`. `seed` drives the
/// per-stage row subsample and the per-split column draws, from one `StdRng`.
///
/// # Errors
/// [`FitError`] for empty or mismatched input, non-finite features, invalid parameters, or
/// targets of one class only (whose log-odds are infinite).
pub fn fit_boosting(
    x: ArrayView2<'_, f64>,
    y: &[bool],
    params: &BoostingParams,
    seed: u64,
) -> Result<Estimator, FitError> {
    params.validate()?;
    let m = Matrix::new(x, y.len())?;
    let n = m.n_rows;
    let positives = y.iter().filter(|&&t| t).count();
    if positives == 0 || positives == n {
        return Err(FitError::OneClass(n));
    }
    let base_score = (positives as f64 / (n - positives) as f64).ln();
    let targets: Vec<f64> = y.iter().map(|&t| f64::from(u8::from(t))).collect();
    let n_sub = ((params.subsample * n as f64).round() as usize).clamp(1, n);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut score = vec![base_score; n];
    let mut trees = Vec::with_capacity(params.n_estimators);
    for _ in 0..params.n_estimators {
        let p: Vec<f64> = score.iter().map(|&z| sigmoid(z)).collect();
        let residual: Vec<f64> = targets.iter().zip(&p).map(|(t, p)| t - p).collect();
        let rows: Vec<usize> = if n_sub == n {
            (0..n).collect()
        } else {
            let mut rows = sample(&mut rng, n, n_sub).into_vec();
            rows.sort_unstable();
            rows
        };
        let tree = cart::grow(&m, &rows, &residual, &params.tree, &mut rng, &mut |leaf| {
            let g: f64 = leaf.iter().map(|&i| residual[i]).sum();
            let h: f64 = leaf.iter().map(|&i| p[i] * (1.0 - p[i])).sum();
            if h < MIN_HESSIAN { 0.0 } else { g / h }
        });
        for (i, s) in score.iter_mut().enumerate() {
            *s += params.learning_rate * tree.predict(m.row(i));
        }
        trees.push(tree);
    }
    Ok(Estimator::Boosted {
        base_score,
        learning_rate: params.learning_rate,
        trees,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use heart_model::{Node, Tree};
    use ndarray::Array2;
    use rand::Rng;

    use super::*;

    fn column(values: &[f64]) -> Array2<f64> {
        Array2::from_shape_vec((values.len(), 1), values.to_vec()).unwrap()
    }

    fn stumps(n_estimators: usize, learning_rate: f64) -> BoostingParams {
        BoostingParams {
            n_estimators,
            learning_rate,
            tree: TreeParams {
                max_depth: Some(1),
                ..TreeParams::default()
            },
            ..BoostingParams::default()
        }
    }

    #[test]
    fn one_stage_is_the_hand_computed_newton_stump() {
        // Balanced: base log-odds 0, p = 0.5, residuals ∓0.5, hessians 0.25. Each side of the
        // cut at 1.5 has Σg = ∓1 and Σh = 0.5, so its leaf is ∓2.
        let x = column(&[0.0, 1.0, 2.0, 3.0]);
        let y = [false, false, true, true];
        let e = fit_boosting(x.view(), &y, &stumps(1, 1.0), 0).unwrap();
        assert_eq!(
            e,
            Estimator::Boosted {
                base_score: 0.0,
                learning_rate: 1.0,
                trees: vec![Tree {
                    nodes: vec![
                        Node::Split {
                            feature: 0,
                            threshold: 1.5,
                            left: 1,
                            right: 2
                        },
                        Node::Leaf { probability: -2.0 },
                        Node::Leaf { probability: 2.0 },
                    ]
                }],
            }
        );
        assert_eq!(e.predict(&[0.0]), sigmoid(-2.0));
        e.check(1).unwrap();
    }

    #[test]
    fn the_base_score_is_the_training_log_odds() {
        // A constant column cannot split; the leaf's Newton step is Σ(y - 0.75) = 0.
        let x = column(&[1.0; 4]);
        let e = fit_boosting(x.view(), &[true, true, true, false], &stumps(3, 0.1), 0).unwrap();
        let Estimator::Boosted { base_score, .. } = &e else {
            panic!("boosted")
        };
        assert_eq!(*base_score, 3f64.ln());
        assert!((e.predict(&[1.0]) - 0.75).abs() < 1e-15);
    }

    #[test]
    fn the_second_stage_fits_what_the_first_left() {
        // After one stump with lr 0.5 every row sits at ±1 log-odds, on the right side; the
        // residuals are ∓(1 - sigmoid(1)) and the second stump is the same cut, with Newton
        // leaves ∓(1 - s) / (s (1 - s)) = ∓1 / s for s = sigmoid(1).
        let x = column(&[0.0, 1.0, 2.0, 3.0]);
        let y = [false, false, true, true];
        let e = fit_boosting(x.view(), &y, &stumps(2, 0.5), 0).unwrap();
        let Estimator::Boosted { trees, .. } = &e else {
            panic!("boosted")
        };
        let s = sigmoid(1.0);
        assert!((trees[1].predict(&[0.0]) + 1.0 / s).abs() < 1e-12);
        assert!((trees[1].predict(&[3.0]) - 1.0 / s).abs() < 1e-12);
        let z = 0.5 * (2.0 + 1.0 / s);
        assert!((e.predict(&[3.0]) - sigmoid(z)).abs() < 1e-12);
    }

    fn noisy(n: usize, width: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, width), |_| rng.gen_range(-1.0..1.0));
        let y = (0..n)
            .map(|i| x[(i, 0)] * x[(i, 1)] + rng.gen_range(-0.2..0.2) > 0.0)
            .collect();
        (x, y)
    }

    fn log_loss(e: &Estimator, x: &Array2<f64>, y: &[bool]) -> f64 {
        (0..y.len())
            .map(|i| {
                let p = e.predict(x.row(i).as_slice().unwrap());
                -(if y[i] { p } else { 1.0 - p }).ln()
            })
            .sum::<f64>()
            / y.len() as f64
    }

    #[test]
    fn more_stages_lower_the_training_loss() {
        let (x, y) = noisy(200, 4, 1);
        let params = |n_estimators| BoostingParams {
            n_estimators,
            ..BoostingParams::default()
        };
        let losses: Vec<f64> = [1, 10, 50]
            .into_iter()
            .map(|n| log_loss(&fit_boosting(x.view(), &y, &params(n), 0).unwrap(), &x, &y))
            .collect();
        assert!(losses[0] > losses[1] && losses[1] > losses[2], "{losses:?}");
        assert!(
            losses[2] < 0.3,
            "an interaction depth-3 trees can learn: {losses:?}"
        );
    }

    #[test]
    fn subsampling_is_seeded() {
        let (x, y) = noisy(100, 4, 2);
        let params = BoostingParams {
            n_estimators: 20,
            subsample: 0.5,
            ..BoostingParams::default()
        };
        let a = fit_boosting(x.view(), &y, &params, 7).unwrap();
        assert!(
            a == fit_boosting(x.view(), &y, &params, 7).unwrap(),
            "same seed, same model"
        );
        assert!(
            a != fit_boosting(x.view(), &y, &params, 8).unwrap(),
            "the seed draws the rows"
        );
        a.check(4).unwrap();
    }

    #[test]
    fn one_class_and_bad_parameters_are_refused() {
        let x = column(&[1.0, 2.0]);
        let p = BoostingParams::default();
        assert_eq!(
            fit_boosting(x.view(), &[true, true], &p, 0),
            Err(FitError::OneClass(2))
        );
        for bad in [
            BoostingParams {
                learning_rate: 0.0,
                ..p
            },
            BoostingParams {
                subsample: 1.5,
                ..p
            },
            BoostingParams {
                n_estimators: 0,
                ..p
            },
        ] {
            assert!(matches!(
                fit_boosting(x.view(), &[true, false], &bad, 0),
                Err(FitError::InvalidParam { .. })
            ));
        }
    }
}
