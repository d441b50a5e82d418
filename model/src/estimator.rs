//! Fitted estimators as plain data: what the trainer learnt, in a form any loader can check.

use serde::{Deserialize, Serialize};

/// A node of a binary decision tree, stored in a flat vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Node {
    /// Go to `left` when `x[feature] <= threshold`, else to `right`.
    Split {
        /// Column of the encoded feature vector.
        feature: u16,
        /// Split value.
        threshold: f64,
        /// Index of the left child; always greater than this node's index.
        left: u32,
        /// Index of the right child; always greater than this node's index.
        right: u32,
    },
    /// A leaf: the fraction of positive training samples that reached it; in a tree of
    /// [`Estimator::Boosted`], a raw score on the log-odds scale instead.
    Leaf {
        /// Probability of the positive class (a boosted tree: its raw score, any finite value).
        probability: f64,
    },
}

/// A decision tree; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// The nodes. Children always come after their parent, which makes every path finite.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// A tree of one split: `left` when `x[feature] <= threshold`, else `right`.
    pub fn stump(feature: u16, threshold: f64, left: f64, right: f64) -> Self {
        Self {
            nodes: vec![
                Node::Split {
                    feature,
                    threshold,
                    left: 1,
                    right: 2,
                },
                Node::Leaf { probability: left },
                Node::Leaf { probability: right },
            ],
        }
    }

    /// The value of the leaf `x` reaches: the probability of the positive class (a boosted
    /// tree: its raw score).
    ///
    /// # Panics
    /// If the tree breaks its invariants (see [`Tree::check`]); loaders check first.
    pub fn predict(&self, x: &[f64]) -> f64 {
        let mut i = 0usize;
        loop {
            match &self.nodes[i] {
                Node::Leaf { probability } => return *probability,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    i = if x[usize::from(*feature)] <= *threshold {
                        *left as usize
                    } else {
                        *right as usize
                    };
                }
            }
        }
    }

    /// The nodes `x` passes through, the root first and its leaf last.
    ///
    /// # Panics
    /// As [`Tree::predict`].
    pub fn path<'a>(&'a self, x: &'a [f64]) -> impl Iterator<Item = usize> + 'a {
        let mut next = Some(0usize);
        std::iter::from_fn(move || {
            let i = next?;
            next = match &self.nodes[i] {
                Node::Leaf { .. } => None,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => Some(if x[usize::from(*feature)] <= *threshold {
                    *left as usize
                } else {
                    *right as usize
                }),
            };
            Some(i)
        })
    }

    /// Checks that the tree is non-empty, children follow their parents, features are within
    /// `width` and leaves hold probabilities.
    ///
    /// # Errors
    /// A description of the first broken invariant.
    pub fn check(&self, width: usize) -> Result<(), String> {
        self.check_nodes(width, |probability| {
            if (0.0..=1.0).contains(&probability) {
                Ok(())
            } else {
                Err(format!("leaf probability {probability} outside [0, 1]"))
            }
        })
    }

    /// As [`Tree::check`], for a tree of raw scores ([`Estimator::Boosted`]): leaves hold any
    /// finite value.
    ///
    /// # Errors
    /// A description of the first broken invariant.
    pub fn check_scores(&self, width: usize) -> Result<(), String> {
        self.check_nodes(width, |score| {
            if score.is_finite() {
                Ok(())
            } else {
                Err(format!("leaf score {score} is not finite"))
            }
        })
    }

    fn check_nodes(
        &self,
        width: usize,
        leaf: impl Fn(f64) -> Result<(), String>,
    ) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("empty tree".to_owned());
        }
        for (i, node) in self.nodes.iter().enumerate() {
            match node {
                Node::Leaf { probability } => {
                    leaf(*probability).map_err(|e| format!("node {i}: {e}"))?;
                }
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    if usize::from(*feature) >= width {
                        return Err(format!("node {i}: feature {feature} >= width {width}"));
                    }
                    if !threshold.is_finite() {
                        return Err(format!("node {i}: threshold is not finite"));
                    }
                    for child in [*left as usize, *right as usize] {
                        if child <= i || child >= self.nodes.len() {
                            return Err(format!("node {i}: child {child} out of order or range"));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A fitted estimator over the encoded feature vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Estimator {
    /// `p = sigmoid(w · x + b)`.
    Logistic {
        /// One weight per encoded column.
        weights: Vec<f64>,
        /// The bias term.
        intercept: f64,
    },
    /// The mean of the trees' leaf probabilities (one tree for a plain decision tree).
    Forest {
        /// The trees.
        trees: Vec<Tree>,
    },
    /// Gradient-boosted trees: `p = sigmoid(base_score + learning_rate × Σ tree(x))`, where
    /// each tree's leaves hold raw scores on the log-odds scale.
    Boosted {
        /// The starting log-odds (the training data's, `ln(positives / negatives)`).
        base_score: f64,
        /// Shrinkage applied to every tree's score; finite and positive.
        learning_rate: f64,
        /// The trees, in the order they were fitted.
        trees: Vec<Tree>,
    },
    /// Another estimator's probability mapped through `platt`. Added in payload format v2 (an
    /// older reader refuses such an artifact by its format, not as corrupt).
    Calibrated {
        /// The uncalibrated estimator; never itself `Calibrated`.
        estimator: Box<Estimator>,
        /// The map, fitted on the estimator's out-of-fold probabilities.
        platt: Platt,
    },
}

/// Platt scaling: `p' = sigmoid(a · logit(p) + b)`, with `p` clipped to
/// `[LOGIT_EPS, 1 - LOGIT_EPS]` first so that 0 and 1 stay finite.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    /// Slope on the logit; positive, so the map keeps the order of the probabilities (and with
    /// it the ROC-AUC).
    pub a: f64,
    /// Intercept.
    pub b: f64,
}

/// Clipping of probabilities before [`logit`].
pub const LOGIT_EPS: f64 = 1e-6;

impl Platt {
    /// The calibrated probability.
    pub fn apply(&self, p: f64) -> f64 {
        sigmoid(self.a * logit(p) + self.b)
    }

    /// Checks that both parameters are finite and the slope positive.
    ///
    /// # Errors
    /// A description of the broken invariant.
    pub fn check(&self) -> Result<(), String> {
        if !(self.a.is_finite() && self.a > 0.0 && self.b.is_finite()) {
            return Err(format!(
                "Platt map a = {}, b = {}: a must be finite and positive, b finite",
                self.a, self.b
            ));
        }
        Ok(())
    }
}

/// `ln(p / (1 - p))` of `p` clipped to `[LOGIT_EPS, 1 - LOGIT_EPS]`.
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(LOGIT_EPS, 1.0 - LOGIT_EPS);
    (p / (1.0 - p)).ln()
}

impl Estimator {
    /// Probability of the positive class for encoded features `x`.
    ///
    /// # Panics
    /// If `x` is shorter than the estimator expects; loaders check widths first.
    pub fn predict(&self, x: &[f64]) -> f64 {
        match self {
            Self::Logistic { weights, intercept } => {
                let z = weights.iter().zip(x).map(|(w, v)| w * v).sum::<f64>() + intercept;
                sigmoid(z)
            }
            Self::Forest { trees } => {
                trees.iter().map(|t| t.predict(x)).sum::<f64>() / trees.len() as f64
            }
            Self::Boosted {
                base_score,
                learning_rate,
                trees,
            } => sigmoid(
                base_score + learning_rate * trees.iter().map(|t| t.predict(x)).sum::<f64>(),
            ),
            Self::Calibrated { estimator, platt } => platt.apply(estimator.predict(x)),
        }
    }

    /// The estimator without its calibration (itself when it has none).
    pub fn uncalibrated(&self) -> &Self {
        match self {
            Self::Calibrated { estimator, .. } => estimator,
            other => other,
        }
    }

    /// The calibration map, if any.
    pub fn calibration(&self) -> Option<Platt> {
        match self {
            Self::Calibrated { platt, .. } => Some(*platt),
            _ => None,
        }
    }

    /// Checks the estimator against the encoded width.
    ///
    /// # Errors
    /// A description of the first broken invariant.
    pub fn check(&self, width: usize) -> Result<(), String> {
        match self {
            Self::Logistic { weights, intercept } => {
                if weights.len() != width {
                    return Err(format!("{} weights for {width} features", weights.len()));
                }
                if !intercept.is_finite() || weights.iter().any(|w| !w.is_finite()) {
                    return Err("non-finite weight".to_owned());
                }
                Ok(())
            }
            Self::Forest { trees } => {
                if trees.is_empty() {
                    return Err("forest has no trees".to_owned());
                }
                trees
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, t)| t.check(width).map_err(|e| format!("tree {i}: {e}")))
            }
            Self::Boosted {
                base_score,
                learning_rate,
                trees,
            } => {
                if trees.is_empty() {
                    return Err("boosted model has no trees".to_owned());
                }
                if !base_score.is_finite() {
                    return Err(format!("base score {base_score} is not finite"));
                }
                if !(learning_rate.is_finite() && *learning_rate > 0.0) {
                    return Err(format!(
                        "learning rate {learning_rate} is not finite and positive"
                    ));
                }
                trees.iter().enumerate().try_for_each(|(i, t)| {
                    t.check_scores(width).map_err(|e| format!("tree {i}: {e}"))
                })
            }
            Self::Calibrated { estimator, platt } => {
                if matches!(**estimator, Self::Calibrated { .. }) {
                    return Err("a calibrated estimator inside a calibrated one".to_owned());
                }
                platt.check()?;
                estimator.check(width)
            }
        }
    }
}

