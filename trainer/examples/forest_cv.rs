//! Mean 5-fold CV ROC-AUC of our random forest and gradient boosting for a few parameter sets,
//! with the trainer's protocol: stratified seeded folds, preprocessing fitted on the training
//! folds only, every probability through heart-model's `Estimator::predict`.
//!
//! `cargo run --release -p heart-trainer --example forest_cv -- DATA_FILE [SEED]`

use std::path::PathBuf;

use heart_model::preprocess::MAX_WIDTH;
use heart_model::{Estimator, Preprocessor};
use heart_trainer::data::{self, Dataset};
use heart_trainer::evaluate::{MeanStd, roc_auc, stratified_folds, train_indices};
use heart_trainer::trees::{
    BoostingParams, ForestParams, MaxFeatures, TreeParams, fit_boosting, fit_forest,
};
use ndarray::Array2;

const FOLDS: usize = 5;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "../shared/data/processed.cleveland.data".to_owned()),
    );
    let seed: u64 = args.next().map_or(Ok(42), |s| s.parse())?;
    let data = data::load(&path)?;
    let folds = stratified_folds(&data.target, FOLDS, seed);
    let mut candidates: Vec<(String, Fit)> = Vec::new();
    for n_trees in [500] {
        for max_depth in [None, Some(4), Some(6)] {
            for min_samples_leaf in [5, 10] {
                for max_features in [MaxFeatures::Sqrt, MaxFeatures::Fraction(0.25)] {
                    let p = ForestParams {
                        n_trees,
                        tree: TreeParams {
                            max_depth,
                            min_samples_leaf,
                            max_features,
                        },
                    };
                    let label = format!(
                        "forest n_trees={n_trees} max_depth={} min_samples_leaf={min_samples_leaf} max_features={}",
                        max_depth.map_or("none".to_owned(), |d| d.to_string()),
                        max_features.label()
                    );
                    candidates.push((label, Box::new(move |x, y, s| fit_forest(x, y, &p, s))));
                }
            }
        }
    }
    for n_estimators in [300, 600] {
        for learning_rate in [0.02, 0.05] {
            for (max_depth, min_samples_leaf) in [(1, 1), (1, 5), (1, 10), (2, 1), (2, 10)] {
                for (subsample, max_features) in [(0.5, MaxFeatures::Sqrt), (0.8, MaxFeatures::All)]
                {
                    let p = BoostingParams {
                        n_estimators,
                        learning_rate,
                        subsample,
                        tree: TreeParams {
                            max_depth: Some(max_depth),
                            min_samples_leaf,
                            max_features,
                        },
                    };
                    let label = format!(
                        "boosting n_estimators={n_estimators} learning_rate={learning_rate} max_depth={max_depth} subsample={subsample} min_samples_leaf={min_samples_leaf} max_features={}",
                        max_features.label()
                    );
                    candidates.push((label, Box::new(move |x, y, s| fit_boosting(x, y, &p, s))));
                }
            }
        }
    }
    let results: Vec<(String, MeanStd)> = std::thread::scope(|s| {
        let chunks: Vec<_> = candidates.chunks(candidates.len().div_ceil(2)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let (data, folds) = (&data, &folds);
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(label, fit)| (label.clone(), cv(data, folds, seed, fit)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for (label, auc) in &results {
        println!("{:.4} ± {:.4}  {label}", auc.mean, auc.std);
    }
    for kind in ["forest", "boosting"] {
        if let Some((label, auc)) = results
            .iter()
            .filter(|(label, _)| label.starts_with(kind))
            .max_by(|a, b| a.1.mean.total_cmp(&b.1.mean))
        {
            println!("best {kind}: {:.4}  {label}", auc.mean);
        }
    }
    Ok(())
}

type Fit = Box<
    dyn Fn(
            ndarray::ArrayView2<'_, f64>,
            &[bool],
            u64,
        ) -> Result<Estimator, heart_trainer::trees::FitError>
        + Send
        + Sync,
>;

/// Mean and std of the per-fold ROC-AUC; the fold seed is the trainer's.
fn cv(data: &Dataset, folds: &[Vec<usize>], seed: u64, fit: &Fit) -> MeanStd {
    let aucs: Vec<f64> = (0..folds.len())
        .map(|f| {
            let train = train_indices(folds, f);
            let rows: Vec<_> = train.iter().map(|&i| data.rows[i]).collect();
            let pre = Preprocessor::fit(&rows);
            let x = encode(&pre, &rows);
            let y: Vec<bool> = train.iter().map(|&i| data.target[i]).collect();
            let fold_seed = seed ^ (f as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let Ok(est) = fit(x.view(), &y, fold_seed) else {
                return f64::NAN;
            };
            let test_rows: Vec<_> = folds[f].iter().map(|&i| data.rows[i]).collect();
            let p: Vec<f64> = encode(&pre, &test_rows)
                .rows()
                .into_iter()
                .map(|r| est.predict(&r.to_vec()))
                .collect();
            let y_test: Vec<bool> = folds[f].iter().map(|&i| data.target[i]).collect();
            roc_auc(&y_test, &p)
        })
        .collect();
    MeanStd::of(&aucs)
}

fn encode(pre: &Preprocessor, rows: &[data::Row]) -> Array2<f64> {
    let mut x = Array2::zeros((rows.len(), pre.width()));
    let mut buf = [0.0; MAX_WIDTH];
    for (r, row) in rows.iter().enumerate() {
        let t = pre.transform(row, &mut buf);
        for (c, v) in buf[..t.width].iter().enumerate() {
            x[(r, c)] = *v;
        }
    }
    x
}
