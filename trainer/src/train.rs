//! Training: the hyperparameter grids, linfa fits converted into heart-model estimators, seeded
//! stratified cross-validation, model selection and the final artifact with its golden vectors.
//!
//! Every probability evaluated here goes through heart-model ([`features::score`]:
//! `Preprocessor::transform` then `Estimator::predict`), the code the scorer runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use heart_model::{Algorithm, Artifact, Estimator, GoldenVector, Model, Node, Tree};
use indicatif::ProgressBar;
use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_logistic::LogisticRegression;
use linfa_trees::{DecisionTree, TreeNode};
use ndarray::{Array1, Array2, Axis};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use serde::Serialize;

use crate::data::{Dataset, Row};
use crate::error::TrainError;
use crate::evaluate::{self, METRIC_NAMES, MeanStd, Metrics};
use crate::features;

/// L-BFGS iteration cap for logistic regression (linfa's default of 100 can stop early).
const LOGISTIC_MAX_ITERATIONS: u64 = 1_000;
/// Gradient-norm tolerance for logistic regression.
const LOGISTIC_GRADIENT_TOLERANCE: f64 = 1e-6;
/// Sample weight of a positive row in tree fitting. linfa-trees breaks ties between equally
/// frequent classes by `HashMap` order, which is random per process, and prunes subtrees by the
/// tied-broken label; weighting positives a hair above 1 (exact in f32) removes every tie, so the
/// same seed always gives the same tree.
const POSITIVE_TREE_WEIGHT: f32 = 1.0 + 1.0 / 1024.0;
/// How many golden vectors come from the training data (spread evenly over it).
const GOLDEN_FROM_DATA: usize = 10;

/// Hyperparameters of one candidate model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Params {
    /// L2-regularised logistic regression.
    LogisticRegression {
        /// Inverse regularisation strength, as scikit-learn's `C`; linfa's `alpha` is `1 / C`
        /// (both penalise `||w||² / 2`, neither the intercept).
        c: f64,
    },
    /// A single CART tree (Gini).
    DecisionTree {
        /// Depth limit.
        max_depth: usize,
        /// Fewest samples a split may leave in a leaf.
        min_samples_leaf: usize,
    },
    /// Bagged CART trees, each on a bootstrap sample and a random subset of the encoded columns.
    RandomForest {
        /// Number of trees.
        n_trees: usize,
        /// Depth limit per tree.
        max_depth: usize,
        /// Fraction of encoded columns each tree sees (at least one).
        max_features: f64,
        /// Fewest bootstrap samples a split may leave in a leaf.
        min_samples_leaf: usize,
    },
}

