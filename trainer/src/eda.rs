//! Exploratory data analysis: summary statistics and missing values (computed with polars) as
//! Markdown and JSON, and the plots a person reads before trusting a model.

use std::fmt::Write as _;
use std::path::Path;

use heart_schemas::patient::{Encoding, FIELDS};
use polars::prelude::{ChunkAgg, ChunkQuantile, ChunkVar, Column, DataFrame, PlSmallStr};
use serde::Serialize;

use crate::data::Dataset;
use crate::error::Error;
use crate::{plots, write_file};

/// Statistics of one column.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnSummary {
    /// Attribute name.
    pub name: &'static str,
    /// Unit or meaning.
    pub unit: &'static str,
    /// Non-missing values.
    pub count: usize,
    /// Missing values.
    pub missing: usize,
    /// Mean.
    pub mean: Option<f64>,
    /// Sample standard deviation (n − 1).
    pub std: Option<f64>,
    /// Minimum.
    pub min: Option<f64>,
    /// Median.
    pub median: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

/// The EDA summary written as `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The data file.
    pub source: String,
    /// Its sha256.
    pub sha256: String,
    /// Rows.
    pub rows: usize,
    /// Rows with `num > 0`.
    pub positives: usize,
    /// Rows with `num = 0`.
    pub negatives: usize,
    /// "Not measured" placeholder cells (`chol = 0`, `trestbps = 0`) read as missing.
    pub placeholders_as_missing: usize,
    /// One entry per attribute, in UCI order.
    pub columns: Vec<ColumnSummary>,
    /// Pearson correlations (pairwise complete rows) over the 13 attributes and the target.
    pub correlation: Vec<Vec<f64>>,
    /// Names of the correlation matrix's rows and columns.
    pub correlation_names: Vec<String>,
}

/// Builds a polars frame of the attributes (nulls for missing) and the binary target.
pub fn to_frame(data: &Dataset) -> Result<DataFrame, polars::error::PolarsError> {
    let mut columns: Vec<Column> = FIELDS
        .iter()
        .enumerate()
        .map(|(f, spec)| {
            let values: Vec<Option<f64>> = data.rows.iter().map(|r| r[f]).collect();
            Column::new(PlSmallStr::from(spec.name), values)
        })
        .collect();
    let target: Vec<f64> = data
        .target
        .iter()
        .map(|&t| f64::from(u8::from(t)))
        .collect();
    columns.push(Column::new(PlSmallStr::from("disease"), target));
    DataFrame::new(data.len(), columns)
}

/// Computes the summary.
///
/// # Errors
/// A polars error, which a frame built by [`to_frame`] does not produce.
pub fn summarise(data: &Dataset) -> Result<Summary, polars::error::PolarsError> {
    let df = to_frame(data)?;
    let mut columns = Vec::new();
    for spec in &FIELDS {
        let ca = df.column(spec.name)?.f64()?;
        columns.push(ColumnSummary {
            name: spec.name,
            unit: spec.unit,
            count: ca.len() - ca.null_count(),
            missing: ca.null_count(),
            mean: ca.mean(),
            std: ca.std(1),
            min: ca.min(),
            median: ca.median(),
            max: ca.max(),
        });
    }
    let mut names: Vec<String> = FIELDS.iter().map(|f| f.name.to_owned()).collect();
    names.push("disease".to_owned());
    let series: Vec<Vec<Option<f64>>> = names
        .iter()
        .map(|n| Ok(df.column(n)?.f64()?.iter().collect()))
        .collect::<Result<_, polars::error::PolarsError>>()?;
    let correlation = series
        .iter()
        .map(|a| series.iter().map(|b| pearson(a, b)).collect())
        .collect();
    let positives = data.positives();
    Ok(Summary {
        source: data.source.clone(),
        sha256: data.sha256.clone(),
        rows: data.len(),
        positives,
        negatives: data.len() - positives,
        placeholders_as_missing: data.placeholders_as_missing,
        columns,
        correlation,
        correlation_names: names,
    })
}

