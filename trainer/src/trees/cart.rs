//! CART: a binary tree grown greedily, one split at a time, with `max_features` columns sampled
//! at every split (scikit-learn's semantics, not linfa-trees' per-tree sample).
//!
//! One split search serves both learners. Every sample carries a target `g`, and a split
//! maximises `G_l²/n_l + G_r²/n_r` (target sums and sample counts of the children). With
//! `g = y ∈ {0, 1}` that is exactly the Gini criterion (a node's Gini impurity times its size is
//! `2(G - G²/n)`); with `g` a residual it is squared error, equal to Friedman's MSE for unit
//! weights, which boosting uses. Leaf values are computed by the caller from the rows that reach
//! each leaf.

use heart_model::{Node, Tree};
use ndarray::ArrayView2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{FitError, Matrix, invalid};

/// How many columns a split may look at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxFeatures {
    /// Every column (plain CART, and bagging).
    All,
    /// `floor(sqrt(width))`, at least 1: scikit-learn's forest default.
    Sqrt,
    /// `floor(fraction × width)`, clamped to `1..=width` (scikit-learn's float `max_features`).
    Fraction(f64),
    /// A fixed count, clamped to `1..=width`.
    Count(usize),
}

impl MaxFeatures {
    /// The number of columns drawn per split for a matrix `width` columns wide.
    pub fn resolve(self, width: usize) -> usize {
        let n = match self {
            Self::All => width,
            Self::Sqrt => (width as f64).sqrt().floor() as usize,
            Self::Fraction(f) => (f * width as f64).floor() as usize,
            Self::Count(n) => n,
        };
        n.clamp(1, width.max(1))
    }

    /// Text for reports and the artifact's hyperparameters.
    pub fn label(self) -> String {
        match self {
            Self::All => "all".to_owned(),
            Self::Sqrt => "sqrt".to_owned(),
            Self::Fraction(f) => f.to_string(),
            Self::Count(n) => n.to_string(),
        }
    }
}

/// How one tree is grown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeParams {
    /// Deepest a leaf may be (the root is depth 0); `None` grows until leaves are pure or too
    /// small to split.
    pub max_depth: Option<usize>,
    /// Fewest samples (bootstrap repeats counted) a split may leave on either side; at least 1.
    pub min_samples_leaf: usize,
    /// Columns drawn per split.
    ///
    /// At each node the columns are drawn without replacement in a seeded random order. A column
    /// that is constant within the node does not count towards the draw (as in scikit-learn).
    /// The best split among the first `max_features` non-constant columns wins; if none of them
    /// has a valid split (every cut leaves fewer than `min_samples_leaf` on a side), drawing goes
    /// on, one column at a time, until one does or the columns run out, and only then is the node
    /// a leaf. scikit-learn documents the same "keep drawing until a valid split" rule.
    pub max_features: MaxFeatures,
}

impl Default for TreeParams {
    /// scikit-learn's `DecisionTreeClassifier` defaults.
    fn default() -> Self {
        Self {
            max_depth: None,
            min_samples_leaf: 1,
            max_features: MaxFeatures::All,
        }
    }
}

impl TreeParams {
    pub(crate) fn validate(&self) -> Result<(), FitError> {
        if self.min_samples_leaf == 0 {
            return Err(invalid("min_samples_leaf", 0, "at least 1"));
        }
        if let MaxFeatures::Fraction(f) = self.max_features
            && !(f > 0.0 && f <= 1.0)
        {
            return Err(invalid("max_features", f, "a fraction in (0, 1]"));
        }
        if self.max_features == MaxFeatures::Count(0) {
            return Err(invalid("max_features", 0, "at least 1 column"));
        }
        Ok(())
    }
}

/// Fits one Gini classification tree on all rows of `x` (one row per sample) for targets `y`;
/// each leaf holds the fraction of positive training rows that reach it. `seed` drives the
/// column order at each split (and so only matters with `max_features` below the width, or to
/// break exact ties between columns).
///
/// # Errors
/// [`FitError`] for empty or mismatched input, non-finite features or invalid parameters.
pub fn fit_tree(
    x: ArrayView2<'_, f64>,
    y: &[bool],
    params: &TreeParams,
    seed: u64,
) -> Result<Tree, FitError> {
    params.validate()?;
    let m = Matrix::new(x, y.len())?;
    let g: Vec<f64> = y.iter().map(|&t| f64::from(u8::from(t))).collect();
    let rows: Vec<usize> = (0..m.n_rows).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    Ok(grow(&m, &rows, &g, params, &mut rng, &mut |leaf| {
        mean(&g, leaf)
    }))
}

