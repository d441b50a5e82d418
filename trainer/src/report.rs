//! The training report: `report.json` (machine-readable), `report.md` (for people), the CV table
//! printed at the end, and the evaluation plots.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use crate::calibration::Calibration;
use crate::data::Dataset;
use crate::error::{PlotError, WriteError};
use crate::evaluate::{self, Confusion, METRIC_NAMES};
use crate::plots;
use crate::train::{CvResult, ModelResult, Outcome};
use crate::write_file;

/// The bar the chosen model's mean CV ROC-AUC must reach on Cleveland: above scikit-learn's
/// best with the same protocol (0.919, its logistic regression).
pub const QUALITY_BAR: f64 = 0.92;

/// Published results with the same protocol (stratified, shuffled, seeded 5-fold CV).
pub const REFERENCES: [(&str, f64); 3] = [
    ("scikit-learn logistic regression (C = 0.1)", 0.919),
    ("scikit-learn random forest (depth 5, 200 trees)", 0.917),
    ("the Python project this replaces (random forest)", 0.918),
];

/// Serialises `value` as pretty JSON into `path`.
///
/// # Errors
/// [`WriteError`] if serialisation or writing fails.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), WriteError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| WriteError {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?;
    write_file(path, &bytes)
}

fn cv_json(cv: &CvResult) -> Value {
    let mut m = serde_json::Map::new();
    for name in METRIC_NAMES {
        let s = cv.summary(name);
        m.insert(
            name.to_owned(),
            json!({
                "mean": s.mean,
                "std": s.std,
                "folds": cv.folds.iter().map(|f| f.get(name)).collect::<Vec<_>>(),
            }),
        );
    }
    m.insert(
        "confusion_matrix".to_owned(),
        json!({
            "total": total_confusion(cv),
            "folds": cv.folds.iter().map(|f| f.confusion).collect::<Vec<_>>(),
        }),
    );
    m.insert("unseen_categories".to_owned(), json!(cv.unseen_categories));
    Value::Object(m)
}

fn calibration_json(c: &Calibration) -> Value {
    let (raw, platt) = (c.raw(), c.calibrated());
    json!({
        "brier": {"mean": raw.mean, "std": raw.std, "folds": c.raw_brier},
        "platt_brier": {"mean": platt.mean, "std": platt.std, "folds": c.platt_brier},
        "platt_improvement": raw.mean - platt.mean,
        "platt_maps": c.platt,
        "platt_shipped": c.shipped.is_some(),
        "platt_shipped_map": c.shipped,
        "reliability": c.reliability,
        "platt_reliability": c.platt_reliability,
    })
}

fn total_confusion(cv: &CvResult) -> Confusion {
    cv.folds
        .iter()
        .fold(Confusion::default(), |acc, f| acc + f.confusion)
}

/// Why the chosen model was shipped, e.g. `the CV winner` or `by --algorithm; CV winner
/// logistic_regression`.
pub fn selection(outcome: &Outcome) -> String {
    if outcome.chosen == outcome.winner {
        "the CV winner".to_owned()
    } else {
        format!(
            "by --algorithm; CV winner {}",
            outcome.models[outcome.winner].algorithm.code()
        )
    }
}

