//! Preprocessing fitted on training rows: imputation, standardisation, one-hot encoding.

use heart_schemas::patient::{Encoding, FIELDS, FieldKind, N_FIELDS};
use serde::{Deserialize, Serialize};

/// Widest feature vector a [`Preprocessor`] may produce; checked when an artifact is loaded so
/// that scoring can use a stack buffer.
pub const MAX_WIDTH: usize = 64;

/// One input field's transformation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ColumnStep {
    /// Median imputation, then `(x - mean) / std`.
    Scaled {
        /// Index into [`FIELDS`].
        field: usize,
        /// Fill value for missing inputs.
        median: f64,
        /// Mean of the imputed training column.
        mean: f64,
        /// Standard deviation of the imputed training column; 1 when the column is constant.
        std: f64,
    },
    /// Most-frequent imputation, then one indicator per category seen in training. A category not
    /// seen in training encodes as all zeros and is counted in [`Transformed::unseen`].
    OneHot {
        /// Index into [`FIELDS`].
        field: usize,
        /// Fill value for missing inputs.
        mode: i32,
        /// Categories seen in training, ascending.
        categories: Vec<i32>,
    },
}

impl ColumnStep {
    /// Output columns this step writes.
    pub fn width(&self) -> usize {
        match self {
            Self::Scaled { .. } => 1,
            Self::OneHot { categories, .. } => categories.len(),
        }
    }

    /// The value a missing input is imputed with: the training median or mode.
    pub fn fill_value(&self) -> f64 {
        match self {
            Self::Scaled { median, .. } => *median,
            Self::OneHot { mode, .. } => f64::from(*mode),
        }
    }

    /// Index into [`FIELDS`] of the field this step reads.
    pub fn field(&self) -> usize {
        match self {
            Self::Scaled { field, .. } | Self::OneHot { field, .. } => *field,
        }
    }
}

/// Fitted preprocessing, one step per input field in [`FIELDS`] order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    /// The steps, in [`FIELDS`] order.
    pub steps: Vec<ColumnStep>,
}

/// Result of [`Preprocessor::transform`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transformed {
    /// Columns written.
    pub width: usize,
    /// How many one-hot fields held a category unseen in training.
    pub unseen: u32,
}

impl Preprocessor {
    /// Fits imputation, scaling and category sets on training rows (in [`FIELDS`] order, `None`
    /// for missing). Only the rows given are looked at, so fitting on a training fold cannot leak
    /// the test fold.
    ///
    /// # Panics
    /// Never: a column with no observed value falls back to 0 (scaled) or the field's first
    /// allowed code (one-hot).
    pub fn fit(rows: &[[Option<f64>; N_FIELDS]]) -> Self {
        let steps = FIELDS
            .iter()
            .enumerate()
            .map(|(field, spec)| {
                let observed: Vec<f64> = rows.iter().filter_map(|r| r[field]).collect();
                match spec.encoding {
                    Encoding::Scaled => {
                        let median = median(&observed).unwrap_or(0.0);
                        let n = rows.len().max(1) as f64;
                        let imputed = rows.iter().map(|r| r[field].unwrap_or(median));
                        let mean = imputed.clone().sum::<f64>() / n;
                        let var = imputed.map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                        let std = if var > 0.0 { var.sqrt() } else { 1.0 };
                        ColumnStep::Scaled {
                            field,
                            median,
                            mean,
                            std,
                        }
                    }
                    Encoding::OneHot => {
                        let codes: Vec<i32> = observed.iter().map(|&x| x.round() as i32).collect();
                        let mut categories = codes.clone();
                        categories.sort_unstable();
                        categories.dedup();
                        let fallback = match spec.kind {
                            FieldKind::Categorical { allowed } => allowed[0],
                            FieldKind::Numeric { min, .. } => min as i32,
                        };
                        let mode = mode(&codes).unwrap_or(fallback);
                        if categories.is_empty() {
                            categories.push(mode);
                        }
                        ColumnStep::OneHot {
                            field,
                            mode,
                            categories,
                        }
                    }
                }
            })
            .collect();
        Self { steps }
    }

    /// Width of the feature vector this produces.
    pub fn width(&self) -> usize {
        self.steps.iter().map(ColumnStep::width).sum()
    }

    /// Names of the output columns, e.g. `age` or `cp=4`.
    pub fn column_names(&self) -> Vec<String> {
        self.steps
            .iter()
            .flat_map(|step| {
                let name = FIELDS[step.field()].name;
                match step {
                    ColumnStep::Scaled { .. } => vec![name.to_owned()],
                    ColumnStep::OneHot { categories, .. } => {
                        categories.iter().map(|c| format!("{name}={c}")).collect()
                    }
                }
            })
            .collect()
    }