/// The fraction of `g` over `rows` (the positive fraction for 0/1 targets).
pub(crate) fn mean(g: &[f64], rows: &[usize]) -> f64 {
    rows.iter().map(|&i| g[i]).sum::<f64>() / rows.len() as f64
}

/// Grows a tree over `rows` of `m` (repeats allowed: a bootstrap) and returns it with children
/// after parents in pre-order. `leaf_value` turns the rows reaching a leaf into its value.
pub(crate) fn grow(
    m: &Matrix,
    rows: &[usize],
    g: &[f64],
    params: &TreeParams,
    rng: &mut StdRng,
    leaf_value: &mut impl FnMut(&[usize]) -> f64,
) -> Tree {
    let mut grower = Grower {
        m,
        g,
        params,
        max_features: params.max_features.resolve(m.n_cols),
        order: (0..m.n_cols).collect(),
        sorted: Vec::with_capacity(rows.len()),
        nodes: Vec::new(),
    };
    grower.node(rows.to_vec(), 0, rng, leaf_value);
    Tree {
        nodes: grower.nodes,
    }
}

struct Grower<'a> {
    m: &'a Matrix,
    g: &'a [f64],
    params: &'a TreeParams,
    max_features: usize,
    /// The column permutation drawn per node (a partial Fisher-Yates shuffle).
    order: Vec<usize>,
    /// Scratch: (value, row) of the node's rows for one column, sorted by value.
    sorted: Vec<(f64, usize)>,
    nodes: Vec<Node>,
}

/// The best split found so far at a node.
#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    threshold: f64,
    score: f64,
}