/// Builds `report.json`.
pub fn to_json(data: &Dataset, outcome: &Outcome, seed: u64, payload_sha256: &str) -> Value {
    let models: serde_json::Map<String, Value> = outcome
        .models
        .iter()
        .zip(&outcome.calibration)
        .map(|(m, c)| {
            (
                m.algorithm.code().to_owned(),
                json!({
                    "best_params": m.best().params.to_map(),
                    "cv": cv_json(m.best()),
                    "calibration": calibration_json(c),
                    "grid": m.grid.iter().map(|c| json!({
                        "params": c.params.to_map(),
                        "roc_auc": {"mean": c.summary("roc_auc").mean, "std": c.summary("roc_auc").std},
                    })).collect::<Vec<_>>(),
                }),
            )
        })
        .collect();
    let chosen = &outcome.models[outcome.chosen];
    json!({
        "data": {
            "source": data.source,
            "sha256": data.sha256,
            "rows": data.len(),
            "positives": data.positives(),
            "negatives": data.len() - data.positives(),
            "placeholders_as_missing": data.placeholders_as_missing,
        },
        "protocol": {
            "cv": "stratified, shuffled, seeded k-fold",
            "folds": outcome.folds.len(),
            "seed": seed,
            "std": "population (divide by n folds)",
            "threshold": evaluate::THRESHOLD,
            "selection": "highest mean ROC-AUC over each grid, then over models (or the kind asked for with --algorithm)",
            "calibration": "Platt scaling on the logit, fitted per test fold on an inner stratified CV of its training folds; shipped (fitted on every row's out-of-fold probability) when it lowers the mean Brier score",
            "preprocessing": "fitted on the training folds only",
        },
        "models": models,
        "best": {
            "model": chosen.algorithm.code(),
            "selection": selection(outcome),
            "cv_winner": outcome.models[outcome.winner].algorithm.code(),
            "params": chosen.best().params.to_map(),
            "cv": cv_json(chosen.best()),
            "calibration": calibration_json(&outcome.calibration[outcome.chosen]),
        },
        "missing_fields": {
            "model": chosen.algorithm.code(),
            "protocol": "the CV models, fitted on complete training folds, score their test folds with the fields set to missing (imputed by each fold's preprocessor)",
            "masks": outcome.missing.iter().map(|r| json!({
                "name": r.name,
                "fields": r.fields,
                "roc_auc": {"mean": r.auc().mean, "std": r.auc().std, "folds": r.roc_auc},
                "brier": {"mean": r.brier_summary().mean, "std": r.brier_summary().std, "folds": r.brier},
            })).collect::<Vec<_>>(),
        },
        "quality_bar": {"roc_auc_mean_at_least": QUALITY_BAR, "met": chosen.best().summary("roc_auc").mean >= QUALITY_BAR},
        "reference_roc_auc": REFERENCES.iter().map(|(k, v)| json!({"what": k, "roc_auc": v})).collect::<Vec<_>>(),
        "artifact": {
            "file": "model.avro",
            "version": 0,
            "payload_sha256": payload_sha256,
            "candidates": outcome.candidates.iter().map(|a| json!({
                "model": a.algorithm.code(),
                "file": format!("candidates/{}.avro", a.algorithm.code()),
                "payload_sha256": a.to_payload().map(|p| heart_model::sha256_hex(&p)).unwrap_or_default(),
            })).collect::<Vec<_>>(),
        },
    })
}

/// The CV table: one row per model, mean ± population std of each metric, the Brier score
/// Platt scaling inside CV gives, and whether the artifact carries that calibration.
pub fn cv_table(outcome: &Outcome) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| model | best parameters | ROC-AUC | accuracy | precision | recall | F1 | Brier | Brier, Platt-scaled | calibration shipped |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|");
    for (k, (m, c)) in outcome.models.iter().zip(&outcome.calibration).enumerate() {
        let best = m.best();
        let cell = |name: &str| {
            let s = best.summary(name);
            format!("{:.3} ± {:.3}", s.mean, s.std)
        };
        let platt = c.calibrated();
        let _ = writeln!(
            t,
            "| {}{} | {} | {} | {} | {} | {} | {} | {} | {:.3} ± {:.3} | {} |",
            m.algorithm.code(),
            match (k == outcome.chosen, k == outcome.winner) {
                (true, _) => " (chosen)",
                (false, true) => " (CV winner)",
                (false, false) => "",
            },
            best.params.label(),
            cell("roc_auc"),
            cell("accuracy"),
            cell("precision"),
            cell("recall"),
            cell("f1"),
            cell("brier"),
            platt.mean,
            platt.std,
            c.shipped.map_or_else(
                || "no".to_owned(),
                |m| format!("Platt (a = {:.3}, b = {:.3})", m.a, m.b)
            ),
        );
    }
    t
}

/// The masked-field table of the chosen model: mean ± std CV ROC-AUC and Brier score, and the
/// change in ROC-AUC from the unmasked baseline (the first row).
pub fn missing_table(outcome: &Outcome) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| missing in the test folds | ROC-AUC | Δ ROC-AUC | Brier |\n|---|---|---:|---|"
    );
    let base = outcome.missing.first().map_or(f64::NAN, |r| r.auc().mean);
    for r in &outcome.missing {
        let (auc, brier) = (r.auc(), r.brier_summary());
        // Rounds to zero without a sign: "+0.000", never "-0.000".
        let delta = if (auc.mean - base).abs() < 5e-4 {
            0.0
        } else {
            auc.mean - base
        };
        let _ = writeln!(
            t,
            "| {} | {:.3} ± {:.3} | {:+.3} | {:.3} ± {:.3} |",
            r.name, auc.mean, auc.std, delta, brier.mean, brier.std
        );
    }
    t
}

