//! A single CART tree (our Gini learner in [`crate::trees`], every column at every split),
//! stored as a one-tree `Estimator::Forest`.

use std::collections::BTreeMap;

use heart_model::{Algorithm, Estimator};
use ndarray::Array2;

use super::{Candidate, Kind, Params};
use crate::error::TrainError;
use crate::trees::{MaxFeatures, TreeParams, fit_tree};

/// The kind.
pub(super) const KIND: Kind = Kind {
    algorithm: Algorithm::DecisionTree,
    grid,
};

/// Hyperparameters of a decision tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionTreeParams {
    /// Depth limit.
    pub max_depth: usize,
    /// Fewest samples a split may leave in a leaf.
    pub min_samples_leaf: usize,
}

fn grid() -> Vec<Params> {
    [2, 3, 4, 5, 6]
        .into_iter()
        .flat_map(|max_depth| {
            [1, 5, 10].map(|min_samples_leaf| {
                Params::new(DecisionTreeParams {
                    max_depth,
                    min_samples_leaf,
                })
            })
        })
        .collect()
}

impl Candidate for DecisionTreeParams {
    fn algorithm(&self) -> Algorithm {
        Algorithm::DecisionTree
    }

    fn to_map(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("max_depth".to_owned(), self.max_depth.to_string()),
            (
                "min_samples_leaf".to_owned(),
                self.min_samples_leaf.to_string(),
            ),
        ])
    }

    /// Every column is searched at every split, so `seed` only orders the columns, which
    /// decides between two splits of exactly equal gain.
    fn fit(&self, x: &Array2<f64>, y: &[bool], seed: u64) -> Result<Estimator, TrainError> {
        let params = TreeParams {
            max_depth: Some(self.max_depth),
            min_samples_leaf: self.min_samples_leaf,
            max_features: MaxFeatures::All,
        };
        let tree = fit_tree(x.view(), y, &params, seed)?;
        Ok(Estimator::Forest { trees: vec![tree] })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::algorithms::tests::toy;

    #[test]
    fn a_decision_tree_is_one_tree_within_its_depth() {
        let (x, y) = toy(80, 5);
        let est = DecisionTreeParams {
            max_depth: 2,
            min_samples_leaf: 1,
        }
        .fit(&x, &y, 0)
        .unwrap();
        let Estimator::Forest { trees } = &est else {
            panic!("a tree is a one-tree forest")
        };
        assert_eq!(trees.len(), 1);
        // Depth 2: at most 3 splits and 4 leaves.
        assert!(trees[0].nodes.len() <= 7, "{:?}", trees[0].nodes);
        assert_eq!(
            Params::new(DecisionTreeParams {
                max_depth: 3,
                min_samples_leaf: 10
            })
            .label(),
            "max_depth=3, min_samples_leaf=10"
        );
    }
}
