//! What the training data looked like, kept in the artifact: each field's distribution (the
//! reference that drift is measured against), the encoded columns' means and how many training
//! rows reach each tree node (the expectations that explanations start from).

use heart_schemas::patient::{FIELDS, FieldKind, N_FIELDS};
use serde::{Deserialize, Serialize};

use crate::estimator::{Estimator, Tree};
use crate::preprocess::{MAX_WIDTH, Preprocessor};

/// Numeric fields are binned at their training deciles (fewer bins where deciles coincide).
pub const NUMERIC_BINS: usize = 10;

/// The training data's summary; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingProfile {
    /// Training rows.
    pub rows: u32,
    /// One per field, in [`FIELDS`] order.
    pub fields: Vec<FieldProfile>,
    /// Mean of each encoded column over the training rows, after imputation.
    pub column_means: Vec<f64>,
    /// For each tree of the (uncalibrated) estimator, the training rows reaching each node;
    /// empty for a logistic regression.
    pub tree_cover: Vec<Vec<f64>>,
}

/// One field's training distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldProfile {
    /// Training rows in which the field was missing (not counted in `bins`).
    pub missing: u32,
    /// The observed values, binned.
    pub bins: Bins,
}

/// Bins and their training counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Bins {
    /// Bin `i` holds values in `(edges[i - 1], edges[i]]`; the first bin everything up to
    /// `edges[0]`, the last everything above the last edge. `counts.len() == edges.len() + 1`.
    Numeric {
        /// Ascending, without repeats.
        edges: Vec<f64>,
        /// Training rows per bin.
        counts: Vec<u32>,
    },
    /// One bin per allowed code of the field, in the contract's order.
    Categorical {
        /// The field's allowed codes.
        codes: Vec<i32>,
        /// Training rows per code.
        counts: Vec<u32>,
    },
}

impl Bins {
    /// The bin of `value`; `None` for a code the field does not allow, or NaN.
    pub fn index(&self, value: f64) -> Option<usize> {
        match self {
            Self::Numeric { edges, .. } => {
                (!value.is_nan()).then(|| edges.partition_point(|e| *e < value))
            }
            Self::Categorical { codes, .. } => {
                let code = value.round() as i32;
                codes.iter().position(|c| *c == code)
            }
        }
    }

    /// Counts `value` in its bin (nothing for a value [`Bins::index`] places nowhere).
    fn add(&mut self, value: f64) {
        if let Some(i) = self.index(value) {
            match self {
                Self::Numeric { counts, .. } | Self::Categorical { counts, .. } => counts[i] += 1,
            }
        }
    }

    /// Training rows per bin.
    pub fn counts(&self) -> &[u32] {
        match self {
            Self::Numeric { counts, .. } | Self::Categorical { counts, .. } => counts,
        }
    }

    /// A label per bin for plots and docs, e.g. `(120, 130]` or `4`.
    pub fn labels(&self) -> Vec<String> {
        match self {
            Self::Numeric { edges, .. } => (0..=edges.len())
                .map(
                    |i| match (i.checked_sub(1).map(|j| edges[j]), edges.get(i)) {
                        (None, Some(hi)) => format!("<= {hi}"),
                        (Some(lo), Some(hi)) => format!("({lo}, {hi}]"),
                        (Some(lo), None) => format!("> {lo}"),
                        (None, None) => "all".to_owned(),
                    },
                )
                .collect(),
            Self::Categorical { codes, .. } => codes.iter().map(i32::to_string).collect(),
        }
    }
}

impl TrainingProfile {
    /// Summarises the training `rows` (field order, `None` for missing) that `preprocessor` and
    /// `estimator` were fitted on.
    pub fn fit(
        rows: &[[Option<f64>; N_FIELDS]],
        preprocessor: &Preprocessor,
        estimator: &Estimator,
    ) -> Self {
        let fields = FIELDS
            .iter()
            .enumerate()
            .map(|(field, spec)| {
                let observed: Vec<f64> = rows.iter().filter_map(|r| r[field]).collect();
                let mut bins = match spec.kind {
                    FieldKind::Numeric { .. } => {
                        let edges = decile_edges(&observed);
                        let counts = vec![0; edges.len() + 1];
                        Bins::Numeric { edges, counts }
                    }
                    FieldKind::Categorical { allowed } => Bins::Categorical {
                        codes: allowed.to_vec(),
                        counts: vec![0; allowed.len()],
                    },
                };
                observed.iter().for_each(|v| bins.add(*v));
                FieldProfile {
                    missing: count(rows.len() - observed.len()),
                    bins,
                }
            })
            .collect();

        let width = preprocessor.width();
        let mut column_means = vec![0.0; width];
        let encoded: Vec<[f64; MAX_WIDTH]> = rows
            .iter()
            .map(|r| {
                let mut x = [0.0; MAX_WIDTH];
                preprocessor.transform(r, &mut x);
                x
            })
            .collect();
        for x in &encoded {
            for (m, v) in column_means.iter_mut().zip(x) {
                *m += v;
            }
        }
        let n = rows.len().max(1) as f64;
        column_means.iter_mut().for_each(|m| *m /= n);

        let tree_cover = trees(estimator)
            .iter()
            .map(|tree| {
                let mut cover = vec![0.0; tree.nodes.len()];
                for x in &encoded {
                    for node in tree.path(&x[..width]) {
                        cover[node] += 1.0;
                    }
                }
                cover
            })
            .collect();
        Self {
            rows: count(rows.len()),
            fields,
            column_means,
            tree_cover,
        }
    }

