//! Features: a thin layer over heart-model's [`Preprocessor`], the one implementation of
//! preprocessing that trainer and scorer share. Fitting only ever sees the rows it is given, so
//! fitting on a training fold cannot leak the test fold.

use heart_model::preprocess::MAX_WIDTH;
use heart_model::{Estimator, Preprocessor};
use ndarray::Array2;

use crate::data::Row;

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

/// A probability computed exactly as a loader computes it: preprocess, then predict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scored {
    /// Probability of heart disease.
    pub probability: f64,
    /// One-hot fields whose category the preprocessing never saw.
    pub unseen: u32,
}

/// Scores one row with a fitted preprocessor and estimator.
pub(crate) fn score(pre: &Preprocessor, est: &Estimator, row: &Row) -> Scored {
    let mut buf = [0.0; MAX_WIDTH];
    let t = pre.transform(row, &mut buf);
    Scored {
        probability: est.predict(&buf[..t.width]),
        unseen: t.unseen,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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
        let s = score(
            &a,
            &Estimator::Logistic {
                weights: vec![0.0; a.width()],
                intercept: 0.0,
            },
            &rows[2],
        );
        assert_eq!(s.unseen, 1, "cp = 4 was not in the training rows");
        assert_eq!(s.probability, 0.5);
    }
}
