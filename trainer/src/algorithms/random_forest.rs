//! Bagged CART trees (linfa-trees), each on a bootstrap sample and a random subset of the
//! encoded columns, stored as an `Estimator::Forest`.

use std::collections::BTreeMap;

use heart_model::{Algorithm, Estimator};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

use super::linfa_tree::fit_tree;
use super::{Candidate, Kind, Params};
use crate::error::TrainError;

/// The kind.
pub(super) const KIND: Kind = Kind {
    algorithm: Algorithm::RandomForest,
    grid,
};

/// Hyperparameters of a random forest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomForestParams {
    /// Number of trees.
    pub n_trees: usize,
    /// Depth limit per tree.
    pub max_depth: usize,
    /// Fraction of encoded columns each tree sees (at least one).
    pub max_features: f64,
    /// Fewest bootstrap samples a split may leave in a leaf.
    pub min_samples_leaf: usize,
}

fn grid() -> Vec<Params> {
    [4, 6, 8]
        .into_iter()
        .flat_map(|max_depth| {
            [0.15, 0.25, 0.35]
                .into_iter()
                .flat_map(move |max_features| {
                    [1, 3].map(|min_samples_leaf| {
                        Params::new(RandomForestParams {
                            n_trees: 200,
                            max_depth,
                            max_features,
                            min_samples_leaf,
                        })
                    })
                })
        })
        .collect()
}

impl Candidate for RandomForestParams {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RandomForest
    }

    fn to_map(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("n_trees".to_owned(), self.n_trees.to_string()),
            ("max_depth".to_owned(), self.max_depth.to_string()),
            ("max_features".to_owned(), self.max_features.to_string()),
            (
                "min_samples_leaf".to_owned(),
                self.min_samples_leaf.to_string(),
            ),
        ])
    }

    /// `seed` drives the bootstraps and the column samples.
    fn fit(&self, x: &Array2<f64>, y: &[bool], seed: u64) -> Result<Estimator, TrainError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let n_cols = ((x.ncols() as f64 * self.max_features).round() as usize).clamp(1, x.ncols());
        let trees = (0..self.n_trees)
            .map(|_| {
                let rows: Vec<usize> = (0..x.nrows())
                    .map(|_| rng.gen_range(0..x.nrows()))
                    .collect();
                let mut cols = sample(&mut rng, x.ncols(), n_cols).into_vec();
                cols.sort_unstable();
                fit_tree(x, y, &rows, &cols, self.max_depth, self.min_samples_leaf)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Estimator::Forest { trees })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::algorithms::linfa_tree::tests::toy;
    use heart_model::Node;

    #[test]
    fn forest_trees_map_subsampled_columns_back() {
        let (x, y) = toy(80, 3);
        let est = RandomForestParams {
            n_trees: 20,
            max_depth: 3,
            max_features: 0.34,
            min_samples_leaf: 1,
        }
        .fit(&x, &y, 1)
        .unwrap();
        let Estimator::Forest { trees } = &est else {
            panic!("forest")
        };
        assert_eq!(trees.len(), 20);
        for t in trees {
            t.check(3).unwrap();
        }
        let used: std::collections::BTreeSet<u16> = trees
            .iter()
            .flat_map(|t| &t.nodes)
            .filter_map(|n| match n {
                Node::Split { feature, .. } => Some(*feature),
                Node::Leaf { .. } => None,
            })
            .collect();
        assert!(
            used.len() > 1,
            "different trees see different columns: {used:?}"
        );
        let correct = (0..x.nrows())
            .filter(|&i| (est.predict(x.row(i).as_slice().unwrap()) >= 0.5) == y[i])
            .count();
        assert!(correct > 60, "{correct} of 80 right on the training data");
    }
}
