//! Features: a thin layer over heart-model's [`Preprocessor`], the one implementation of
//! preprocessing that trainer and scorer share. Fitting only ever sees the rows it is given, so
//! fitting on a training fold cannot leak the test fold. A fitted model is an [`Artifact`], and
//! every probability the trainer evaluates is [`Artifact::apply`], the code the scorer runs.

use std::collections::BTreeMap;

use heart_model::preprocess::MAX_WIDTH;
use heart_model::{Artifact, Preprocessor};
use ndarray::Array2;

use crate::algorithms::Params;
use crate::data::{Dataset, Row};
use crate::error::TrainError;

/// Fits preprocessing on the rows at `idx`.
pub(crate) fn fit(rows: &[Row], idx: &[usize]) -> Preprocessor {
    let train: Vec<Row> = idx.iter().map(|&i| rows[i]).collect();
    Preprocessor::fit(&train)
}

/// Encodes the rows at `idx` into a matrix, one row per sample.
pub(crate) fn encode(pre: &Preprocessor, rows: &[Row], idx: &[usize]) -> Array2<f64> {
    let width = pre.width();
    let mut x = Array2::zeros((idx.len(), width));
    let mut buf = [0.0; MAX_WIDTH];
    for (r, &i) in idx.iter().enumerate() {
        pre.transform(&rows[i], &mut buf);
        for (c, v) in buf[..width].iter().enumerate() {
            x[(r, c)] = *v;
        }
    }
    x
}

/// Fits preprocessing and `params` on the rows at `idx` of `data` only. The result is an
/// artifact without provenance, CV metrics or golden vectors: enough to score with
/// [`Artifact::apply`].
///
/// # Errors
/// The learner's error, if fitting fails.
pub(crate) fn fit_model(
    data: &Dataset,
    idx: &[usize],
    params: &Params,
    seed: u64,
) -> Result<Artifact, TrainError> {
    let preprocessor = fit(&data.rows, idx);
    let x = encode(&preprocessor, &data.rows, idx);
    let y: Vec<bool> = idx.iter().map(|&i| data.target[i]).collect();
    let estimator = params.fit(&x, &y, seed)?;
    Ok(Artifact {
        name: String::new(),
        algorithm: params.algorithm(),
        hyperparameters: params.to_map(),
        preprocessor,
        estimator,
        training_data_sha256: String::new(),
        cv_metrics: BTreeMap::new(),
        golden: Vec::new(),
        profile: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use heart_model::Estimator;

    fn row(age: f64, cp: f64) -> Row {
        [
            Some(age),
            Some(1.0),
            Some(cp),
            Some(120.0),
            Some(200.0),
            Some(0.0),
            Some(0.0),
            Some(150.0),
            Some(0.0),
            Some(1.0),
            Some(1.0),
            Some(0.0),
            Some(3.0),
        ]
    }

    #[test]
    fn fitting_on_a_subset_ignores_the_other_rows() {
        let rows = [row(40.0, 1.0), row(60.0, 2.0), row(1000.0, 4.0)];
        let a = fit(&rows, &[0, 1]);
        let b = fit(&rows[..2], &[0, 1]);
        assert_eq!(a, b, "row 2 must not influence the fit");
        let x = encode(&a, &rows, &[0, 1, 2]);
        assert_eq!(x.nrows(), 3);
        assert_eq!(x[(0, 0)], -1.0, "age 40 with mean 50, std 10");
        let model = Artifact {
            name: String::new(),
            algorithm: heart_model::Algorithm::LogisticRegression,
            hyperparameters: BTreeMap::new(),
            estimator: Estimator::Logistic {
                weights: vec![0.0; a.width()],
                intercept: 0.0,
            },
            preprocessor: a,
            training_data_sha256: String::new(),
            cv_metrics: BTreeMap::new(),
            golden: Vec::new(),
            profile: None,
        };
        let s = model.apply(&rows[2]);
        assert_eq!(
            s.unseen_categories, 1,
            "cp = 4 was not in the training rows"
        );
        assert_eq!(s.probability, 0.5);
    }
}
