//! `trainer import-sklearn`: a scikit-learn Pipeline, exported by `sklearn/export.py`, as a
//! model version the scorer serves like one the trainer fitted.
//!
//! The export holds the fitted numbers; this maps them onto the artifact's own preprocessing
//! and estimators, so there is one way to apply a model. Two things differ between the two and
//! are mapped here:
//! - column order: a ColumnTransformer writes its transformers' columns one after another, the
//!   artifact writes them in field order, so weights and tree features are permuted;
//! - trees compare in f32: scikit-learn casts the encoded row to `float32` before comparing it
//!   with a split's (f64) threshold, so each threshold becomes the f64 one that splits f64
//!   inputs exactly as that cast-and-compare does.
//!
//! The export's golden vectors are scikit-learn's own `predict_proba`; the version is refused
//! unless [`Model::load`] reproduces every one of them to within its tolerance.

use std::collections::BTreeMap;
use std::path::Path;

use heart_model::{
    Algorithm, Artifact, ColumnStep, Estimator, GoldenVector, Model, Node, Preprocessor, Tree,
};
use heart_schemas::patient::{FIELDS, N_FIELDS};
use serde::Deserialize;

use crate::error::ImportError;

/// The export format this build reads (written by `sklearn/export.py`).
pub const EXPORT_FORMAT: &str = "heart-sklearn-export/v1";

#[derive(Debug, Deserialize)]
struct Export {
    format: String,
    origin: BTreeMap<String, String>,
    training_data_sha256: String,
    fields: Vec<FieldExport>,
    columns: Vec<ColumnRef>,
    classifier: Classifier,
    golden: Vec<GoldenExport>,
    training_rows: Vec<[Option<f64>; N_FIELDS]>,
}

