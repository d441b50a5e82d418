//! Why a model gave its answer: its output split into a base, the output expected over the
//! training data, plus one contribution per input field, adding up exactly.
//!
//! - **Logistic regression**, exact: the log-odds `b + Σ w_j x_j` equals
//!   `base + Σ w_j (x_j - μ_j)` with `μ_j` the training mean of encoded column `j` (0 for a
//!   standardised column, the category's share for a one-hot one) and `base = b + Σ w_j μ_j`.
//!   A field's contribution is the sum over its columns: coefficient × standardised deviation
//!   from the training mean for a numeric field.
//! - **Trees, forests and boosting**, Saabas's path decomposition: every node holds the expected
//!   output of the training rows that reach it (the cover-weighted mean of its leaves), and each
//!   split on the way from the root to the leaf credits the change of that expectation to the
//!   field it splits on. The base is the root's expectation; a forest averages its trees, a
//!   boosted model scales them by its learning rate and adds its base score. Saabas costs one walk
//!   of the path, as scoring does; TreeSHAP would cost O(leaves × depth²) a tree, and for the
//!   trainer's usual boosted stumps the two agree (a stump's one split is its only feature).
//!
//! The output explained is the estimator's own (log-odds for logistic regression and boosting,
//! a probability for trees and forests), before any Platt calibration: that map is monotone, so
//! it changes the probability but not the order or the sign of the contributions.

use heart_schemas::patient::N_FIELDS;
use heart_schemas::{Contribution, OutputSpace};
use thiserror::Error;

use crate::artifact::Artifact;
use crate::estimator::{Estimator, Node, Tree};
use crate::preprocess::MAX_WIDTH;
use crate::profile::trees;
use crate::stumps::StumpTable;

/// One record's explanation; `base + Σ contributions == output`.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The scale of `base`, `output` and the contributions.
    pub space: OutputSpace,
    /// The output expected over the training data.
    pub base: f64,
    /// The uncalibrated output for this record.
    pub output: f64,
    /// Per field, in [`FIELDS`](heart_schemas::patient::FIELDS) order.
    pub contributions: [f64; N_FIELDS],
    /// The value each field was scored with: as received, or the training median or mode that
    /// was imputed for it.
    pub values: [f64; N_FIELDS],
}

impl Explanation {
    /// The `k` fields with the largest contributions by magnitude, largest first (ties in field
    /// order), as indices into [`FIELDS`](heart_schemas::patient::FIELDS).
    pub fn top(&self, k: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..N_FIELDS).collect();
        order.sort_by(|&a, &b| {
            self.contributions[b]
                .abs()
                .total_cmp(&self.contributions[a].abs())
                .then(a.cmp(&b))
        });
        order.truncate(k);
        order
    }

    /// The wire form: the `k` largest contributions and the sum of the rest.
    pub fn summary(&self, k: usize) -> heart_schemas::Explanation {
        let top = self.top(k);
        let listed: f64 = top.iter().map(|&f| self.contributions[f]).sum();
        heart_schemas::Explanation {
            space: self.space,
            base: self.base,
            output: self.output,
            other: self.contributions.iter().sum::<f64>() - listed,
            contributions: top
                .into_iter()
                .map(|field| Contribution {
                    field,
                    value: self.values[field],
                    contribution: self.contributions[field],
                })
                .collect(),
        }
    }
}

/// Why a model cannot explain itself.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExplainError {
    /// The artifact predates training profiles (payload formats v1 and v2).
    #[error(
        "model {name} version {version} carries no training profile (payload format {format}); train and publish it again with this trainer to explain its predictions"
    )]
    NoProfile {
        /// Model name.
        name: String,
        /// Model version.
        version: i64,
        /// Its payload format.
        format: String,
    },
}

/// What explaining needs beyond the artifact, computed once when a model is loaded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Explainer {
    /// The field of each encoded column.
    column_field: Vec<usize>,
    /// Mean of each encoded column over the training rows.
    column_means: Vec<f64>,
    /// For each tree, each node's expected output over the training rows that reach it.
    node_values: Vec<Vec<f64>>,
}

impl Explainer {
    /// The explainer of an artifact whose profile has passed its check; `None` without one.
    pub(crate) fn new(artifact: &Artifact) -> Option<Self> {
        let profile = artifact.profile.as_ref()?;
        let column_field = artifact
            .preprocessor
            .steps
            .iter()
            .flat_map(|step| std::iter::repeat_n(step.field(), step.width()))
            .collect();
        let node_values = trees(&artifact.estimator)
            .iter()
            .zip(&profile.tree_cover)
            .map(|(tree, cover)| expectations(tree, cover))
            .collect();
        Some(Self {
            column_field,
            column_means: profile.column_means.clone(),
            node_values,
        })
    }