impl Grower<'_> {
    fn node(
        &mut self,
        rows: Vec<usize>,
        depth: usize,
        rng: &mut StdRng,
        leaf_value: &mut impl FnMut(&[usize]) -> f64,
    ) -> u32 {
        let index = self.nodes.len();
        // A placeholder until the children are known; every node index fits u32 because a tree
        // never has more nodes than 2 × rows.
        self.nodes.push(Node::Leaf {
            probability: leaf_value(&rows),
        });
        let can_split = self.params.max_depth.is_none_or(|d| depth < d)
            && rows.len() >= 2 * self.params.min_samples_leaf
            && !self.pure(&rows);
        let Some(split) = can_split.then(|| self.best_split(&rows, rng)).flatten() else {
            return index as u32;
        };
        let col = self.m.col(split.feature);
        let (left, right): (Vec<usize>, Vec<usize>) =
            rows.iter().partition(|&&i| col[i] <= split.threshold);
        drop(rows);
        let left = self.node(left, depth + 1, rng, leaf_value);
        let right = self.node(right, depth + 1, rng, leaf_value);
        self.nodes[index] = Node::Split {
            // Matrix::new refuses more than u16::MAX columns.
            feature: split.feature as u16,
            threshold: split.threshold,
            left,
            right,
        };
        index as u32
    }

    /// Whether every row has the same target, so that no split can help.
    fn pure(&self, rows: &[usize]) -> bool {
        let g0 = self.g[rows[0]];
        rows.iter().all(|&i| self.g[i] == g0)
    }

    fn best_split(&mut self, rows: &[usize], rng: &mut StdRng) -> Option<Split> {
        let n_cols = self.m.n_cols;
        let mut best: Option<Split> = None;
        let mut visited = 0;
        for k in 0..n_cols {
            if visited >= self.max_features && best.is_some() {
                break;
            }
            let j = rng.gen_range(k..n_cols);
            self.order.swap(k, j);
            let feature = self.order[k];
            let col = self.m.col(feature);
            self.sorted.clear();
            self.sorted.extend(rows.iter().map(|&i| (col[i], i)));
            self.sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            if self.sorted[0].0 == self.sorted[self.sorted.len() - 1].0 {
                continue;
            }
            visited += 1;
            if let Some(s) = self.scan(feature)
                && best.is_none_or(|b| s.score > b.score)
            {
                best = Some(s);
            }
        }
        best
    }

    /// The best cut of the sorted column: between two distinct adjacent values, at least
    /// `min_samples_leaf` rows on each side.
    fn scan(&self, feature: usize) -> Option<Split> {
        let min_leaf = self.params.min_samples_leaf;
        let n = self.sorted.len();
        let g_total: f64 = self.sorted.iter().map(|&(_, i)| self.g[i]).sum();
        let mut g_left = 0.0;
        let mut best: Option<Split> = None;
        for p in 0..n - 1 {
            let (v, i) = self.sorted[p];
            g_left += self.g[i];
            let next = self.sorted[p + 1].0;
            let (n_left, n_right) = (p + 1, n - p - 1);
            if v == next || n_left < min_leaf || n_right < min_leaf {
                continue;
            }
            let g_right = g_total - g_left;
            let score = g_left * g_left / n_left as f64 + g_right * g_right / n_right as f64;
            if best.is_none_or(|b| score > b.score) {
                let mid = v / 2.0 + next / 2.0;
                // Adjacent floats can round the midpoint up onto `next`, which would send it left.
                let threshold = if mid < next { mid } else { v };
                best = Some(Split {
                    feature,
                    threshold,
                    score,
                });
            }
        }
        best
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use ndarray::Array2;

    use super::*;

    fn column(values: &[f64]) -> Array2<f64> {
        Array2::from_shape_vec((values.len(), 1), values.to_vec()).unwrap()
    }

    fn leaves(t: &Tree) -> Vec<f64> {
        t.nodes
            .iter()
            .filter_map(|n| match n {
                Node::Leaf { probability } => Some(*probability),
                Node::Split { .. } => None,
            })
            .collect()
    }

    fn depth(t: &Tree, i: usize) -> usize {
        match t.nodes[i] {
            Node::Leaf { .. } => 0,
            Node::Split { left, right, .. } => {
                1 + depth(t, left as usize).max(depth(t, right as usize))
            }
        }
    }

    #[test]
    fn a_separable_column_splits_once_at_the_midpoint() {
        let x = column(&[1.0, 2.0, 3.0, 10.0, 11.0, 12.0]);
        let y = [false, false, false, true, true, true];
        let t = fit_tree(x.view(), &y, &TreeParams::default(), 0).unwrap();
        assert_eq!(
            t.nodes,
            vec![
                Node::Split {
                    feature: 0,
                    threshold: 6.5,
                    left: 1,
                    right: 2
                },
                Node::Leaf { probability: 0.0 },
                Node::Leaf { probability: 1.0 },
            ]
        );
    }

    #[test]
    fn a_pure_node_is_a_leaf() {
        let x = column(&[1.0, 2.0, 3.0]);
        let t = fit_tree(x.view(), &[true; 3], &TreeParams::default(), 0).unwrap();
        assert_eq!(t.nodes, vec![Node::Leaf { probability: 1.0 }]);
    }

    #[test]
    fn a_constant_column_cannot_split() {
        let x = column(&[4.0, 4.0, 4.0, 4.0]);
        let t = fit_tree(
            x.view(),
            &[true, false, true, false],
            &TreeParams::default(),
            0,
        )
        .unwrap();
        assert_eq!(t.nodes, vec![Node::Leaf { probability: 0.5 }]);
    }

    #[test]
    fn gini_picks_the_cut_a_hand_count_prefers() {
        // G_l²/n_l + G_r²/n_r for the cuts of F F T F T T: after 1: 0 + 9/5 = 1.8; after 2:
        // 0 + 9/4 = 2.25; after 3: 1/3 + 4/3 = 1.67; after 4: 1/4 + 4/2 = 2.25; after 5:
        // 4/5 + 1 = 1.8. The first of the tied best wins: 2.5, leaving FF | TFTT.
        let x = column(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let y = [false, false, true, false, true, true];
        let t = fit_tree(
            x.view(),
            &y,
            &TreeParams {
                max_depth: Some(1),
                ..TreeParams::default()
            },
            0,
        )
        .unwrap();
        assert!(
            matches!(t.nodes[0], Node::Split { threshold, .. } if threshold == 2.5),
            "{:?}",
            t.nodes
        );
        assert_eq!(leaves(&t), vec![0.0, 0.75]);
    }

    #[test]
    fn equal_values_go_left_and_are_never_separated() {
        let x = column(&[1.0, 2.0, 2.0, 3.0]);
        let y = [false, false, true, true];
        // Root cuts F | F T T and F F T | T tie at 4/3; the first, 1.5, wins. Then F T | T at
        // 2.5 scores 1/2 + 1 > 4/3, and the two 2.0s share a leaf that cannot be split.
        let t = fit_tree(x.view(), &y, &TreeParams::default(), 0).unwrap();
        assert!(
            matches!(t.nodes[0], Node::Split { threshold, .. } if threshold == 1.5),
            "{:?}",
            t.nodes
        );
        assert_eq!(t.predict(&[2.0]), 0.5);
        assert_eq!(t.predict(&[3.0]), 1.0);
    }

    #[test]
    fn min_samples_leaf_is_respected() {
        let x = column(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        let y = [true, false, false, false, false, false, false, true];
        for min_samples_leaf in 1..=4 {
            let params = TreeParams {
                min_samples_leaf,
                ..TreeParams::default()
            };
            let t = fit_tree(x.view(), &y, &params, 0).unwrap();
            t.check(1).unwrap();
            for (i, n) in t.nodes.iter().enumerate() {
                if matches!(n, Node::Leaf { .. }) {
                    let reach = (1..=8)
                        .filter(|&v| leaf_of(&t, &[f64::from(v)]) == i)
                        .count();
                    assert!(reach >= min_samples_leaf, "leaf {i}: {reach} rows");
                }
            }
        }
        // With 1, the two lone positives are cut off: a perfect fit.
        let t = fit_tree(x.view(), &y, &TreeParams::default(), 0).unwrap();
        assert!(
            (1..=8u8)
                .all(|v| t.predict(&[f64::from(v)]) == f64::from(u8::from(y[usize::from(v) - 1])))
        );
    }

    fn leaf_of(t: &Tree, x: &[f64]) -> usize {
        let mut i = 0;
        while let Node::Split {
            feature,
            threshold,
            left,
            right,
        } = t.nodes[i]
        {
            i = if x[usize::from(feature)] <= threshold {
                left as usize
            } else {
                right as usize
            };
        }
        i
    }

    #[test]
    fn max_depth_limits_the_tree() {
        // Alternating labels need a split between every pair.
        let values: Vec<f64> = (0..16).map(f64::from).collect();
        let y: Vec<bool> = (0..16).map(|i| i % 2 == 1).collect();
        let x = column(&values);
        for d in 0..5 {
            let params = TreeParams {
                max_depth: Some(d),
                ..TreeParams::default()
            };
            let t = fit_tree(x.view(), &y, &params, 0).unwrap();
            assert_eq!(depth(&t, 0), d);
        }
        let full = fit_tree(x.view(), &y, &TreeParams::default(), 0).unwrap();
        assert!((0..16).all(|i| full.predict(&[values[i]]) == f64::from(u8::from(y[i]))));
    }

    #[test]
    fn a_zero_gain_split_is_taken_so_xor_is_learnt() {
        // x0 XOR x1: no single cut helps, but two levels separate it (scikit-learn does the same).
        let x = Array2::from_shape_vec((4, 2), vec![0., 0., 0., 1., 1., 0., 1., 1.]).unwrap();
        let y = [false, true, true, false];
        let t = fit_tree(x.view(), &y, &TreeParams::default(), 3).unwrap();
        for (i, &t_i) in y.iter().enumerate() {
            let row = x.row(i);
            assert_eq!(t.predict(row.as_slice().unwrap()), f64::from(u8::from(t_i)));
        }
    }

    fn noisy(n: usize, width: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, width), |_| rng.gen_range(-1.0..1.0));
        let y = (0..n)
            .map(|i| x[(i, 0)] + 0.5 * x[(i, 1)] + rng.gen_range(-0.5..0.5) > 0.0)
            .collect();
        (x, y)
    }

    #[test]
    fn same_seed_same_tree_and_different_seeds_differ_with_feature_sampling() {
        let (x, y) = noisy(120, 6, 7);
        let params = TreeParams {
            max_features: MaxFeatures::Count(2),
            ..TreeParams::default()
        };
        let a = fit_tree(x.view(), &y, &params, 1).unwrap();
        assert_eq!(a, fit_tree(x.view(), &y, &params, 1).unwrap());
        let differ = (2..6).any(|s| fit_tree(x.view(), &y, &params, s).unwrap() != a);
        assert!(differ, "per-split sampling depends on the seed");
        a.check(6).unwrap();
    }

    #[test]
    fn feature_sampling_is_per_split_not_per_tree() {
        // With one column drawn per split, one tree still uses many columns.
        let (x, y) = noisy(200, 6, 8);
        let params = TreeParams {
            max_features: MaxFeatures::Count(1),
            ..TreeParams::default()
        };
        let t = fit_tree(x.view(), &y, &params, 5).unwrap();
        let used: std::collections::BTreeSet<u16> = t
            .nodes
            .iter()
            .filter_map(|n| match n {
                Node::Split { feature, .. } => Some(*feature),
                Node::Leaf { .. } => None,
            })
            .collect();
        assert!(used.len() >= 4, "{used:?}");
    }

    #[test]
    fn sampling_keeps_drawing_past_constant_columns() {
        // Columns 0..4 are constant; one drawn column per split must still find column 4.
        let mut x = Array2::zeros((6, 5));
        for i in 0..6 {
            x[(i, 4)] = i as f64;
        }
        let y = [false, false, false, true, true, true];
        let params = TreeParams {
            max_features: MaxFeatures::Count(1),
            ..TreeParams::default()
        };
        for seed in 0..10 {
            let t = fit_tree(x.view(), &y, &params, seed).unwrap();
            assert!(
                matches!(t.nodes[0], Node::Split { feature: 4, threshold, .. } if threshold == 2.5),
                "seed {seed}: {:?}",
                t.nodes
            );
        }
    }

    #[test]
    fn leaves_hold_the_training_fraction() {
        let (x, y) = noisy(100, 3, 9);
        let params = TreeParams {
            max_depth: Some(2),
            min_samples_leaf: 10,
            ..TreeParams::default()
        };
        let t = fit_tree(x.view(), &y, &params, 0).unwrap();
        let total: f64 = (0..100)
            .map(|i| t.predict(x.row(i).as_slice().unwrap()))
            .sum();
        let positives = y.iter().filter(|&&t| t).count() as f64;
        assert!((total - positives).abs() < 1e-9, "{total} vs {positives}");
    }

    #[test]
    fn bad_input_and_parameters_are_refused() {
        let x = column(&[1.0, 2.0]);
        assert_eq!(
            fit_tree(x.view(), &[true], &TreeParams::default(), 0),
            Err(FitError::LengthMismatch {
                rows: 2,
                targets: 1
            })
        );
        let zero = TreeParams {
            min_samples_leaf: 0,
            ..TreeParams::default()
        };
        assert!(matches!(
            fit_tree(x.view(), &[true, false], &zero, 0),
            Err(FitError::InvalidParam {
                name: "min_samples_leaf",
                ..
            })
        ));
        let nan = column(&[1.0, f64::NAN]);
        assert_eq!(
            fit_tree(nan.view(), &[true, false], &TreeParams::default(), 0),
            Err(FitError::NonFinite { row: 1, column: 0 })
        );
        let empty = Array2::<f64>::zeros((0, 3));
        assert_eq!(
            fit_tree(empty.view(), &[], &TreeParams::default(), 0),
            Err(FitError::NoRows)
        );
    }

    #[test]
    fn max_features_resolves_like_scikit_learn() {
        assert_eq!(MaxFeatures::Sqrt.resolve(25), 5);
        assert_eq!(MaxFeatures::Sqrt.resolve(28), 5);
        assert_eq!(MaxFeatures::Fraction(0.25).resolve(28), 7);
        assert_eq!(MaxFeatures::Count(100).resolve(28), 28);
        assert_eq!(MaxFeatures::All.resolve(28), 28);
        assert_eq!(MaxFeatures::Fraction(0.01).resolve(28), 1);
    }
}
