//! One linfa-trees CART fit on chosen rows and columns, converted into a heart-model [`Tree`];
//! shared by the decision tree and the random forest.

use heart_model::{Node, Tree};
use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_trees::{DecisionTree, TreeNode};
use ndarray::{Array1, Array2, Axis};

use crate::error::TrainError;

/// Sample weight of a positive row. linfa-trees breaks ties between equally frequent classes by
/// `HashMap` order, which is random per process, and prunes subtrees by the tied-broken label;
/// weighting positives a hair above 1 (exact in f32) removes every tie, so the same seed always
/// gives the same tree.
const POSITIVE_TREE_WEIGHT: f32 = 1.0 + 1.0 / 1024.0;

/// Fits a linfa-trees tree on the rows `rows` (repeats allowed: a bootstrap) and columns `cols`
/// of `x`, then converts it.
pub(super) fn fit_tree(
    x: &Array2<f64>,
    y: &[bool],
    rows: &[usize],
    cols: &[usize],
    max_depth: usize,
    min_samples_leaf: usize,
) -> Result<Tree, TrainError> {
    let sub = x.select(Axis(0), rows).select(Axis(1), cols);
    let targets: Array1<bool> = rows.iter().map(|&i| y[i]).collect();
    let weights: Array1<f32> = targets
        .iter()
        .map(|&t| if t { POSITIVE_TREE_WEIGHT } else { 1.0 })
        .collect();
    let data = DatasetBase::new(sub.clone(), targets.clone()).with_weights(weights);
    let fitted = DecisionTree::params()
        .max_depth(Some(max_depth))
        .min_weight_leaf(min_samples_leaf as f32)
        .fit(&data)?;
    let mut nodes = Vec::new();
    let samples: Vec<usize> = (0..sub.nrows()).collect();
    let targets = targets.to_vec();
    convert_node(
        fitted.root_node(),
        &sub,
        &targets,
        &samples,
        cols,
        0.5,
        &mut nodes,
    );
    Ok(Tree { nodes })
}

/// Appends `node` and its subtree to `out` in pre-order (children after parents) and returns its
/// index.
///
/// linfa-trees partitions training rows with `x <= split` but predicts with `x < split`; we keep
/// `<=` (what heart-model's [`Tree`] does) and set each leaf to the fraction of positive training
/// rows that reach it through *this* tree, so the probabilities match the structure exactly. A leaf
/// no training row reaches inherits its parent's fraction.
fn convert_node(
    node: &TreeNode<f64, bool>,
    x: &Array2<f64>,
    y: &[bool],
    samples: &[usize],
    cols: &[usize],
    parent_probability: f64,
    out: &mut Vec<Node>,
) -> u32 {
    let probability = if samples.is_empty() {
        parent_probability
    } else {
        samples.iter().filter(|&&i| y[i]).count() as f64 / samples.len() as f64
    };
    let index = out.len();
    let children = node.children();
    let (Some(left), Some(right)) = (children[0].as_deref(), children[1].as_deref()) else {
        out.push(Node::Leaf { probability });
        return index as u32;
    };
    if node.is_leaf() {
        out.push(Node::Leaf { probability });
        return index as u32;
    }
    let (feature, threshold, _) = node.split();
    let (l, r): (Vec<usize>, Vec<usize>) =
        samples.iter().partition(|&&i| x[(i, feature)] <= threshold);
    out.push(Node::Leaf { probability });
    let left_index = convert_node(left, x, y, &l, cols, probability, out);
    let right_index = convert_node(right, x, y, &r, cols, probability, out);
    out[index] = Node::Split {
        // Encoded widths are at most heart_model::preprocess::MAX_WIDTH (64), so this fits.
        feature: cols[feature] as u16,
        threshold,
        left: left_index,
        right: right_index,
    };
    index as u32
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
    fn tree_conversion_splits_with_le_and_leaves_hold_training_fractions() {
        // x = 1, 2, 3, 4, 5 with labels F F T T T: one split at 2.5, pure leaves.
        let x = Array2::from_shape_vec((5, 1), vec![1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        let y = [false, false, true, true, true];
        let tree = fit_tree(&x, &y, &[0, 1, 2, 3, 4], &[0], 3, 1).unwrap();
        assert_eq!(
            tree.nodes,
            vec![
                Node::Split {
                    feature: 0,
                    threshold: 2.5,
                    left: 1,
                    right: 2
                },
                Node::Leaf { probability: 0.0 },
                Node::Leaf { probability: 1.0 },
            ]
        );
        // Depth 1 over F T F T T: the leaf fractions are the training fractions behind the split.
        let y = [false, true, false, true, true];
        let stump = fit_tree(&x, &y, &[0, 1, 2, 3, 4], &[0], 1, 1).unwrap();
        let leaves: Vec<f64> = stump
            .nodes
            .iter()
            .filter_map(|n| match n {
                Node::Leaf { probability } => Some(*probability),
                Node::Split { .. } => None,
            })
            .collect();
        let total: f64 = (0..5).map(|i| stump.predict(&[x[(i, 0)]])).sum();
        assert_eq!(
            total, 3.0,
            "leaf fractions sum back to the positives: {leaves:?}"
        );
    }
}