    /// Each tree's root expectation: its expected output over the training rows.
    pub(crate) fn root_values(&self) -> Vec<f64> {
        self.node_values.iter().map(|v| v[0]).collect()
    }

    /// Explains the artifact's output for one record; boosted stumps through their `table`
    /// when there is one (the same numbers, in a binary search per feature).
    pub(crate) fn explain(
        &self,
        artifact: &Artifact,
        table: Option<&StumpTable>,
        features: &[Option<f64>; N_FIELDS],
    ) -> Explanation {
        let mut x = [0.0; MAX_WIDTH];
        let width = artifact.preprocessor.transform(features, &mut x).width;
        let x = &x[..width];
        let mut contributions = [0.0; N_FIELDS];
        let (space, base, output) = match (artifact.estimator.uncalibrated(), table) {
            (Estimator::Boosted { .. }, Some(table)) => {
                let (base, output) = table.explain(x, |column, c| {
                    contributions[self.column_field[column]] += c;
                });
                (OutputSpace::LogOdds, base, output)
            }
            (estimator, _) => self.explain_walking(estimator, x, &mut contributions),
        };
        let mut values = [0.0; N_FIELDS];
        for (field, step) in artifact.preprocessor.steps.iter().enumerate() {
            values[field] = features[field].unwrap_or_else(|| step.fill_value());
        }
        Explanation {
            space,
            base,
            output,
            contributions,
            values,
        }
    }

    /// The decomposition by the estimator itself (walking every tree's path).
    fn explain_walking(
        &self,
        estimator: &Estimator,
        x: &[f64],
        contributions: &mut [f64; N_FIELDS],
    ) -> (OutputSpace, f64, f64) {
        match estimator {
            Estimator::Logistic { weights, intercept } => {
                let mut base = *intercept;
                let mut output = *intercept;
                for (j, (w, v)) in weights.iter().zip(x).enumerate() {
                    let mean = self.column_means[j];
                    base += w * mean;
                    output += w * v;
                    contributions[self.column_field[j]] += w * (v - mean);
                }
                (OutputSpace::LogOdds, base, output)
            }
            Estimator::Forest { trees } => {
                let scale = 1.0 / trees.len() as f64;
                let (base, sum) = self.walk(trees, x, scale, contributions);
                (OutputSpace::Probability, base, sum)
            }
            Estimator::Boosted {
                base_score,
                learning_rate,
                trees,
            } => {
                let (base, sum) = self.walk(trees, x, *learning_rate, contributions);
                (OutputSpace::LogOdds, base_score + base, base_score + sum)
            }
            // `uncalibrated` never returns a calibrated estimator.
            Estimator::Calibrated { estimator, .. } => {
                self.explain_walking(estimator, x, contributions)
            }
        }
    }

    /// Saabas over `trees`, each scaled by `scale`: adds the credits to `contributions` and
    /// returns the summed base and output.
    fn walk(
        &self,
        trees: &[Tree],
        x: &[f64],
        scale: f64,
        contributions: &mut [f64; N_FIELDS],
    ) -> (f64, f64) {
        let (mut base, mut output) = (0.0, 0.0);
        for (tree, values) in trees.iter().zip(&self.node_values) {
            let mut path = tree.path(x);
            let mut at = path.next().unwrap_or(0);
            base += scale * values[at];
            for next in path {
                if let Node::Split { feature, .. } = tree.nodes[at] {
                    contributions[self.column_field[usize::from(feature)]] +=
                        scale * (values[next] - values[at]);
                }
                at = next;
            }
            output += scale * values[at];
        }
        (base, output)
    }
}