/// Builds `report.md`.
pub fn markdown(data: &Dataset, outcome: &Outcome, seed: u64, elapsed_s: f64) -> String {
    let chosen = &outcome.models[outcome.chosen];
    let auc = chosen.best().summary("roc_auc").mean;
    let mut md = String::new();
    let _ = writeln!(md, "# Training report\n");
    let _ = writeln!(
        md,
        "- data: `{}` — {} rows, {} with disease (num > 0); sha256 `{}`",
        data.source,
        data.len(),
        data.positives(),
        data.sha256
    );
    let _ = writeln!(
        md,
        "- protocol: stratified, shuffled {}-fold cross-validation, seed {seed}; imputation, scaling and one-hot encoding fitted on the training folds only",
        outcome.folds.len()
    );
    let _ = writeln!(
        md,
        "- values are mean ± **population** standard deviation over the folds; threshold metrics at probability ≥ {}",
        evaluate::THRESHOLD
    );
    let _ = writeln!(md, "- wall time: {elapsed_s:.1} s\n");
    let _ = writeln!(md, "## Cross-validation (best parameters per model)\n");
    md.push_str(&cv_table(outcome));
    let _ = writeln!(
        md,
        "\nChosen: **{}** ({}; {}), mean ROC-AUC {auc:.4}. Quality bar ≥ {QUALITY_BAR}: **{}**. \
         Every model's best parameters, refitted on all rows, are in `candidates/<model>.avro`.\n",
        chosen.algorithm.code(),
        chosen.best().params.label(),
        selection(outcome),
        if auc >= QUALITY_BAR { "met" } else { "NOT met" }
    );
    let _ = writeln!(md, "## Calibration\n");
    let c = &outcome.calibration[outcome.chosen];
    let (raw, platt) = (c.raw(), c.calibrated());
    let _ = writeln!(
        md,
        "Brier score of **{}**: {:.4} ± {:.4} raw, {:.4} ± {:.4} with Platt scaling fitted inside CV \
         (per test fold, on an inner stratified CV of its training folds). Platt scaling {} the Brier score by {:.4}, \
         so {}. `reliability.png` shows the out-of-fold reliability of every model (10 equal-width bins).\n",
        chosen.algorithm.code(),
        raw.mean,
        raw.std,
        platt.mean,
        platt.std,
        if platt.mean < raw.mean {
            "lowers"
        } else {
            "does not lower"
        },
        (raw.mean - platt.mean).abs(),
        c.shipped.map_or_else(
            || "the artifact is uncalibrated".to_owned(),
            |m| format!(
                "the artifact carries the map fitted on every row's out-of-fold probability (a = {:.4}, b = {:.4})",
                m.a, m.b
            )
        ),
    );
    let _ = writeln!(
        md,
        "| bin | rows | mean predicted | observed |\n|---|---:|---:|---:|"
    );
    for b in &c.reliability {
        let _ = writeln!(
            md,
            "| {:.1}–{:.1} | {} | {:.3} | {:.3} |",
            b.lo, b.hi, b.count, b.mean_predicted, b.observed
        );
    }
    let _ = writeln!(md, "\n## Missing fields ({})\n", chosen.algorithm.code());
    let _ = writeln!(
        md,
        "The cross-validated models (fitted on complete training folds) score their test folds with the field(s) \
         set to missing, which each fold's preprocessor imputes (median or most frequent value of its training folds). \
         Training is not changed. Plot: `missing_fields.png`.\n"
    );
    md.push_str(&missing_table(outcome));
    let _ = writeln!(md);
    let _ = writeln!(md, "## Comparison with reference implementations\n");
    let _ = writeln!(md, "| implementation | mean CV ROC-AUC |\n|---|---:|");
    for (what, v) in REFERENCES {
        let _ = writeln!(md, "| {what} | {v:.3} |");
    }
    for m in &outcome.models {
        let _ = writeln!(
            md,
            "| this trainer: {} ({}) | {:.3} |",
            m.algorithm.code(),
            m.best().params.label(),
            m.best().summary("roc_auc").mean
        );
    }
    let _ = writeln!(
        md,
        "\nFold assignment differs from scikit-learn's StratifiedKFold even with the same seed, so differences of ±0.005 are within fold noise. \
         The trees are our own CART learner (`trees/`); the random forest draws columns per split as scikit-learn does."
    );
    for m in &outcome.models {
        let _ = writeln!(md, "\n## {} — grid\n", m.algorithm.code());
        let _ = writeln!(md, "| parameters | ROC-AUC |\n|---|---|");
        for c in &m.grid {
            let s = c.summary("roc_auc");
            let _ = writeln!(
                md,
                "| {} | {:.3} ± {:.3} |",
                c.params.label(),
                s.mean,
                s.std
            );
        }
        let best = m.best();
        let _ = writeln!(md, "\nPer fold (best parameters):\n");
        let _ = writeln!(
            md,
            "| fold | ROC-AUC | accuracy | precision | recall | F1 | Brier | tn | fp | fn | tp |"
        );
        let _ = writeln!(
            md,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (i, f) in best.folds.iter().enumerate() {
            let c = f.confusion;
            let _ = writeln!(
                md,
                "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} |",
                i + 1,
                f.roc_auc,
                f.accuracy,
                f.precision,
                f.recall,
                f.f1,
                f.brier,
                c.tn,
                c.fp,
                c.fn_,
                c.tp
            );
        }
        let _ = writeln!(
            md,
            "\nTest rows with a category unseen in their training folds: {} (encoded as all zeros).",
            best.unseen_categories
        );
    }
    let _ = writeln!(
        md,
        "\n## Plots\n\n- `roc_curves.png`: out-of-fold ROC of each model's best parameters\n- `roc_folds.png`: per-fold ROC of the chosen model\n- `confusion_<model>.png`: confusion matrix summed over the test folds\n- `reliability.png`: reliability diagram of each model's out-of-fold probabilities\n- `missing_fields.png`: the chosen model's CV ROC-AUC with each field (group) missing"
    );
    md
}

/// Draws `roc_curves.png`, `roc_folds.png`, one `confusion_<model>.png` per model,
/// `reliability.png` and `missing_fields.png`.
///
/// # Errors
/// [`PlotError`] if drawing fails.
pub fn plot(data: &Dataset, outcome: &Outcome, out: &Path) -> Result<(), PlotError> {
    plots::init_font()?;
    let curves: Vec<(String, Vec<(f64, f64)>)> = outcome
        .models
        .iter()
        .map(|m| {
            let s = m.best().summary("roc_auc");
            (
                format!("{}: AUC {:.3} ± {:.3}", m.algorithm.code(), s.mean, s.std),
                evaluate::roc_curve(&data.target, &m.best().oof),
            )
        })
        .collect();
    plots::roc_curves(
        &out.join("roc_curves.png"),
        "ROC, out-of-fold predictions (best parameters)",
        &curves,
    )?;
    let chosen: &ModelResult = &outcome.models[outcome.chosen];
    let per_fold: Vec<(String, Vec<(f64, f64)>)> = outcome
        .folds
        .iter()
        .zip(&chosen.best().folds)
        .enumerate()
        .map(|(i, (idx, m))| {
            let y: Vec<bool> = idx.iter().map(|&r| data.target[r]).collect();
            let p: Vec<f64> = idx.iter().map(|&r| chosen.best().oof[r]).collect();
            (
                format!("fold {}: AUC {:.3}", i + 1, m.roc_auc),
                evaluate::roc_curve(&y, &p),
            )
        })
        .collect();
    plots::roc_curves(
        &out.join("roc_folds.png"),
        &format!("ROC per test fold: {}", chosen.algorithm.code()),
        &per_fold,
    )?;
    for m in &outcome.models {
        plots::confusion_matrix(
            &out.join(format!("confusion_{}.png", m.algorithm.code())),
            &format!(
                "{} ({}), summed over {} test folds",
                m.algorithm.code(),
                m.best().params.label(),
                outcome.folds.len()
            ),
            &total_confusion(m.best()),
        )?;
    }
    let reliability: Vec<(String, Vec<(f64, f64)>)> = outcome
        .models
        .iter()
        .zip(&outcome.calibration)
        .map(|(m, c)| {
            let s = c.raw();
            (
                format!("{}: Brier {:.3} ± {:.3}", m.algorithm.code(), s.mean, s.std),
                c.reliability
                    .iter()
                    .filter(|b| b.count > 0)
                    .map(|b| (b.mean_predicted, b.observed))
                    .collect(),
            )
        })
        .collect();
    plots::reliability(
        &out.join("reliability.png"),
        "Reliability, out-of-fold predictions (best parameters)",
        &reliability,
    )?;
    let bars: Vec<(String, f64, f64)> = outcome
        .missing
        .iter()
        .map(|r| (r.name.clone(), r.auc().mean, r.auc().std))
        .collect();
    plots::masked_auc(
        &out.join("missing_fields.png"),
        &format!(
            "{}: CV ROC-AUC with fields missing in the test folds",
            chosen.algorithm.code()
        ),
        &bars,
    )?;
    Ok(())
}