    /// Checks the profile against the artifact it belongs to.
    ///
    /// # Errors
    /// A description of the first broken invariant.
    pub fn check(&self, width: usize, estimator: &Estimator) -> Result<(), String> {
        if self.fields.len() != N_FIELDS {
            return Err(format!(
                "profile has {} fields, not {N_FIELDS}",
                self.fields.len()
            ));
        }
        for (spec, profile) in FIELDS.iter().zip(&self.fields) {
            let ok = match (&profile.bins, spec.kind) {
                (Bins::Numeric { edges, counts }, FieldKind::Numeric { .. }) => {
                    counts.len() == edges.len() + 1
                        && edges.iter().all(|e| e.is_finite())
                        && edges.windows(2).all(|w| w[0] < w[1])
                }
                (Bins::Categorical { codes, counts }, FieldKind::Categorical { allowed }) => {
                    codes == allowed && counts.len() == codes.len()
                }
                _ => false,
            };
            if !ok {
                return Err(format!("profile of {}: malformed bins", spec.name));
            }
        }
        if self.column_means.len() != width || self.column_means.iter().any(|m| !m.is_finite()) {
            return Err(format!(
                "profile has {} finite column means for {width} columns",
                self.column_means.len()
            ));
        }
        let trees = trees(estimator);
        if self.tree_cover.len() != trees.len() {
            return Err(format!(
                "profile covers {} trees of {}",
                self.tree_cover.len(),
                trees.len()
            ));
        }
        for (t, (tree, cover)) in trees.iter().zip(&self.tree_cover).enumerate() {
            if cover.len() != tree.nodes.len()
                || cover.iter().any(|c| !(c.is_finite() && *c >= 0.0))
            {
                return Err(format!("tree {t}: cover must be one finite count per node"));
            }
        }
        Ok(())
    }
}

/// The trees of an estimator (through its calibration), in order; none for a linear model.
pub(crate) fn trees(estimator: &Estimator) -> &[Tree] {
    match estimator.uncalibrated() {
        Estimator::Forest { trees } | Estimator::Boosted { trees, .. } => trees,
        Estimator::Logistic { .. } | Estimator::Calibrated { .. } => &[],
    }
}

/// The 10 %, 20 %, … 90 % quantiles of `values` (the lower of two neighbours), without repeats.
fn decile_edges(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..NUMERIC_BINS)
        .filter_map(|k| {
            v.get((k * v.len()).saturating_sub(1) / NUMERIC_BINS)
                .copied()
        })
        .collect();
    edges.dedup();
    edges
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciles_of_one_to_twenty_are_every_second_value() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(
            decile_edges(&v),
            [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0]
        );
        // Ties collapse: a field that is 0 in most rows has few bins.
        let mut zeros = vec![0.0; 15];
        zeros.extend([1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(decile_edges(&zeros), [0.0, 1.0, 3.0]);
        assert!(decile_edges(&[]).is_empty());
    }

    #[test]
    fn bins_put_edges_left_and_refuse_unknown_codes() {
        let numeric = Bins::Numeric {
            edges: vec![1.0, 2.0],
            counts: vec![0; 3],
        };
        assert_eq!(numeric.index(0.5), Some(0));
        assert_eq!(numeric.index(1.0), Some(0));
        assert_eq!(numeric.index(1.5), Some(1));
        assert_eq!(numeric.index(9.0), Some(2));
        assert_eq!(numeric.index(f64::NAN), None);
        assert_eq!(numeric.labels(), ["<= 1", "(1, 2]", "> 2"]);
        let codes = Bins::Categorical {
            codes: vec![3, 6, 7],
            counts: vec![0; 3],
        };
        assert_eq!(codes.index(6.0), Some(1));
        assert_eq!(codes.index(5.0), None);
    }
}