impl Params {
    /// The algorithm these parameters are for.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::LogisticRegression { .. } => Algorithm::LogisticRegression,
            Self::DecisionTree { .. } => Algorithm::DecisionTree,
            Self::RandomForest { .. } => Algorithm::RandomForest,
        }
    }

    /// The parameters as name → text, as stored in the artifact.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let pairs: Vec<(&str, String)> = match *self {
            Self::LogisticRegression { c } => vec![
                ("C", c.to_string()),
                ("alpha", (1.0 / c).to_string()),
                ("max_iterations", LOGISTIC_MAX_ITERATIONS.to_string()),
            ],
            Self::DecisionTree {
                max_depth,
                min_samples_leaf,
            } => vec![
                ("max_depth", max_depth.to_string()),
                ("min_samples_leaf", min_samples_leaf.to_string()),
            ],
            Self::RandomForest {
                n_trees,
                max_depth,
                max_features,
                min_samples_leaf,
            } => vec![
                ("n_trees", n_trees.to_string()),
                ("max_depth", max_depth.to_string()),
                ("max_features", max_features.to_string()),
                ("min_samples_leaf", min_samples_leaf.to_string()),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// Short text, e.g. `C=0.1`.
    pub fn label(&self) -> String {
        self.to_map()
            .into_iter()
            .filter(|(k, _)| k != "alpha" && k != "max_iterations")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The hyperparameter grid searched for `algorithm`.
pub fn grid(algorithm: Algorithm) -> Vec<Params> {
    match algorithm {
        Algorithm::LogisticRegression => [0.01, 0.03, 0.1, 0.3, 1.0, 10.0]
            .into_iter()
            .map(|c| Params::LogisticRegression { c })
            .collect(),
        Algorithm::DecisionTree => [2, 3, 4, 5, 6]
            .into_iter()
            .flat_map(|max_depth| {
                [1, 5, 10].map(|min_samples_leaf| Params::DecisionTree {
                    max_depth,
                    min_samples_leaf,
                })
            })
            .collect(),
        Algorithm::RandomForest => [4, 6, 8]
            .into_iter()
            .flat_map(|max_depth| {
                [0.15, 0.25, 0.35]
                    .into_iter()
                    .flat_map(move |max_features| {
                        [1, 3].map(|min_samples_leaf| Params::RandomForest {
                            n_trees: 200,
                            max_depth,
                            max_features,
                            min_samples_leaf,
                        })
                    })
            })
            .collect(),
    }
}

/// Fits an estimator on encoded features `x` and labels `y`. `seed` drives the forest's
/// bootstrap and column sampling; the other models are deterministic.
///
/// # Errors
/// The linfa error, if fitting fails.
pub fn fit(
    params: &Params,
    x: &Array2<f64>,
    y: &[bool],
    seed: u64,
) -> Result<Estimator, TrainError> {
    match *params {
        Params::LogisticRegression { c } => fit_logistic(x, y, c),
        Params::DecisionTree {
            max_depth,
            min_samples_leaf,
        } => {
            let all: Vec<usize> = (0..x.nrows()).collect();
            let cols: Vec<usize> = (0..x.ncols()).collect();
            let tree = fit_tree(x, y, &all, &cols, max_depth, min_samples_leaf)?;
            Ok(Estimator::Forest { trees: vec![tree] })
        }
        Params::RandomForest {
            n_trees,
            max_depth,
            max_features,
            min_samples_leaf,
        } => {
            let mut rng = StdRng::seed_from_u64(seed);
            let n_cols = ((x.ncols() as f64 * max_features).round() as usize).clamp(1, x.ncols());
            let trees = (0..n_trees)
                .map(|_| {
                    let rows: Vec<usize> = (0..x.nrows())
                        .map(|_| rng.gen_range(0..x.nrows()))
                        .collect();
                    let mut cols = sample(&mut rng, x.ncols(), n_cols).into_vec();
                    cols.sort_unstable();
                    fit_tree(x, y, &rows, &cols, max_depth, min_samples_leaf)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Estimator::Forest { trees })
        }
    }
}

/// Fits linfa-logistic and re-expresses it as `P(disease) = sigmoid(w·x + b)`.
///
/// linfa's `predict_probabilities` is the probability of its "positive" class, which is the
/// *more frequent* label in the training targets (not `true`). When that is `false`, the
/// coefficients are negated: `1 - sigmoid(z) = sigmoid(-z)`.
fn fit_logistic(x: &Array2<f64>, y: &[bool], c: f64) -> Result<Estimator, TrainError> {
    let data = DatasetBase::new(x.clone(), Array1::from(y.to_vec()));
    let fitted = LogisticRegression::default()
        .alpha(1.0 / c)
        .max_iterations(LOGISTIC_MAX_ITERATIONS)
        .gradient_tolerance(LOGISTIC_GRADIENT_TOLERANCE)
        .fit(&data)?;
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    Ok(Estimator::Logistic {
        weights: fitted.params().iter().map(|w| sign * w).collect(),
        intercept: sign * fitted.intercept(),
    })
}

/// Fits a linfa-trees tree on the rows `rows` (repeats allowed: a bootstrap) and columns `cols`
/// of `x`, then converts it.
fn fit_tree(
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

/// Cross-validation of one candidate.
#[derive(Debug, Clone)]
pub struct CvResult {
    /// The candidate.
    pub params: Params,
    /// Metrics on each test fold.
    pub folds: Vec<Metrics>,
    /// Out-of-fold probability of every row (each row is in exactly one test fold).
    pub oof: Vec<f64>,
    /// Test rows whose one-hot fields held a category unseen in their training folds.
    pub unseen_categories: u32,
}

impl CvResult {
    /// Mean and population std of a metric over the folds.
    pub fn summary(&self, metric: &str) -> MeanStd {
        MeanStd::of(&self.folds.iter().map(|m| m.get(metric)).collect::<Vec<_>>())
    }

    /// The cv metrics as stored in the artifact: `cv.<metric>.mean` / `.std`.
    pub fn metric_map(&self) -> BTreeMap<String, f64> {
        METRIC_NAMES
            .iter()
            .flat_map(|m| {
                let s = self.summary(m);
                [
                    (format!("cv.{m}.mean"), s.mean),
                    (format!("cv.{m}.std"), s.std),
                ]
            })
            .collect()
    }
}

/// All candidates of one algorithm, and the best.
#[derive(Debug, Clone)]
pub struct ModelResult {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Every candidate in grid order.
    pub grid: Vec<CvResult>,
    /// Index into `grid` of the highest mean ROC-AUC (first on ties).
    pub best: usize,
}

impl ModelResult {
    /// The best candidate.
    pub fn best(&self) -> &CvResult {
        &self.grid[self.best]
    }
}

/// Everything `trainer train` produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per algorithm, in [`Algorithm::ALL`] order.
    pub models: Vec<ModelResult>,
    /// Index into `models` of the chosen model (highest mean ROC-AUC).
    pub chosen: usize,
    /// The folds used (row indices of each test fold).
    pub folds: Vec<Vec<usize>>,
    /// The chosen model refitted on all rows.
    pub artifact: Artifact,
}

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Model name.
    pub name: String,
    /// Seed for folds and forests.
    pub seed: u64,
    /// Number of folds.
    pub folds: usize,
    /// Which algorithms to try (all by default).
    pub algorithms: Vec<Algorithm>,
}

/// Cross-validates every candidate of every algorithm, picks the best by mean ROC-AUC, refits it
/// on all rows and builds the artifact, then checks it loads.
///
/// # Errors
/// [`TrainError`] if a fit fails or the artifact fails its own verification.
pub fn train(
    data: &Dataset,
    opts: &TrainOptions,
    progress: &ProgressBar,
) -> Result<Outcome, TrainError> {
    let smaller = data.positives().min(data.len() - data.positives());
    if smaller < opts.folds {
        return Err(TrainError::TooFewRows {
            folds: opts.folds,
            found: smaller,
        });
    }
    let folds = evaluate::stratified_folds(&data.target, opts.folds, opts.seed);
    let jobs: Vec<(Params, usize)> = opts
        .algorithms
        .iter()
        .flat_map(|&a| grid(a))
        .flat_map(|p| (0..opts.folds).map(move |f| (p, f)))
        .collect();
    progress.set_length(jobs.len() as u64);
    let results = parallel_map(&jobs, |&(params, f)| {
        let r = evaluate_fold(data, &folds, f, &params, fold_seed(opts.seed, f));
        progress.inc(1);
        r
    })?;

    let mut models = Vec::new();
    for &algorithm in &opts.algorithms {
        let mut grid_results = Vec::new();
        for params in grid(algorithm) {
            let mut cv = CvResult {
                params,
                folds: Vec::new(),
                oof: vec![f64::NAN; data.len()],
                unseen_categories: 0,
            };
            for ((p, f), r) in jobs.iter().zip(&results) {
                if *p == params {
                    cv.folds.push(r.metrics);
                    cv.unseen_categories += r.unseen;
                    for (&i, &prob) in folds[*f].iter().zip(&r.probabilities) {
                        cv.oof[i] = prob;
                    }
                }
            }
            grid_results.push(cv);
        }
        let best = argmax(grid_results.iter().map(|c| c.summary("roc_auc").mean));
        models.push(ModelResult {
            algorithm,
            grid: grid_results,
            best,
        });
    }
    let chosen = argmax(models.iter().map(|m| m.best().summary("roc_auc").mean));
    let artifact = build_artifact(data, opts, &models[chosen])?;
    Ok(Outcome {
        models,
        chosen,
        folds,
        artifact,
    })
}

/// Refits `model`'s best candidate on every row and builds the artifact with golden vectors.
///
/// # Errors
/// If the fit fails or the artifact does not load.
pub fn build_artifact(
    data: &Dataset,
    opts: &TrainOptions,
    model: &ModelResult,
) -> Result<Artifact, TrainError> {
    let best = model.best();
    let all: Vec<usize> = (0..data.len()).collect();
    let preprocessor = features::fit(&data.rows, &all);
    let x = features::encode(&preprocessor, &data.rows, &all);
    let estimator = fit(&best.params, &x, &data.target, opts.seed)?;
    let mut hyperparameters = best.params.to_map();
    hyperparameters.insert("seed".to_owned(), opts.seed.to_string());
    let golden = golden_inputs(&data.rows)
        .into_iter()
        .map(|input| GoldenVector {
            input,
            probability: features::score(&preprocessor, &estimator, &input).probability,
        })
        .collect();
    let artifact = Artifact {
        name: opts.name.clone(),
        algorithm: model.algorithm,
        hyperparameters,
        preprocessor,
        estimator,
        training_data_sha256: data.sha256.clone(),
        cv_metrics: best.metric_map(),
        golden,
    };
    // The artifact must prove itself exactly as the scorer will check it.
    Model::load(artifact.to_version(0, 0, crate::CODE_VERSION)?)?;
    Ok(artifact)
}

/// Rows spread over the data, plus an all-missing row and a row with unseen categories, so that
/// imputation and the unseen-category path are pinned too.
fn golden_inputs(rows: &[Row]) -> Vec<Row> {
    let n = GOLDEN_FROM_DATA.min(rows.len());
    let mut inputs: Vec<Row> = (0..n).map(|k| rows[k * rows.len() / n]).collect();
    inputs.push([None; heart_schemas::N_FIELDS]);
    let mut unseen = rows[0];
    unseen[2] = Some(9.0); // cp has codes 1..=4
    unseen[12] = Some(5.0); // thal has codes 3, 6, 7
    inputs.push(unseen);
    inputs
}

struct FoldResult {
    metrics: Metrics,
    probabilities: Vec<f64>,
    unseen: u32,
}

/// Fits preprocessing and the model on the other folds, scores fold `f`.
fn evaluate_fold(
    data: &Dataset,
    folds: &[Vec<usize>],
    f: usize,
    params: &Params,
    seed: u64,
) -> Result<FoldResult, TrainError> {
    let train = evaluate::train_indices(folds, f);
    let pre = features::fit(&data.rows, &train);
    let x = features::encode(&pre, &data.rows, &train);
    let y: Vec<bool> = train.iter().map(|&i| data.target[i]).collect();
    let est = fit(params, &x, &y, seed)?;
    let test = &folds[f];
    let scored: Vec<features::Scored> = test
        .iter()
        .map(|&i| features::score(&pre, &est, &data.rows[i]))
        .collect();
    let probabilities: Vec<f64> = scored.iter().map(|s| s.probability).collect();
    let y_test: Vec<bool> = test.iter().map(|&i| data.target[i]).collect();
    Ok(FoldResult {
        metrics: Metrics::new(&y_test, &probabilities),
        probabilities,
        unseen: scored.iter().map(|s| s.unseen).sum(),
    })
}

/// A per-fold seed, so that a fold's forest does not depend on which other folds ran.
fn fold_seed(seed: u64, fold: usize) -> u64 {
    seed ^ (fold as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn argmax(values: impl Iterator<Item = f64>) -> usize {
    values
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// Runs `f` over `jobs` on all cores; results come back in job order, so the outcome does not
/// depend on scheduling. A panicking job re-panics here.
fn parallel_map<J: Sync, R: Send>(
    jobs: &[J],
    f: impl Fn(&J) -> Result<R, TrainError> + Sync,
) -> Result<Vec<R>, TrainError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, Result<R, TrainError>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break mine };
                        mine.push((i, f(job)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rand::Rng;

    /// A tiny seeded problem: 3 features, label from a noisy linear rule, positives the minority.
    fn toy(n: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, 3), |_| rng.gen_range(-2.0..2.0));
        let y = (0..n)
            .map(|i| x[(i, 0)] - 0.5 * x[(i, 1)] + rng.gen_range(-0.7..0.7) > 0.6)
            .collect();
        (x, y)
    }

    #[test]
    fn logistic_conversion_reproduces_linfa_within_1e_9() {
        let (x, y) = toy(60, 7);
        let positives = y.iter().filter(|&&t| t).count();
        assert!(
            positives < 30,
            "positives must be the minority to test the sign flip"
        );
        let est = fit_logistic(&x, &y, 1.0).unwrap();
        let data = DatasetBase::new(x.clone(), Array1::from(y.clone()));
        let linfa = LogisticRegression::default()
            .alpha(1.0)
            .max_iterations(LOGISTIC_MAX_ITERATIONS)
            .gradient_tolerance(LOGISTIC_GRADIENT_TOLERANCE)
            .fit(&data)
            .unwrap();
        // linfa's probabilities are of its majority class, here `false`.
        assert!(!linfa.labels().pos.class);
        let p_false = linfa.predict_probabilities(&x);
        for (i, row) in x.outer_iter().enumerate() {
            let ours = est.predict(row.as_slice().unwrap());
            assert!(
                (ours - (1.0 - p_false[i])).abs() < 1e-9,
                "row {i}: {ours} vs {}",
                1.0 - p_false[i]
            );
        }
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

    #[test]
    fn forest_trees_map_subsampled_columns_back() {
        let (x, y) = toy(80, 3);
        let est = fit(
            &Params::RandomForest {
                n_trees: 20,
                max_depth: 3,
                max_features: 0.34,
                min_samples_leaf: 1,
            },
            &x,
            &y,
            1,
        )
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

    #[test]
    fn same_seed_gives_a_byte_identical_payload() {
        let path = std::env::var_os("HEART_TEST_DATA")
            .or_else(|| std::env::var_os("HEART_DATA"))
            .map_or_else(
                || {
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../../shared/data/processed.cleveland.data")
                },
                std::path::PathBuf::from,
            );
        let data = crate::data::load(&path).unwrap();
        let opts = TrainOptions {
            name: "heart-disease".into(),
            seed: 42,
            folds: 3,
            algorithms: vec![Algorithm::RandomForest],
        };
        let model = ModelResult {
            algorithm: Algorithm::RandomForest,
            grid: vec![CvResult {
                params: Params::RandomForest {
                    n_trees: 30,
                    max_depth: 4,
                    max_features: 0.5,
                    min_samples_leaf: 1,
                },
                folds: vec![],
                oof: vec![],
                unseen_categories: 0,
            }],
            best: 0,
        };
        let a = build_artifact(&data, &opts, &model)
            .unwrap()
            .to_payload()
            .unwrap();
        let b = build_artifact(&data, &opts, &model)
            .unwrap()
            .to_payload()
            .unwrap();
        assert_eq!(a, b);
        let other = TrainOptions { seed: 43, ..opts };
        let c = build_artifact(&data, &other, &model)
            .unwrap()
            .to_payload()
            .unwrap();
        assert_ne!(a, c, "the seed drives the forest");
    }

    #[test]
    fn params_record_c_and_the_matching_alpha() {
        let m = Params::LogisticRegression { c: 0.1 }.to_map();
        assert_eq!(m["C"], "0.1");
        assert_eq!(m["alpha"], "10");
        assert_eq!(Params::LogisticRegression { c: 0.1 }.label(), "C=0.1");
    }
}
