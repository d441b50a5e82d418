//! Random forest: our CART learner ([`crate::trees`]) on bootstrap samples with the columns drawn
//! per split, as scikit-learn does; stored as an `Estimator::Forest`.

use std::collections::BTreeMap;

use heart_model::{Algorithm, Estimator};
use ndarray::Array2;

use super::{Candidate, Kind, Params};
use crate::error::TrainError;
use crate::trees::{ForestParams, MaxFeatures, TreeParams, fit_forest};

/// The kind.
pub(super) const KIND: Kind = Kind {
    algorithm: Algorithm::RandomForest,
    grid,
};

/// Trees per forest in the grid (300 reached 0.915 CV ROC-AUC on Cleveland, 500 reach 0.916).
const N_TREES: usize = 500;

/// Hyperparameters of a random forest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomForestParams {
    /// Number of trees.
    pub n_trees: usize,
    /// Depth limit per tree.
    pub max_depth: usize,
    /// Columns drawn at each split.
    pub max_features: MaxFeatures,
    /// Fewest bootstrap samples (repeats counted) a split may leave in a leaf.
    pub min_samples_leaf: usize,
}

fn grid() -> Vec<Params> {
    [4, 6]
        .into_iter()
        .flat_map(|max_depth| {
            [MaxFeatures::Sqrt, MaxFeatures::Fraction(0.25)]
                .into_iter()
                .flat_map(move |max_features| {
                    [3, 5, 10].map(|min_samples_leaf| {
                        Params::new(RandomForestParams {
                            n_trees: N_TREES,
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
            ("max_features".to_owned(), self.max_features.label()),
            (
                "min_samples_leaf".to_owned(),
                self.min_samples_leaf.to_string(),
            ),
        ])
    }

    /// `seed` drives the bootstraps and the per-split column draws.
    fn fit(&self, x: &Array2<f64>, y: &[bool], seed: u64) -> Result<Estimator, TrainError> {
        let params = ForestParams {
            n_trees: self.n_trees,
            tree: TreeParams {
                max_depth: Some(self.max_depth),
                min_samples_leaf: self.min_samples_leaf,
                max_features: self.max_features,
            },
        };
        Ok(fit_forest(x.view(), y, &params, seed)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::algorithms::tests::toy;
    use heart_model::Node;

    #[test]
    fn forest_splits_on_several_columns_and_fits_its_training_data() {
        let (x, y) = toy(80, 3);
        let params = RandomForestParams {
            n_trees: 20,
            max_depth: 3,
            max_features: MaxFeatures::Count(1),
            min_samples_leaf: 1,
        };
        let est = params.fit(&x, &y, 1).unwrap();
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
            "one column per split, drawn at random: {used:?}"
        );
        let correct = (0..x.nrows())
            .filter(|&i| (est.predict(x.row(i).as_slice().unwrap()) >= 0.5) == y[i])
            .count();
        assert!(correct > 60, "{correct} of 80 right on the training data");
        assert_eq!(est, params.fit(&x, &y, 1).unwrap(), "seeded");
        assert_ne!(est, params.fit(&x, &y, 2).unwrap(), "the seed matters");
        assert_eq!(Params::new(params).to_map()["max_features"], "1");
    }
}