/// Each node's expected output: a leaf's value, or the cover-weighted mean of its children's
/// (their plain mean where no training row reaches the node, which the rows of a bootstrap or
/// subsample may leave). Children come after their parents, so one pass from the back fills
/// every node.
fn expectations(tree: &Tree, cover: &[f64]) -> Vec<f64> {
    let mut values = vec![0.0; tree.nodes.len()];
    for i in (0..tree.nodes.len()).rev() {
        values[i] = match tree.nodes[i] {
            Node::Leaf { probability } => probability,
            Node::Split { left, right, .. } => {
                let (l, r) = (left as usize, right as usize);
                let total = cover[l] + cover[r];
                if total > 0.0 {
                    (cover[l] * values[l] + cover[r] * values[r]) / total
                } else {
                    (values[l] + values[r]) / 2.0
                }
            }
        };
    }
    values
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use heart_schemas::patient::FIELDS;

    use super::*;
    use crate::artifact::Algorithm;
    use crate::estimator::{Platt, logit};
    use crate::load::Model;
    use crate::load::tests::rows;
    use crate::preprocess::Preprocessor;

    /// Rows of age and sex only (the other fields constant): ages 40, 50, 60, 70, sex 0, 1, 0, 1.
    fn four_rows() -> Vec<[Option<f64>; N_FIELDS]> {
        let mut base = rows()[0];
        [(40.0, 0.0), (50.0, 1.0), (60.0, 0.0), (70.0, 1.0)]
            .iter()
            .map(|&(age, sex)| {
                base[0] = Some(age);
                base[1] = Some(sex);
                base
            })
            .collect()
    }

    fn model(
        rows: &[[Option<f64>; N_FIELDS]],
        algorithm: Algorithm,
        estimator: impl FnOnce(&Preprocessor) -> Estimator,
    ) -> Model {
        let preprocessor = Preprocessor::fit(rows);
        let estimator = estimator(&preprocessor);
        let mut a = Artifact {
            name: "heart-disease".into(),
            algorithm,
            hyperparameters: BTreeMap::new(),
            preprocessor,
            estimator,
            training_data_sha256: String::new(),
            cv_metrics: BTreeMap::new(),
            golden: Vec::new(),
            profile: None,
        };
        a.set_profile(rows);
        a.set_golden(rows);
        Model::load(a.to_version(1, 0, "test").unwrap()).unwrap()
    }

    /// Age (column 0, standardised) at 0, then sex=1 (column 2) at 0.5: leaves 0.2, 0.5, 0.9.
    fn two_split_tree() -> Tree {
        Tree {
            nodes: vec![
                Node::Split {
                    feature: 0,
                    threshold: 0.0,
                    left: 1,
                    right: 2,
                },
                Node::Leaf { probability: 0.2 },
                Node::Split {
                    feature: 2,
                    threshold: 0.5,
                    left: 3,
                    right: 4,
                },
                Node::Leaf { probability: 0.5 },
                Node::Leaf { probability: 0.9 },
            ],
        }
    }

    #[test]
    fn logistic_contributions_are_coefficient_times_standardised_deviation() {
        let rows = four_rows();
        let m = model(&rows, Algorithm::LogisticRegression, |p| {
            let mut weights = vec![0.0; p.width()];
            weights[0] = 2.0; // age
            weights[2] = -1.0; // sex = 1
            Estimator::Logistic {
                weights,
                intercept: 0.5,
            }
        });
        let e = m.explain(&rows[3]).unwrap();
        assert_eq!(e.space, OutputSpace::LogOdds);
        // Ages 40..70: mean 55, population std √125; age 70 is 15/√125 standard deviations up.
        let age = 2.0 * 15.0 / 125f64.sqrt();
        assert!((e.contributions[0] - age).abs() < 1e-12, "{e:?}");
        // sex = 1 has a training share of 1/2: the one-hot column deviates by 1/2.
        assert!((e.contributions[1] - -0.5).abs() < 1e-12);
        assert!(e.contributions[2..].iter().all(|c| *c == 0.0));
        // The base is the log-odds at the training means: 0.5 + 2 × 0 - 1 × 0.5.
        assert!((e.base - 0.0).abs() < 1e-12);
        let p = m.predict_features(&rows[3]).probability;
        assert!((e.output - logit(p)).abs() < 1e-9);
        assert_eq!(e.values[0], 70.0);
        assert_eq!(e.top(2), [0, 1]);
    }

    #[test]
    fn saabas_credits_each_split_with_the_change_of_the_expectation() {
        let rows = four_rows();
        let m = model(&rows, Algorithm::DecisionTree, |_| Estimator::Forest {
            trees: vec![two_split_tree()],
        });
        // Cover: the root 4 rows, the leaf 0.2 two (ages 40, 50), 0.5 and 0.9 one each, so the
        // right node expects 0.7 and the root (2 × 0.2 + 2 × 0.7) / 4 = 0.45.
        let cover = &m.artifact.profile.as_ref().unwrap().tree_cover;
        assert_eq!(cover, &[vec![4.0, 2.0, 2.0, 1.0, 1.0]]);
        let e = m.explain(&rows[3]).unwrap(); // age 70, sex 1: the 0.9 leaf
        assert_eq!(e.space, OutputSpace::Probability);
        assert!((e.base - 0.45).abs() < 1e-12);
        assert!((e.contributions[0] - 0.25).abs() < 1e-12, "age: 0.45 → 0.7");
        assert!((e.contributions[1] - 0.2).abs() < 1e-12, "sex: 0.7 → 0.9");
        assert!((e.output - 0.9).abs() < 1e-12);
        let e = m.explain(&rows[0]).unwrap(); // age 40: the 0.2 leaf
        assert!((e.contributions[0] - -0.25).abs() < 1e-12);
        assert_eq!(e.contributions[1], 0.0);

        // Boosted, the same tree's leaves as scores: scaled by the learning rate, plus the base score.
        let b = model(&rows, Algorithm::GradientBoosting, |_| Estimator::Boosted {
            base_score: -1.0,
            learning_rate: 0.5,
            trees: vec![two_split_tree(), two_split_tree()],
        });
        let e = b.explain(&rows[3]).unwrap();
        assert_eq!(e.space, OutputSpace::LogOdds);
        assert!((e.base - (-1.0 + 0.45)).abs() < 1e-12);
        assert!((e.contributions[0] - 0.25).abs() < 1e-12);
        assert!((e.contributions[1] - 0.2).abs() < 1e-12);
        assert!((e.output - (-1.0 + 0.9)).abs() < 1e-12);
    }

    /// Every kind, calibrated or not, on rows with missing fields: base + Σ contributions is the
    /// estimator's output to 1e-9, and the output is what the model scores.
    #[test]
    fn contributions_and_base_add_up_to_the_output() {
        let rows = rows();
        let mut probe = rows.clone();
        probe.push([None; N_FIELDS]);
        probe.push({
            let mut r = rows[4];
            r[4] = None;
            r[11] = None;
            r
        });
        let tree = |feature: u16, threshold: f64| Tree {
            nodes: vec![
                Node::Split {
                    feature,
                    threshold,
                    left: 1,
                    right: 2,
                },
                Node::Leaf { probability: 0.3 },
                Node::Split {
                    feature: feature + 1,
                    threshold: -0.1,
                    left: 3,
                    right: 4,
                },
                Node::Leaf { probability: 0.6 },
                Node::Leaf { probability: 0.8 },
            ],
        };
        let trees: Vec<Tree> = (0..12u16)
            .map(|f| tree(f, 0.1 * f64::from(f) - 0.5))
            .collect();
        let kinds: Vec<(Algorithm, Estimator)> = vec![
            (
                Algorithm::LogisticRegression,
                Estimator::Logistic {
                    weights: (0..Preprocessor::fit(&rows).width())
                        .map(|j| (j as f64 - 7.0) / 9.0)
                        .collect(),
                    intercept: -0.2,
                },
            ),
            (
                Algorithm::RandomForest,
                Estimator::Forest {
                    trees: trees.clone(),
                },
            ),
            (
                Algorithm::GradientBoosting,
                Estimator::Boosted {
                    base_score: 0.1,
                    learning_rate: 0.3,
                    trees,
                },
            ),
        ];
        for (algorithm, estimator) in kinds {
            for calibrated in [false, true] {
                let estimator = if calibrated {
                    Estimator::Calibrated {
                        estimator: Box::new(estimator.clone()),
                        platt: Platt { a: 1.4, b: 0.1 },
                    }
                } else {
                    estimator.clone()
                };
                let m = model(&rows, algorithm, |_| estimator);
                for r in &probe {
                    let e = m.explain(r).unwrap();
                    let sum = e.base + e.contributions.iter().sum::<f64>();
                    assert!((sum - e.output).abs() < 1e-9, "{algorithm}: {sum} vs {e:?}");
                    let mut x = [0.0; MAX_WIDTH];
                    let width = m.artifact.preprocessor.transform(r, &mut x).width;
                    let raw = m.artifact.estimator.uncalibrated().predict(&x[..width]);
                    let want = match e.space {
                        OutputSpace::LogOdds => logit(raw),
                        OutputSpace::Probability => raw,
                    };
                    assert!((e.output - want).abs() < 1e-9, "{algorithm}: {e:?}");
                    for (field, value) in r.iter().enumerate() {
                        let step = &m.artifact.preprocessor.steps[field];
                        assert_eq!(e.values[field], value.unwrap_or_else(|| step.fill_value()));
                    }
                }
            }
        }
    }

    #[test]
    fn a_profile_that_does_not_fit_its_artifact_is_refused() {
        let m = model(&four_rows(), Algorithm::DecisionTree, |_| {
            Estimator::Forest {
                trees: vec![two_split_tree()],
            }
        });
        assert_eq!(m.version.payload_format, crate::PAYLOAD_FORMAT_V3);
        let tamper = |f: fn(&mut crate::TrainingProfile)| {
            let mut a = m.artifact.clone();
            f(a.profile.as_mut().unwrap());
            Model::load(a.to_version(2, 0, "t").unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(tamper(|p| p.tree_cover[0].pop().map_or((), drop)).contains("tree 0: cover"));
        assert!(tamper(|p| p.column_means.push(0.0)).contains("column means"));
        assert!(tamper(|p| p.tree_cover[0][1] = f64::NAN).contains("finite count per node"));

        // A node no training row reached expects the plain mean of its children.
        let mut a = m.artifact.clone();
        a.profile.as_mut().unwrap().tree_cover[0][2..].fill(0.0);
        let e = Model::load(a.to_version(2, 0, "t").unwrap())
            .unwrap()
            .explain(&four_rows()[3])
            .unwrap();
        assert!(
            (e.base - 0.2).abs() < 1e-12,
            "the right side has no cover: {e:?}"
        );
        assert!((e.contributions[0] - (0.7 - 0.2)).abs() < 1e-12);
        assert!((e.contributions[1] - (0.9 - 0.7)).abs() < 1e-12);
    }

    #[test]
    fn boosted_stumps_explain_through_their_table_as_through_the_trees() {
        let rows = rows();
        let stumps: Vec<Tree> = (0..40u16)
            .map(|i| {
                let f = i % 14;
                Tree::stump(
                    f,
                    f64::from(i % 5) * 0.3 - 0.6,
                    f64::from(i) / 40.0 - 0.5,
                    0.2,
                )
            })
            .chain([Tree {
                nodes: vec![Node::Leaf { probability: 0.3 }],
            }])
            .collect();
        for calibrated in [false, true] {
            let boosted = Estimator::Boosted {
                base_score: -0.2,
                learning_rate: 0.1,
                trees: stumps.clone(),
            };
            let estimator = if calibrated {
                Estimator::Calibrated {
                    estimator: Box::new(boosted),
                    platt: Platt { a: 1.2, b: -0.1 },
                }
            } else {
                boosted
            };
            let m = model(&rows, Algorithm::GradientBoosting, |_| estimator);
            assert!(m.stumps.is_some(), "stumps are tabulated");
            let explainer = m.explainer.as_ref().unwrap();
            let mut probe = rows.clone();
            probe.push([None; N_FIELDS]);
            for r in &probe {
                let table = m.explain(r).unwrap();
                let walked = explainer.explain(&m.artifact, None, r);
                assert!(
                    (table.base - walked.base).abs() < 1e-12,
                    "{table:?} {walked:?}"
                );
                assert!((table.output - walked.output).abs() < 1e-12);
                for (a, b) in table.contributions.iter().zip(walked.contributions) {
                    assert!((a - b).abs() < 1e-12, "{table:?} {walked:?}");
                }
                let sum = table.base + table.contributions.iter().sum::<f64>();
                assert!((sum - table.output).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn top_orders_by_magnitude_then_field() {
        let mut contributions = [0.0; N_FIELDS];
        contributions[3] = -0.4;
        contributions[5] = 0.4;
        contributions[7] = 0.1;
        let e = Explanation {
            space: OutputSpace::LogOdds,
            base: 0.0,
            output: 0.1,
            contributions,
            values: [0.0; N_FIELDS],
        };
        assert_eq!(e.top(3), [3, 5, 7]);
        let wire = e.summary(2);
        assert_eq!(wire.contributions.len(), 2);
        assert_eq!(
            (
                wire.contributions[1].field,
                wire.contributions[1].contribution
            ),
            (5, 0.4)
        );
        assert!((wire.other - 0.1).abs() < 1e-15, "the unlisted 0.1");
        assert_eq!(e.top(1), [3]);
        assert_eq!(e.top(100).len(), N_FIELDS);
        assert_eq!(FIELDS[e.top(1)[0]].name, "trestbps");
    }

    #[test]
    fn an_artifact_without_a_profile_says_how_to_get_one() {
        let mut a = Model::load(
            model(&four_rows(), Algorithm::LogisticRegression, |p| {
                Estimator::Logistic {
                    weights: vec![0.1; p.width()],
                    intercept: 0.0,
                }
            })
            .artifact
            .to_version(1, 0, "t")
            .unwrap(),
        )
        .unwrap()
        .artifact;
        a.profile = None;
        let v = a.to_version(3, 0, "t").unwrap();
        assert_eq!(v.payload_format, crate::PAYLOAD_FORMAT_V1);
        let err = Model::load(v)
            .unwrap()
            .explain(&four_rows()[0])
            .unwrap_err();
        assert!(
            err.to_string().contains("train and publish it again"),
            "{err}"
        );
    }
}
