//! How a model degrades when fields are missing: the cross-validated models are kept as they
//! were fitted (on complete training folds), and only their test folds are scored again with
//! fields set to missing, which each fold's preprocessor imputes (median or mode of its own
//! training folds), as the scorer does for a record with the field absent.

use heart_model::Artifact;
use heart_schemas::patient::FIELDS;
use serde::Serialize;

use crate::cv;
use crate::data::{Dataset, Row};
use crate::evaluate::{self, MeanStd};

/// The masks evaluated: nothing, each of the 13 fields, and two groups that are often missing
/// together in the other UCI files (the fluoroscopy/thallium results, the exercise test).
pub const MASKS: [(&str, &[usize]); 16] = [
    ("none", &[]),
    ("age", &[0]),
    ("sex", &[1]),
    ("cp", &[2]),
    ("trestbps", &[3]),
    ("chol", &[4]),
    ("fbs", &[5]),
    ("restecg", &[6]),
    ("thalach", &[7]),
    ("exang", &[8]),
    ("oldpeak", &[9]),
    ("slope", &[10]),
    ("ca", &[11]),
    ("thal", &[12]),
    ("slope+ca+thal", &[10, 11, 12]),
    ("exercise test (thalach+exang+oldpeak)", &[7, 8, 9]),
];

/// One mask's cross-validated metrics.
#[derive(Debug, Clone, Serialize)]
pub struct MaskResult {
    /// The mask's name.
    pub name: String,
    /// The fields set to missing.
    pub fields: Vec<&'static str>,
    /// ROC-AUC per test fold.
    pub roc_auc: Vec<f64>,
    /// Brier score per test fold.
    pub brier: Vec<f64>,
}

impl MaskResult {
    /// Mean and population std of the ROC-AUC over folds.
    pub fn auc(&self) -> MeanStd {
        MeanStd::of(&self.roc_auc)
    }

    /// Mean and population std of the Brier score over folds.
    pub fn brier_summary(&self) -> MeanStd {
        MeanStd::of(&self.brier)
    }
}

/// `row` with `fields` set to missing.
pub(crate) fn masked(row: &Row, fields: &[usize]) -> Row {
    let mut r = *row;
    for &f in fields {
        r[f] = None;
    }
    r
}

/// Scores each test fold with its own model (`fold_models[f]`, fitted on the other folds) after
/// masking `fields`, for each of `masks`. No model is fitted here, so masking cannot change
/// training.
pub(crate) fn masked_cv(
    data: &Dataset,
    folds: &[Vec<usize>],
    fold_models: &[Artifact],
    masks: &[(&str, &[usize])],
) -> Vec<MaskResult> {
    masks
        .iter()
        .map(|&(name, fields)| {
            let (mut roc_auc, mut brier) = (Vec::new(), Vec::new());
            for (test, model) in folds.iter().zip(fold_models) {
                let rows: Vec<Row> = test
                    .iter()
                    .map(|&i| masked(&data.rows[i], fields))
                    .collect();
                let all: Vec<usize> = (0..rows.len()).collect();
                let (p, _) = cv::score(model, &rows, &all);
                let y: Vec<bool> = test.iter().map(|&i| data.target[i]).collect();
                roc_auc.push(evaluate::roc_auc(&y, &p));
                brier.push(evaluate::brier(&y, &p));
            }
            MaskResult {
                name: name.to_owned(),
                fields: fields.iter().map(|&f| FIELDS[f].name).collect(),
                roc_auc,
                brier,
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::algorithms::{LogisticRegressionParams, Params};
    use crate::data::tests::cleveland;
    use indicatif::ProgressBar;

    #[test]
    fn masks_name_their_fields() {
        for (name, fields) in MASKS.iter().skip(1).take(13) {
            assert_eq!(fields.len(), 1);
            assert_eq!(FIELDS[fields[0]].name, *name);
        }
        assert_eq!(
            MASKS[15]
                .1
                .iter()
                .map(|&f| FIELDS[f].name)
                .collect::<Vec<_>>(),
            ["thalach", "exang", "oldpeak"]
        );
        let row: Row = [Some(1.0); 13];
        let m = masked(&row, &[0, 12]);
        assert_eq!((m[0], m[1], m[12]), (None, Some(1.0), None));
    }

    #[test]
    fn masking_leaves_training_untouched_and_everything_masked_is_chance() {
        let data = cleveland();
        let folds = evaluate::stratified_folds(&data.target, 3, 42);
        let params = Params::new(LogisticRegressionParams { c: 0.1 });
        let cv = cv::cross_validate(
            &data,
            &folds,
            std::slice::from_ref(&params),
            42,
            &ProgressBar::hidden(),
        )
        .unwrap()
        .remove(0);
        let models = cv::fit_folds(&data, &folds, &params, 42).unwrap();
        let all: Vec<usize> = (0..13).collect();
        let masks: [(&str, &[usize]); 3] = [("none", &[]), ("chol", &[4]), ("all", &all)];
        let results = masked_cv(&data, &folds, &models, &masks);
        // The unmasked row reproduces cross-validation exactly: same models, same test rows.
        let cv_auc: Vec<f64> = cv.folds.iter().map(|m| m.roc_auc).collect();
        assert_eq!(results[0].roc_auc, cv_auc);
        // The models were not refitted or changed by scoring masked rows.
        assert_eq!(models, cv::fit_folds(&data, &folds, &params, 42).unwrap());
        // Every field imputed: one probability for every row, so every pair is a tie.
        assert!(
            results[2].roc_auc.iter().all(|&a| a == 0.5),
            "{:?}",
            results[2]
        );
        assert_ne!(
            results[1].roc_auc, cv_auc,
            "masking chol changes the scores"
        );
    }
}
