//! Boosted stumps as step functions. The trees of a boosted model that split once add up, per
//! feature, to a step function of that feature, so a model made of them is tabulated when it is
//! loaded: a record then costs one binary search per feature used instead of one branch per
//! stump (the trainer's 600 stumps on Cleveland use a dozen features). The estimator stays the
//! reference: a loaded model must reproduce its golden vectors through this table too.

use crate::estimator::{Node, Tree, sigmoid};

/// `sigmoid(base_score + learning_rate * Σ stumps(x))`, tabulated.
#[derive(Debug, Clone, PartialEq)]
pub struct StumpTable {
    base_score: f64,
    learning_rate: f64,
    /// The sum of the trees that are a single leaf.
    constant: f64,
    steps: Vec<Step>,
}

/// One stump of a feature: threshold, left score, right score.
type Stump = (f64, f64, f64);

/// The sum of every stump on one feature, as a function of that feature's value.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    feature: usize,
    /// The stumps' thresholds, ascending, without repeats.
    thresholds: Vec<f64>,
    /// `sums[i]`: the sum for a value in `(thresholds[i - 1], thresholds[i]]`; the last entry,
    /// for a value above every threshold (or NaN, which no split sends left).
    sums: Vec<f64>,
    /// The sum of these stumps' expectations over the training rows (see
    /// [`StumpTable::set_expectations`]); 0 until set.
    expected: f64,
}

impl Step {
    fn at(&self, value: f64) -> f64 {
        if value.is_nan() {
            return self.sums[self.thresholds.len()];
        }
        self.sums[self.thresholds.partition_point(|t| *t < value)]
    }
}

impl StumpTable {
    /// The table of a boosted model, or `None` unless every tree is a stump (a split with two
    /// leaves) or a single leaf. The trees must have passed [`Tree::check_scores`].
    pub fn new(base_score: f64, learning_rate: f64, trees: &[Tree]) -> Option<Self> {
        let mut constant = 0.0;
        let mut by_feature: Vec<(usize, Vec<Stump>)> = Vec::new();
        for tree in trees {
            match tree.nodes.as_slice() {
                [Node::Leaf { probability }] => constant += probability,
                [
                    Node::Split {
                        feature,
                        threshold,
                        left,
                        right,
                    },
                    rest @ ..,
                ] => {
                    let leaf = |i: u32| match rest.get((i as usize).checked_sub(1)?) {
                        Some(Node::Leaf { probability }) => Some(*probability),
                        _ => None,
                    };
                    let (l, r) = (leaf(*left)?, leaf(*right)?);
                    let feature = usize::from(*feature);
                    match by_feature.iter_mut().find(|(f, _)| *f == feature) {
                        Some((_, stumps)) => stumps.push((*threshold, l, r)),
                        None => by_feature.push((feature, vec![(*threshold, l, r)])),
                    }
                }
                _ => return None,
            }
        }
        let steps = by_feature
            .into_iter()
            .map(|(feature, stumps)| {
                let mut thresholds: Vec<f64> = stumps.iter().map(|s| s.0).collect();
                thresholds.sort_by(f64::total_cmp);
                thresholds.dedup();
                let sums = (0..=thresholds.len())
                    .map(|i| {
                        let upper = thresholds.get(i);
                        stumps
                            .iter()
                            .map(|&(t, l, r)| if upper.is_some_and(|u| *u <= t) { l } else { r })
                            .sum()
                    })
                    .collect();
                Step {
                    feature,
                    thresholds,
                    sums,
                    expected: 0.0,
                }
            })
            .collect();
        Some(Self {
            base_score,
            learning_rate,
            constant,
            steps,
        })
    }

    /// Records each stump's expected score over the training rows, `root_values[t]` for tree
    /// `t` of the `trees` the table was made from, for [`StumpTable::explain`].
    pub(crate) fn set_expectations(&mut self, trees: &[Tree], root_values: &[f64]) {
        for step in &mut self.steps {
            step.expected = 0.0;
        }
        for (tree, expected) in trees.iter().zip(root_values) {
            if let Some(Node::Split { feature, .. }) = tree.nodes.first()
                && let Some(step) = self
                    .steps
                    .iter_mut()
                    .find(|s| s.feature == usize::from(*feature))
            {
                step.expected += expected;
            }
        }
    }

    /// Saabas's decomposition of the log-odds, as [`crate::explain`] takes it, in a binary
    /// search per feature: each column's stumps contribute their step's value less its
    /// expectation. Adds the contributions to `by_column` and returns the base and the output.
    pub(crate) fn explain(&self, x: &[f64], mut by_column: impl FnMut(usize, f64)) -> (f64, f64) {
        let lr = self.learning_rate;
        let (mut expected, mut sum) = (self.constant, self.constant);
        for step in &self.steps {
            let at = step.at(x[step.feature]);
            by_column(step.feature, lr * (at - step.expected));
            expected += step.expected;
            sum += at;
        }
        (self.base_score + lr * expected, self.base_score + lr * sum)
    }

    /// The probability for encoded features `x`.
    pub fn predict(&self, x: &[f64]) -> f64 {
        let sum = self.constant + self.steps.iter().map(|s| s.at(x[s.feature])).sum::<f64>();
        sigmoid(self.base_score + self.learning_rate * sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimator::Estimator;

    fn boosted(trees: Vec<Tree>) -> (Estimator, StumpTable) {
        let table = StumpTable::new(-0.3, 0.1, &trees).expect("stumps");
        let estimator = Estimator::Boosted {
            base_score: -0.3,
            learning_rate: 0.1,
            trees,
        };
        (estimator, table)
    }

    #[test]
    fn the_table_reproduces_the_trees_at_and_around_every_threshold_and_for_nan() {
        let (estimator, table) = boosted(vec![
            Tree::stump(0, 0.5, 1.0, -1.0),
            Tree::stump(1, -0.25, 0.5, 2.0),
            Tree::stump(0, 0.5, 0.25, 0.75),
            Tree::stump(0, -1.0, -2.0, 3.0),
            Tree {
                nodes: vec![Node::Leaf { probability: 0.4 }],
            },
            Tree::stump(1, 1.5, -0.5, 0.0),
        ]);
        let values = [
            -2.0,
            -1.0,
            -0.999,
            -0.25,
            0.0,
            0.5,
            0.5001,
            1.5,
            9.0,
            f64::NAN,
        ];
        for a in values {
            for b in values {
                let x = [a, b];
                let (want, got) = (estimator.predict(&x), table.predict(&x));
                assert!(
                    (want - got).abs() < 1e-15,
                    "x = {x:?}: trees {want}, table {got}"
                );
            }
        }
    }

    #[test]
    fn deeper_trees_are_not_tabulated() {
        let deeper = Tree {
            nodes: vec![
                Node::Split {
                    feature: 0,
                    threshold: 0.0,
                    left: 1,
                    right: 2,
                },
                Node::Split {
                    feature: 1,
                    threshold: 0.0,
                    left: 3,
                    right: 4,
                },
                Node::Leaf { probability: 1.0 },
                Node::Leaf { probability: 2.0 },
                Node::Leaf { probability: 3.0 },
            ],
        };
        assert_eq!(
            StumpTable::new(0.0, 0.1, &[Tree::stump(0, 0.0, 1.0, 2.0), deeper]),
            None
        );
    }
}