    /// Writes the encoded features of one row into `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`Preprocessor::width`], or a step's field index is out of range;
    /// [`crate::Model::load`] checks both before a preprocessor is used.
    pub fn transform(&self, row: &[Option<f64>; N_FIELDS], out: &mut [f64]) -> Transformed {
        let mut at = 0;
        let mut unseen = 0;
        for step in &self.steps {
            match step {
                ColumnStep::Scaled {
                    field,
                    median,
                    mean,
                    std,
                } => {
                    out[at] = (row[*field].unwrap_or(*median) - mean) / std;
                    at += 1;
                }
                ColumnStep::OneHot {
                    field,
                    mode,
                    categories,
                } => {
                    let code = row[*field].map_or(*mode, |x| x.round() as i32);
                    let slots = &mut out[at..at + categories.len()];
                    slots.fill(0.0);
                    match categories.binary_search(&code) {
                        Ok(i) => slots[i] = 1.0,
                        Err(_) => unseen += 1,
                    }
                    at += categories.len();
                }
            }
        }
        Transformed { width: at, unseen }
    }
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// Most frequent value; ties go to the smallest, so fitting is deterministic.
fn mode(values: &[i32]) -> Option<i32> {
    let mut counts = std::collections::BTreeMap::new();
    for &v in values {
        *counts.entry(v).or_insert(0usize) += 1;
    }
    counts
        .into_iter()
        .fold(None, |best: Option<(i32, usize)>, (v, n)| match best {
            Some((_, bn)) if bn >= n => best,
            _ => Some((v, n)),
        })
        .map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(age: f64, sex: f64, ca: Option<f64>, thal: Option<f64>) -> [Option<f64>; N_FIELDS] {
        [
            Some(age),
            Some(sex),
            Some(4.0),
            Some(120.0),
            Some(200.0),
            Some(0.0),
            Some(0.0),
            Some(150.0),
            Some(0.0),
            Some(1.0),
            Some(1.0),
            ca,
            thal,
        ]
    }

    #[test]
    fn median_and_mode_are_hand_checked() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(mode(&[7, 3, 7, 3, 6]), Some(3));
        assert_eq!(mode(&[6, 7, 7]), Some(7));
    }

    #[test]
    fn fit_imputes_then_scales() {
        // ages 40, 50, 60: mean 50, population std sqrt(200/3).
        // ca: observed 0 and 2, median 1, imputed column 0, 2, 1: mean 1.
        let rows = [
            row(40.0, 0.0, Some(0.0), Some(3.0)),
            row(50.0, 1.0, Some(2.0), Some(7.0)),
            row(60.0, 1.0, None, None),
        ];
        let p = Preprocessor::fit(&rows);
        let ColumnStep::Scaled { mean, std, .. } = p.steps[0] else {
            panic!("age is scaled")
        };
        assert_eq!(mean, 50.0);
        assert!((std - (200.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(
            p.steps[11],
            ColumnStep::Scaled {
                field: 11,
                median: 1.0,
                mean: 1.0,
                std: (2.0f64 / 3.0).sqrt()
            }
        );
        assert_eq!(
            p.steps[12],
            ColumnStep::OneHot {
                field: 12,
                mode: 3,
                categories: vec![3, 7]
            }
        );
        // Constant columns (cp is always 4) scale by 1 rather than divide by zero.
        assert!(matches!(&p.steps[2], ColumnStep::OneHot { categories, .. } if categories == &[4]));
        assert!(matches!(p.steps[3], ColumnStep::Scaled { std, .. } if std == 1.0));
    }

    #[test]
    fn transform_one_hots_imputes_and_counts_unseen() {
        let rows = [
            row(40.0, 0.0, Some(0.0), Some(3.0)),
            row(60.0, 1.0, Some(2.0), Some(7.0)),
        ];
        let p = Preprocessor::fit(&rows);
        let mut out = [f64::NAN; MAX_WIDTH];
        let t = p.transform(&row(50.0, 1.0, None, Some(6.0)), &mut out);
        assert_eq!(t.width, p.width());
        assert_eq!(t.unseen, 1, "thal = 6 was never seen in training");
        let names = p.column_names();
        let get = |n: &str| out[names.iter().position(|c| c == n).unwrap()];
        assert_eq!(get("age"), 0.0);
        assert_eq!((get("sex=0"), get("sex=1")), (0.0, 1.0));
        assert_eq!((get("thal=3"), get("thal=7")), (0.0, 0.0));
        assert_eq!(
            get("ca"),
            0.0,
            "missing ca is imputed with the median, which is the mean here"
        );
    }
}