/// Pearson correlation over the rows where both values are present.
fn pearson(a: &[Option<f64>], b: &[Option<f64>]) -> f64 {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .filter_map(|(x, y)| Some(((*x)?, (*y)?)))
        .collect();
    let n = pairs.len() as f64;
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let cov: f64 = pairs.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let vx: f64 = pairs.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    let vy: f64 = pairs.iter().map(|(_, y)| (y - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

/// Renders the summary as Markdown.
pub fn markdown(s: &Summary) -> String {
    let fmt = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2}"));
    let mut md = String::new();
    let _ = writeln!(md, "# Exploratory data analysis\n");
    let _ = writeln!(md, "- data: `{}` (sha256 `{}`)", s.source, s.sha256);
    let _ = writeln!(
        md,
        "- rows: {}; disease (num > 0): {} ({:.1} %); no disease: {} ({:.1} %)",
        s.rows,
        s.positives,
        100.0 * s.positives as f64 / s.rows as f64,
        s.negatives,
        100.0 * s.negatives as f64 / s.rows as f64
    );
    let _ = writeln!(
        md,
        "- \"not measured\" placeholders (`chol = 0`, `trestbps = 0`) read as missing: {}\n",
        s.placeholders_as_missing
    );
    let _ = writeln!(md, "## Summary statistics and missing values\n");
    let _ = writeln!(
        md,
        "| attribute | unit / meaning | count | missing | mean | std (n−1) | min | median | max |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for c in &s.columns {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.name,
            c.unit,
            c.count,
            c.missing,
            fmt(c.mean),
            fmt(c.std),
            fmt(c.min),
            fmt(c.median),
            fmt(c.max)
        );
    }
    let disease = s.correlation.last().cloned().unwrap_or_default();
    let mut ranked: Vec<(usize, f64)> = disease
        .iter()
        .copied()
        .enumerate()
        .take(FIELDS.len())
        .collect();
    ranked.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    let _ = writeln!(
        md,
        "\n## Correlation with disease (Pearson, pairwise complete)\n"
    );
    let _ = writeln!(md, "| attribute | r |\n|---|---:|");
    for (i, r) in ranked {
        let _ = writeln!(md, "| {} | {r:+.3} |", s.correlation_names[i]);
    }
    let _ = writeln!(
        md,
        "\n## Plots\n\n- `class_balance.png`, `correlation.png`, `class_distributions.png`\n- `hist_<attribute>.png` for each numeric attribute"
    );
    md
}

/// `trainer eda`: writes `summary.md`, `summary.json` and the plots into `out`.
///
/// # Errors
/// Plotting or writing fails.
pub fn run(data: &Dataset, out: &Path) -> Result<Summary, Error> {
    plots::init_font()?;
    let summary = summarise(data).map_err(|source| crate::error::DataError::Csv {
        source_name: data.source.clone(),
        source,
    })?;
    write_file(&out.join("summary.md"), markdown(&summary).as_bytes())?;
    crate::report::write_json(&out.join("summary.json"), &summary)?;
    for (f, spec) in FIELDS.iter().enumerate() {
        if spec.encoding == Encoding::Scaled {
            let values: Vec<f64> = data.rows.iter().filter_map(|r| r[f]).collect();
            plots::histogram(
                &out.join(format!("hist_{}.png", spec.name)),
                spec.name,
                spec.unit,
                &values,
            )?;
        }
    }
    plots::class_balance(
        &out.join("class_balance.png"),
        summary.negatives,
        summary.positives,
    )?;
    plots::correlation_heatmap(
        &out.join("correlation.png"),
        &summary.correlation_names,
        &summary.correlation,
    )?;
    let per_field: Vec<(Vec<f64>, Vec<f64>)> = (0..FIELDS.len())
        .map(|f| {
            let pick = |class: bool| {
                data.rows
                    .iter()
                    .zip(&data.target)
                    .filter(|(_, t)| **t == class)
                    .filter_map(|(r, _)| r[f])
                    .collect()
            };
            (pick(false), pick(true))
        })
        .collect();
    plots::class_distributions(&out.join("class_distributions.png"), &per_field)?;
    Ok(summary)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn pearson_is_hand_checked_and_skips_missing_pairs() {
        let a = [Some(1.0), Some(2.0), Some(3.0), None];
        let b = [Some(2.0), Some(4.0), Some(6.0), Some(100.0)];
        assert!((pearson(&a, &b) - 1.0).abs() < 1e-12);
        let c = [Some(3.0), Some(2.0), Some(1.0), Some(0.0)];
        assert!((pearson(&a, &c) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn summary_counts_missing_values() {
        let csv = "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0\n\
                   67.0,1.0,4.0,160.0,0,0.0,2.0,108.0,1.0,1.5,2.0,?,3.0,2\n";
        let d = crate::data::parse(csv.as_bytes(), "t").unwrap();
        let s = summarise(&d).unwrap();
        assert_eq!(s.columns[4].missing, 1, "chol = 0");
        assert_eq!(s.columns[11].missing, 1, "ca = ?");
        assert_eq!(s.columns[0].mean, Some(65.0));
        assert_eq!(s.columns[0].median, Some(65.0));
        assert_eq!((s.positives, s.negatives), (1, 1));
    }
}
