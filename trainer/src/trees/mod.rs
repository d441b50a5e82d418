//! Our own tree learners, fitted straight into heart-model estimators: a CART learner with
//! per-split feature sampling ([`cart`]), a random forest on it ([`forest`]) and log-loss gradient
//! boosting on it ([`boosting`]).
//!
//! They take the dense encoded matrix heart-model's `Preprocessor` produces (one row per sample)
//! and are deterministic from their seed: the same data, parameters and seed give the same trees,
//! bit for bit.

pub mod boosting;
pub mod cart;
pub mod forest;

pub use boosting::{BoostingParams, fit_boosting};
pub use cart::{MaxFeatures, TreeParams, fit_tree};
pub use forest::{ForestParams, fit_forest};

use ndarray::ArrayView2;
use thiserror::Error;

/// Why a tree learner refused its input.
#[derive(Debug, Error, PartialEq)]
pub enum FitError {
    /// There is nothing to learn from.
    #[error("no training rows")]
    NoRows,
    /// Features and targets disagree on the number of rows.
    #[error("{rows} feature rows but {targets} targets")]
    LengthMismatch {
        /// Rows of the feature matrix.
        rows: usize,
        /// Targets given.
        targets: usize,
    },
    /// A tree node stores its feature as `u16`.
    #[error("{0} feature columns, at most {max} supported", max = u16::MAX)]
    TooManyColumns(usize),
    /// The matrix has no columns.
    #[error("the feature matrix has no columns")]
    NoColumns,
    /// A feature value is NaN or infinite (encoded features never are).
    #[error("feature value at row {row}, column {column} is not finite")]
    NonFinite {
        /// Row.
        row: usize,
        /// Column.
        column: usize,
    },
    /// A hyperparameter is outside its range.
    #[error("{name} = {value} is invalid: {allowed}")]
    InvalidParam {
        /// Parameter name.
        name: &'static str,
        /// The value given, as text.
        value: String,
        /// The allowed range.
        allowed: &'static str,
    },
    /// Boosting starts from the training log-odds, which are infinite with one class.
    #[error("all {0} training targets are one class; boosting needs both")]
    OneClass(usize),
}

/// The training matrix, checked, held both ways: rows for prediction, columns for split search.
#[derive(Debug)]
pub(crate) struct Matrix {
    pub n_rows: usize,
    pub n_cols: usize,
    /// Row-major.
    pub rows: Vec<f64>,
    /// Column-major.
    pub cols: Vec<f64>,
}

impl Matrix {
    /// Checks `x` against `n_targets` and copies it.
    pub fn new(x: ArrayView2<'_, f64>, n_targets: usize) -> Result<Self, FitError> {
        let (n_rows, n_cols) = x.dim();
        if n_rows == 0 {
            return Err(FitError::NoRows);
        }
        if n_rows != n_targets {
            return Err(FitError::LengthMismatch {
                rows: n_rows,
                targets: n_targets,
            });
        }
        if n_cols == 0 {
            return Err(FitError::NoColumns);
        }
        if n_cols > usize::from(u16::MAX) {
            return Err(FitError::TooManyColumns(n_cols));
        }
        if let Some(((row, column), _)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(FitError::NonFinite { row, column });
        }
        Ok(Self {
            n_rows,
            n_cols,
            rows: x.iter().copied().collect(),
            cols: x.t().iter().copied().collect(),
        })
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.rows[i * self.n_cols..(i + 1) * self.n_cols]
    }

    /// Column `j`.
    pub fn col(&self, j: usize) -> &[f64] {
        &self.cols[j * self.n_rows..(j + 1) * self.n_rows]
    }
}

/// A `FitError::InvalidParam` for `name`.
pub(crate) fn invalid(name: &'static str, value: impl ToString, allowed: &'static str) -> FitError {
    FitError::InvalidParam {
        name,
        value: value.to_string(),
        allowed,
    }
}
