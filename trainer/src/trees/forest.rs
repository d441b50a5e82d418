//! Random forest: CART trees on bootstrap samples with columns sampled per split; the
//! probability is the mean of the trees' leaf fractions ([`Estimator::Forest`]).

use heart_model::Estimator;
use ndarray::ArrayView2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cart::{self, MaxFeatures, TreeParams};
use super::{FitError, Matrix, invalid};

/// How a forest is grown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForestParams {
    /// Number of trees; at least 1.
    pub n_trees: usize,
    /// Per tree; see [`TreeParams`].
    pub tree: TreeParams,
}

impl Default for ForestParams {
    /// scikit-learn's `RandomForestClassifier` defaults, but 200 trees.
    fn default() -> Self {
        Self {
            n_trees: 200,
            tree: TreeParams {
                max_features: MaxFeatures::Sqrt,
                ..TreeParams::default()
            },
        }
    }
}

/// Fits a random forest on `x` (one row per sample) and targets `y`.
///
/// Each tree gets its own seed, drawn in order from a `StdRng` seeded with `seed`; a tree's
/// bootstrap (n rows drawn with replacement) and its per-split column draws come from its own
/// seed. A leaf holds the fraction of positive bootstrap rows reaching it (repeats counted, as
/// scikit-learn's bootstrap weights count them); `min_samples_leaf` counts repeats too.
///
/// # Errors
/// [`FitError`] for empty or mismatched input, non-finite features or invalid parameters.
pub fn fit_forest(
    x: ArrayView2<'_, f64>,
    y: &[bool],
    params: &ForestParams,
    seed: u64,
) -> Result<Estimator, FitError> {
    if params.n_trees == 0 {
        return Err(invalid("n_trees", 0, "at least 1"));
    }
    params.tree.validate()?;
    let m = Matrix::new(x, y.len())?;
    let g: Vec<f64> = y.iter().map(|&t| f64::from(u8::from(t))).collect();
    let mut seeds = StdRng::seed_from_u64(seed);
    let trees = (0..params.n_trees)
        .map(|_| {
            let mut rng = StdRng::seed_from_u64(seeds.r#gen());
            let rows: Vec<usize> = (0..m.n_rows).map(|_| rng.gen_range(0..m.n_rows)).collect();
            cart::grow(&m, &rows, &g, &params.tree, &mut rng, &mut |leaf| {
                cart::mean(&g, leaf)
            })
        })
        .collect();
    Ok(Estimator::Forest { trees })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use heart_model::Node;
    use ndarray::Array2;

    use super::*;

    fn noisy(n: usize, width: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, width), |_| rng.gen_range(-1.0..1.0));
        let y = (0..n)
            .map(|i| x[(i, 0)] - x[(i, 1)] + rng.gen_range(-0.6..0.6) > 0.0)
            .collect();
        (x, y)
    }

    fn trees(e: &Estimator) -> &[heart_model::Tree] {
        match e {
            Estimator::Forest { trees } => trees,
            other => panic!("not a forest: {other:?}"),
        }
    }

    #[test]
    fn a_forest_is_seeded_and_learns() {
        let (x, y) = noisy(200, 5, 1);
        let params = ForestParams {
            n_trees: 30,
            ..ForestParams::default()
        };
        let a = fit_forest(x.view(), &y, &params, 11).unwrap();
        assert!(
            a == fit_forest(x.view(), &y, &params, 11).unwrap(),
            "same seed, same forest"
        );
        assert!(
            a != fit_forest(x.view(), &y, &params, 12).unwrap(),
            "another seed, another"
        );
        assert_eq!(trees(&a).len(), 30);
        a.check(5).unwrap();
        let correct = (0..200)
            .filter(|&i| (a.predict(x.row(i).as_slice().unwrap()) >= 0.5) == y[i])
            .count();
        assert!(correct > 180, "{correct} of 200 on the training rows");
    }

    #[test]
    fn trees_differ_by_their_bootstrap() {
        let (x, y) = noisy(60, 2, 2);
        let params = ForestParams {
            n_trees: 5,
            tree: TreeParams {
                max_depth: Some(1),
                ..TreeParams::default()
            },
        };
        let f = fit_forest(x.view(), &y, &params, 3).unwrap();
        let roots: Vec<&Node> = trees(&f).iter().map(|t| &t.nodes[0]).collect();
        assert!(roots.windows(2).any(|w| w[0] != w[1]), "{roots:?}");
    }

    #[test]
    fn forest_probability_is_the_mean_of_leaf_fractions() {
        let (x, y) = noisy(50, 3, 4);
        let params = ForestParams {
            n_trees: 7,
            ..ForestParams::default()
        };
        let f = fit_forest(x.view(), &y, &params, 5).unwrap();
        let row = x.row(0);
        let row = row.as_slice().unwrap();
        let mean = trees(&f).iter().map(|t| t.predict(row)).sum::<f64>() / 7.0;
        assert_eq!(f.predict(row), mean);
    }

    #[test]
    fn zero_trees_are_refused() {
        let (x, y) = noisy(10, 2, 5);
        let params = ForestParams {
            n_trees: 0,
            ..ForestParams::default()
        };
        assert!(matches!(
            fit_forest(x.view(), &y, &params, 0),
            Err(FitError::InvalidParam {
                name: "n_trees",
                ..
            })
        ));
    }
}