/// The logistic function, written so that neither branch overflows.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stump() -> Tree {
        Tree::stump(1, 0.5, 0.25, 0.75)
    }

    #[test]
    fn sigmoid_hand_values_and_extremes() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!((sigmoid(2.0) - 0.880_797_077_977_882_3).abs() < 1e-15);
        assert!((sigmoid(-2.0) - 0.119_202_922_022_117_7).abs() < 1e-15);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
    }

    #[test]
    fn logistic_is_sigmoid_of_dot_product() {
        let e = Estimator::Logistic {
            weights: vec![1.0, -2.0],
            intercept: 0.5,
        };
        // 1*3 - 2*1 + 0.5 = 1.5
        assert!((e.predict(&[3.0, 1.0]) - sigmoid(1.5)).abs() < 1e-15);
        assert!(e.check(2).is_ok());
        assert!(e.check(3).is_err());
    }

    #[test]
    fn split_sends_equal_values_left() {
        let t = stump();
        assert_eq!(t.predict(&[0.0, 0.5]), 0.25);
        assert_eq!(t.predict(&[0.0, 0.6]), 0.75);
    }

    #[test]
    fn path_runs_from_the_root_to_the_leaf_predict_reads() {
        let t = Tree {
            nodes: vec![
                Node::Split {
                    feature: 0,
                    threshold: 1.0,
                    left: 1,
                    right: 2,
                },
                Node::Leaf { probability: 0.1 },
                Node::Split {
                    feature: 1,
                    threshold: 0.0,
                    left: 3,
                    right: 4,
                },
                Node::Leaf { probability: 0.2 },
                Node::Leaf { probability: 0.3 },
            ],
        };
        assert_eq!(t.path(&[0.0, 0.0]).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(t.path(&[2.0, 0.0]).collect::<Vec<_>>(), [0, 2, 3]);
        assert_eq!(t.path(&[2.0, 5.0]).collect::<Vec<_>>(), [0, 2, 4]);
        assert_eq!(t.predict(&[2.0, 5.0]), 0.3);
    }

    #[test]
    fn forest_averages_trees() {
        let f = Estimator::Forest {
            trees: vec![
                stump(),
                Tree {
                    nodes: vec![Node::Leaf { probability: 1.0 }],
                },
            ],
        };
        assert_eq!(f.predict(&[0.0, 0.0]), 0.625);
    }

    /// Leaves -1 (x1 <= 0.5) and +2, and a single-leaf tree of +1.
    fn boosted() -> Estimator {
        Estimator::Boosted {
            base_score: -0.25,
            learning_rate: 0.5,
            trees: vec![
                Tree {
                    nodes: vec![
                        Node::Split {
                            feature: 1,
                            threshold: 0.5,
                            left: 1,
                            right: 2,
                        },
                        Node::Leaf { probability: -1.0 },
                        Node::Leaf { probability: 2.0 },
                    ],
                },
                Tree {
                    nodes: vec![Node::Leaf { probability: 1.0 }],
                },
            ],
        }
    }

    #[test]
    fn boosted_is_sigmoid_of_base_plus_shrunk_tree_scores() {
        let e = boosted();
        // Left: -0.25 + 0.5 × (-1 + 1) = -0.25; right: -0.25 + 0.5 × (2 + 1) = 1.25.
        assert_eq!(e.predict(&[0.0, 0.0]), sigmoid(-0.25));
        assert_eq!(e.predict(&[0.0, 0.9]), sigmoid(1.25));
        assert!((e.predict(&[0.0, 0.0]) - 0.437_823_499_114_201_93).abs() < 1e-15);
        assert!((e.predict(&[0.0, 0.9]) - 0.777_299_861_174_691_1).abs() < 1e-15);
        e.check(2).unwrap();
    }

    #[test]
    fn boosted_leaves_are_scores_not_probabilities() {
        let Estimator::Boosted { trees, .. } = boosted() else {
            unreachable!()
        };
        assert!(trees[0].check_scores(2).is_ok());
        assert!(
            trees[0].check(2).unwrap_err().contains("outside [0, 1]"),
            "a score of 2 is no probability"
        );
        let forest = Estimator::Forest { trees };
        assert!(forest.check(2).is_err());
    }

    #[test]
    fn boosted_check_rejects_bad_scalars_scores_and_widths() {
        let with = |f: fn(&mut f64, &mut f64, &mut Vec<Tree>)| {
            let mut e = boosted();
            if let Estimator::Boosted {
                base_score,
                learning_rate,
                trees,
            } = &mut e
            {
                f(base_score, learning_rate, trees);
            }
            e.check(2)
        };
        assert!(with(|_, _, _| ()).is_ok());
        assert!(
            with(|b, _, _| *b = f64::NAN)
                .unwrap_err()
                .contains("base score")
        );
        assert!(
            with(|_, l, _| *l = 0.0)
                .unwrap_err()
                .contains("learning rate")
        );
        assert!(with(|_, l, _| *l = f64::INFINITY).is_err());
        assert!(with(|_, _, t| t.clear()).unwrap_err().contains("no trees"));
        assert!(
            with(|_, _, t| t[1].nodes[0] = Node::Leaf {
                probability: f64::INFINITY
            })
            .unwrap_err()
            .contains("tree 1: node 0: leaf score inf")
        );
        assert!(boosted().check(1).is_err(), "feature 1 needs width 2");
    }

    #[test]
    fn calibrated_is_the_platt_map_of_the_inner_probability() {
        let platt = Platt { a: 2.0, b: -0.5 };
        let e = Estimator::Calibrated {
            estimator: Box::new(boosted()),
            platt,
        };
        // Left leaf: inner logit -0.25, so 2 × -0.25 - 0.5 = -1.
        assert!((e.predict(&[0.0, 0.0]) - sigmoid(-1.0)).abs() < 1e-15);
        // Right leaf: inner logit 1.25, so 2 × 1.25 - 0.5 = 2.
        assert!((e.predict(&[0.0, 0.9]) - sigmoid(2.0)).abs() < 1e-15);
        assert_eq!(e.calibration(), Some(platt));
        assert_eq!(e.uncalibrated(), &boosted());
        assert_eq!(boosted().calibration(), None);
        e.check(2).unwrap();
        assert!(e.check(1).is_err(), "the inner estimator is checked");
        // Probabilities of exactly 0 and 1 are clipped, so the map stays finite.
        assert!(
            (platt.apply(1.0) - sigmoid(2.0 * (1.0 / LOGIT_EPS - 1.0).ln() - 0.5)).abs() < 1e-12
        );
        assert!(platt.apply(0.0) > 0.0);
    }

    #[test]
    fn calibration_refuses_a_flat_or_reversed_map_and_nesting() {
        for a in [0.0, -1.0, f64::NAN] {
            let e = Estimator::Calibrated {
                estimator: Box::new(boosted()),
                platt: Platt { a, b: 0.0 },
            };
            assert!(
                e.check(2)
                    .unwrap_err()
                    .contains("must be finite and positive"),
                "{a}"
            );
        }
        let once = Estimator::Calibrated {
            estimator: Box::new(boosted()),
            platt: Platt { a: 1.0, b: 0.0 },
        };
        let twice = Estimator::Calibrated {
            estimator: Box::new(once),
            platt: Platt { a: 1.0, b: 0.0 },
        };
        assert!(twice.check(2).unwrap_err().contains("inside a calibrated"));
    }

    #[test]
    fn check_rejects_cycles_and_bad_features() {
        let mut t = stump();
        assert!(t.check(2).is_ok());
        assert!(t.check(1).is_err(), "feature 1 needs width 2");
        t.nodes[0] = Node::Split {
            feature: 0,
            threshold: 0.0,
            left: 0,
            right: 2,
        };
        assert!(t.check(2).unwrap_err().contains("out of order"));
        t.nodes[0] = Node::Leaf { probability: 1.5 };
        assert!(t.check(2).is_err());
    }
}