#[derive(Debug, Deserialize)]
struct FieldExport {
    field: String,
    #[serde(flatten)]
    step: StepExport,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StepExport {
    Scaled { fill: f64, mean: f64, scale: f64 },
    OneHot { fill: f64, categories: Vec<i32> },
}

#[derive(Debug, Deserialize)]
struct ColumnRef {
    field: String,
    category: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Classifier {
    LogisticRegression {
        weights: Vec<f64>,
        intercept: f64,
        params: BTreeMap<String, String>,
    },
    DecisionTree {
        trees: Vec<Vec<NodeExport>>,
        params: BTreeMap<String, String>,
    },
    RandomForest {
        trees: Vec<Vec<NodeExport>>,
        params: BTreeMap<String, String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NodeExport {
    Leaf {
        leaf: f64,
    },
    Split {
        feature: usize,
        threshold: f64,
        left: u32,
        right: u32,
    },
}

#[derive(Debug, Deserialize)]
struct GoldenExport {
    input: [Option<f64>; N_FIELDS],
    probability: f64,
}

/// Reads the export at `path` and builds the verified model version `name`, version 0 (the
/// publisher numbers it), loaded as the scorer loads it.
///
/// # Errors
/// [`ImportError`]; [`ImportError::Verify`] when scikit-learn's golden vectors do not
/// reproduce.
pub fn import(path: &Path, name: &str, created_at: i64) -> Result<Model, ImportError> {
    let text = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })?;
    let export: Export = serde_json::from_slice(&text).map_err(|e| ImportError::Parse {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    if export.format != EXPORT_FORMAT {
        return Err(ImportError::Format {
            path: path.to_owned(),
            found: export.format,
            expected: EXPORT_FORMAT,
        });
    }
    let invalid = |detail: String| ImportError::Invalid {
        path: path.to_owned(),
        detail,
    };
    let artifact = artifact(export, name).map_err(invalid)?;
    let library = artifact
        .hyperparameters
        .get("origin.sklearn_version")
        .map_or_else(
            || "scikit-learn".to_owned(),
            |v| format!("scikit-learn {v}"),
        );
    let version = artifact.to_version(0, created_at, &library)?;
    Ok(Model::load(version)?)
}

fn artifact(export: Export, name: &str) -> Result<Artifact, String> {
    let steps = preprocessor_steps(&export.fields)?;
    let preprocessor = Preprocessor { steps };
    let permutation = permutation(&preprocessor, &export.columns)?;
    let width = permutation.len();
    let mut hyperparameters: BTreeMap<String, String> = export
        .origin
        .into_iter()
        .map(|(k, v)| (format!("origin.{k}"), v))
        .collect();
    let (algorithm, estimator, params) = match export.classifier {
        Classifier::LogisticRegression {
            weights,
            intercept,
            params,
        } => {
            if weights.len() != width {
                return Err(format!(
                    "{} coefficients for {width} encoded columns",
                    weights.len()
                ));
            }
            let mut ours = vec![0.0; width];
            for (j, w) in weights.into_iter().enumerate() {
                ours[permutation[j]] = w;
            }
            let estimator = Estimator::Logistic {
                weights: ours,
                intercept,
            };
            (Algorithm::LogisticRegression, estimator, params)
        }
        Classifier::DecisionTree { trees, params } => {
            let trees = trees_of(trees, &permutation)?;
            (Algorithm::DecisionTree, Estimator::Forest { trees }, params)
        }
        Classifier::RandomForest { trees, params } => {
            let trees = trees_of(trees, &permutation)?;
            (Algorithm::RandomForest, Estimator::Forest { trees }, params)
        }
    };
    hyperparameters.extend(params.into_iter().map(|(k, v)| (format!("model.{k}"), v)));
    let mut artifact = Artifact {
        name: name.to_owned(),
        algorithm,
        hyperparameters,
        preprocessor,
        estimator,
        training_data_sha256: export.training_data_sha256,
        cv_metrics: BTreeMap::new(),
        golden: export
            .golden
            .into_iter()
            .map(|g| GoldenVector {
                input: g.input,
                probability: g.probability,
            })
            .collect(),
        profile: None,
    };
    if !export.training_rows.is_empty() {
        artifact.set_profile(&export.training_rows);
    }
    Ok(artifact)
}

fn preprocessor_steps(fields: &[FieldExport]) -> Result<Vec<ColumnStep>, String> {
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    let expected: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
    if names != expected {
        return Err(format!(
            "fields {names:?}; expected the 13 UCI attributes in order {expected:?}"
        ));
    }
    fields
        .iter()
        .enumerate()
        .map(|(field, f)| match &f.step {
            StepExport::Scaled { fill, mean, scale } => Ok(ColumnStep::Scaled {
                field,
                median: *fill,
                mean: *mean,
                std: *scale,
            }),
            StepExport::OneHot { fill, categories } => {
                if fill.fract() != 0.0 || !fill.is_finite() {
                    return Err(format!("{}: imputed with {fill}, not a code", f.field));
                }
                #[allow(clippy::cast_possible_truncation)] // integral, checked above
                let mode = *fill as i32;
                Ok(ColumnStep::OneHot {
                    field,
                    mode,
                    categories: categories.clone(),
                })
            }
        })
        .collect()
}

/// For each column the ColumnTransformer writes, the artifact's column that holds it.
fn permutation(preprocessor: &Preprocessor, columns: &[ColumnRef]) -> Result<Vec<usize>, String> {
    let mut offsets = [0usize; N_FIELDS];
    let mut at = 0;
    for step in &preprocessor.steps {
        offsets[step.field()] = at;
        at += step.width();
    }
    if columns.len() != at {
        return Err(format!(
            "{} encoded columns listed, the fields' steps write {at}",
            columns.len()
        ));
    }
    let mut seen = vec![false; at];
    columns
        .iter()
        .map(|c| {
            let field = FIELDS
                .iter()
                .position(|f| f.name == c.field)
                .ok_or_else(|| format!("column of unknown field {:?}", c.field))?;
            let index = match (&preprocessor.steps[field], c.category) {
                (ColumnStep::Scaled { .. }, None) => offsets[field],
                (ColumnStep::OneHot { categories, .. }, Some(code)) => {
                    let k = categories
                        .binary_search(&code)
                        .map_err(|_| format!("{}={code}: not one of its categories", c.field))?;
                    offsets[field] + k
                }
                _ => {
                    return Err(format!(
                        "column {}: category does not match its step",
                        c.field
                    ));
                }
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(format!("column {} listed twice", c.field));
            }
            Ok(index)
        })
        .collect()
}

fn trees_of(trees: Vec<Vec<NodeExport>>, permutation: &[usize]) -> Result<Vec<Tree>, String> {
    trees
        .into_iter()
        .map(|nodes| {
            let nodes = nodes
                .into_iter()
                .map(|n| match n {
                    NodeExport::Leaf { leaf } => Ok(Node::Leaf { probability: leaf }),
                    NodeExport::Split {
                        feature,
                        threshold,
                        left,
                        right,
                    } => {
                        let column = *permutation
                            .get(feature)
                            .ok_or_else(|| format!("a split on column {feature}, past the last"))?;
                        Ok(Node::Split {
                            feature: u16::try_from(column).map_err(|e| e.to_string())?,
                            threshold: f32_split(threshold),
                            left,
                            right,
                        })
                    }
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Tree { nodes })
        })
        .collect()
}

/// The f64 threshold `t'` such that `x <= t'` exactly when `(x as f32) <= t`, for every f64
/// `x` in f32 range: scikit-learn's trees compare the row cast to f32.
///
/// With `a` the largest f32 not above `t`, `(x as f32) <= t` holds exactly when `x` rounds to
/// `a` or below: `x` below the midpoint of `a` and the next f32, or on it when round-to-even
/// picks `a` (its last mantissa bit is 0).
fn f32_split(t: f64) -> f64 {
    if !t.is_finite() {
        return t;
    }
    #[allow(clippy::cast_possible_truncation)] // the rounding is the point
    let mut a = t as f32;
    if f64::from(a) > t {
        a = a.next_down();
    }
    if a == f32::MAX {
        return t;
    }
    let mid = f64::midpoint(f64::from(a), f64::from(a.next_up()));
    if a.to_bits() & 1 == 0 {
        mid
    } else {
        mid.next_down()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_f32_split_sends_every_f64_where_the_f32_cast_would() {
        let mut checked = 0;
        for t in [
            0.5,
            -1.25,
            0.1,
            1e-3,
            -0.337_812_5,
            123.456_789,
            2.0_f64.powi(-30),
            0.0,
        ] {
            let split = f32_split(t);
            // Around the threshold, the midpoints and their neighbours.
            #[allow(clippy::cast_possible_truncation)]
            let near = t as f32;
            let mut probes = vec![t, split, split.next_up(), split.next_down()];
            for f in [near.next_down(), near, near.next_up()] {
                let m = f64::midpoint(f64::from(f), f64::from(f.next_up()));
                probes.extend([m, m.next_up(), m.next_down(), f64::from(f)]);
            }
            for x in probes {
                #[allow(clippy::cast_possible_truncation)]
                let sklearn = f64::from(x as f32) <= t;
                assert_eq!(x <= split, sklearn, "t = {t:e}, x = {x:e}");
                checked += 1;
            }
        }
        assert!(checked > 100);
    }

    #[test]
    fn columns_are_permuted_from_transformer_order_to_field_order() {
        let fields = Preprocessor::fit(&[[Some(1.0); N_FIELDS]]).steps;
        let pre = Preprocessor { steps: fields };
        // The transformer order: every scaled field, then every one-hot field.
        let mut columns: Vec<ColumnRef> = Vec::new();
        for pass in [false, true] {
            for (step, spec) in pre.steps.iter().zip(FIELDS.iter()) {
                match step {
                    ColumnStep::Scaled { .. } if !pass => columns.push(ColumnRef {
                        field: spec.name.to_owned(),
                        category: None,
                    }),
                    ColumnStep::OneHot { categories, .. } if pass => {
                        columns.extend(categories.iter().map(|c| ColumnRef {
                            field: spec.name.to_owned(),
                            category: Some(*c),
                        }));
                    }
                    _ => {}
                }
            }
        }
        let p = permutation(&pre, &columns).unwrap();
        let names = pre.column_names();
        for (j, c) in columns.iter().enumerate() {
            let expected = c
                .category
                .map_or_else(|| c.field.clone(), |k| format!("{}={k}", c.field));
            assert_eq!(names[p[j]], expected);
        }
        columns.pop();
        assert!(
            permutation(&pre, &columns)
                .unwrap_err()
                .contains("encoded columns")
        );
    }
}
