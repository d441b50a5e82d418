//! Plots as PNG (plotters, bitmap backend): titles, axis labels and units on every chart.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use heart_schemas::patient::{FIELDS, FieldKind};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::PlotError;
use crate::evaluate::Confusion;

/// The font every chart uses (Debian/Ubuntu package `fonts-dejavu-core`).
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT: &str = "sans-serif";
const HEALTHY: RGBColor = RGBColor(31, 119, 180);
const DISEASE: RGBColor = RGBColor(214, 39, 40);
/// Distinct line colours for ROC curves.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

static FONT_LOADED: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers DejaVu Sans with plotters; call once before drawing (later calls are free).
///
/// # Errors
/// [`PlotError::Font`] if the file is missing, [`PlotError::InvalidFont`] if it does not parse.
pub fn init_font() -> Result<(), PlotError> {
    let path = PathBuf::from(FONT_PATH);
    let loaded = FONT_LOADED.get_or_init(|| {
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        // plotters keeps fonts for the life of the process, so the bytes must be 'static.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FONT, FontStyle::Normal, bytes)
            .map_err(|_| "invalid".to_owned())
    });
    match loaded {
        Ok(()) => Ok(()),
        Err(e) if e == "invalid" => Err(PlotError::InvalidFont { path }),
        Err(e) => Err(PlotError::Font {
            path,
            source: std::io::Error::other(e.clone()),
        }),
    }
}

fn draw_err<E: std::fmt::Display>(file: &Path) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError::Draw {
        file: file.to_owned(),
        detail: e.to_string(),
    }
}

fn canvas(
    file: &Path,
    size: (u32, u32),
) -> Result<DrawingArea<BitMapBackend<'_>, Shift>, PlotError> {
    let root = BitMapBackend::new(file, size).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(file))?;
    Ok(root)
}

/// Histogram counts over `bins` equal-width bins spanning the values; returns (edges, counts).
fn bin(values: &[f64], bins: usize, lo: f64, hi: f64) -> Vec<(f64, f64, usize)> {
    let width = if hi > lo {
        (hi - lo) / bins as f64
    } else {
        1.0
    };
    let mut counts = vec![0usize; bins];
    for &v in values {
        let k = (((v - lo) / width) as usize).min(bins - 1);
        counts[k] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(k, c)| (lo + k as f64 * width, lo + (k + 1) as f64 * width, c))
        .collect()
}

fn range(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (lo.min(0.0), lo.max(0.0) + 1.0)
    }
}

/// A histogram of one numeric feature.
///
/// # Errors
/// [`PlotError::Draw`] if drawing or writing fails.
pub fn histogram(file: &Path, field: &str, unit: &str, values: &[f64]) -> Result<(), PlotError> {
    let root = canvas(file, (900, 600))?;
    let (lo, hi) = range(values);
    let bars = bin(values, 20, lo, hi);
    let top = bars.iter().map(|b| b.2).max().unwrap_or(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Distribution of {field} (n = {})", values.len()),
            (FONT, 28),
        )
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(70)
        .build_cartesian_2d(lo..hi, 0.0..top)
        .map_err(draw_err(file))?;
    chart
        .configure_mesh()
        .x_desc(format!("{field} ({unit})"))
        .y_desc("patients")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 20))
        .draw()
        .map_err(draw_err(file))?;
    chart
        .draw_series(bars.iter().map(|&(a, b, c)| {
            Rectangle::new([(a, 0.0), (b, c as f64)], HEALTHY.mix(0.75).filled())
        }))
        .map_err(draw_err(file))?;
    root.present().map_err(draw_err(file))
}

/// A bar chart of the two classes.
///
/// # Errors
/// [`PlotError::Draw`] if drawing or writing fails.
pub fn class_balance(file: &Path, negatives: usize, positives: usize) -> Result<(), PlotError> {
    let root = canvas(file, (700, 600))?;
    let top = negatives.max(positives) as f64 * 1.2;
    let total = (negatives + positives).max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("Class balance (target: num > 0)", (FONT, 28))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..2.0, 0.0..top)
        .map_err(draw_err(file))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_desc("diagnosis")
        .y_desc("patients")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 20))
        .draw()
        .map_err(draw_err(file))?;
    for (k, (label, n, color)) in [
        ("no disease (num = 0)", negatives, HEALTHY),
        ("disease (num > 0)", positives, DISEASE),
    ]
    .into_iter()
    .enumerate()
    {
        let x = k as f64;
        chart
            .draw_series([Rectangle::new(
                [(x + 0.2, 0.0), (x + 0.8, n as f64)],
                color.mix(0.8).filled(),
            )])
            .map_err(draw_err(file))?;
        chart
            .draw_series([
                Text::new(
                    format!("{n} ({:.1} %)", 100.0 * n as f64 / total),
                    (x + 0.3, n as f64 + top * 0.03),
                    (FONT, 18),
                ),
                Text::new(label.to_owned(), (x + 0.22, top * 0.97), (FONT, 16)),
            ])
            .map_err(draw_err(file))?;
    }
    root.present().map_err(draw_err(file))
}

/// A correlation heatmap with the coefficient written in each cell.
///
/// # Errors
/// [`PlotError::Draw`] if drawing or writing fails.
pub fn correlation_heatmap(
    file: &Path,
    names: &[String],
    corr: &[Vec<f64>],
) -> Result<(), PlotError> {
    let n = names.len();
    let root = canvas(file, (1100, 1000))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Pearson correlation (pairwise complete rows)", (FONT, 28))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(90)
        .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())
        .map_err(draw_err(file))?;
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(n + 1)
        .y_labels(n + 1)
        .x_label_formatter(&label)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => (n - 1)
                .checked_sub(*i)
                .and_then(|k| names.get(k))
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("feature")
        .y_desc("feature")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(draw_err(file))?;
    for (i, row_values) in corr.iter().enumerate() {
        for (j, &r) in row_values.iter().enumerate() {
            let row = n - 1 - i;
            chart
                .draw_series([Rectangle::new(
                    [
                        (SegmentValue::Exact(j), SegmentValue::Exact(row)),
                        (SegmentValue::Exact(j + 1), SegmentValue::Exact(row + 1)),
                    ],
                    diverging(r).filled(),
                )])
                .map_err(draw_err(file))?;
            let text = if r.is_finite() {
                format!("{r:.2}")
            } else {
                "–".to_owned()
            };
            chart
                .draw_series([Text::new(
                    text,
                    (SegmentValue::CenterOf(j), SegmentValue::CenterOf(row)),
                    (FONT, 14).into_font().color(&BLACK).pos(
                        plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Center,
                        ),
                    ),
                )])
                .map_err(draw_err(file))?;
        }
    }
    root.present().map_err(draw_err(file))
}

/// Blue (−1) through white (0) to red (+1).
fn diverging(r: f64) -> RGBColor {
    let t = if r.is_finite() {
        r.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let fade = |c: u8, w: f64| (255.0 - (255.0 - f64::from(c)) * w).round() as u8;
    let (base, w) = if t >= 0.0 {
        (DISEASE, t)
    } else {
        (HEALTHY, -t)
    };
    RGBColor(fade(base.0, w), fade(base.1, w), fade(base.2, w))
}

/// Per-class distributions of all 13 attributes in one figure: for each class, the share of its
/// patients per bin (numeric) or per code (categorical).
///
/// # Errors
/// [`PlotError::Draw`] if drawing or writing fails.
pub fn class_distributions(
    file: &Path,
    per_field: &[(Vec<f64>, Vec<f64>)],
) -> Result<(), PlotError> {
    let root = canvas(file, (1800, 1500))?;
    let (title, body) = root.split_vertically(60);
    title
        .titled(
            "Per-class distributions (share of each class; blue = no disease, red = disease)",
            (FONT, 30),
        )
        .map_err(draw_err(file))?;
    let cells = body.split_evenly((4, 4));
    for ((field, spec), cell) in per_field.iter().zip(FIELDS.iter()).zip(cells.iter()) {
        let (neg, pos) = field;
        let all: Vec<f64> = neg.iter().chain(pos).copied().collect();
        let categorical = matches!(spec.kind, FieldKind::Categorical { .. }) || spec.name == "ca";
        let (lo, hi) = range(&all);
        let groups: Vec<(f64, f64, f64, f64)> = if categorical {
            let mut codes: Vec<f64> = all.clone();
            codes.sort_by(f64::total_cmp);
            codes.dedup();
            let share = |v: &[f64], c: f64| {
                v.iter().filter(|&&x| x == c).count() as f64 / v.len().max(1) as f64
            };
            codes
                .iter()
                .map(|&c| (c - 0.4, c + 0.4, share(neg, c), share(pos, c)))
                .collect()
        } else {
            let nb = bin(neg, 15, lo, hi);
            let pb = bin(pos, 15, lo, hi);
            nb.iter()
                .zip(&pb)
                .map(|(a, b)| {
                    (
                        a.0,
                        a.1,
                        a.2 as f64 / neg.len().max(1) as f64,
                        b.2 as f64 / pos.len().max(1) as f64,
                    )
                })
                .collect()
        };
        let top = groups.iter().map(|g| g.2.max(g.3)).fold(0.0, f64::max) * 1.15 + 1e-9;
        let (x0, x1) = if categorical {
            (lo - 0.6, hi + 0.6)
        } else {
            (lo, hi)
        };
        let mut chart = ChartBuilder::on(cell)
            .caption(spec.name, (FONT, 22))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(x0..x1, 0.0..top)
            .map_err(draw_err(file))?;
        // Codes are whole numbers: label only those ticks, so "cp" reads 1 2 3 4, not 0.5 1.0 ….
        let tick = |v: &f64| {
            if !categorical {
                if v.abs() >= 10.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            } else if (v - v.round()).abs() < 1e-6 {
                format!("{}", v.round() as i64)
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_label_formatter(&tick)
            .x_desc(spec.unit)
            .y_desc("share of class")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(draw_err(file))?;
        for &(a, b, n, p) in &groups {
            let (na, nb, pa, pb) = if categorical {
                (a, (a + b) / 2.0, (a + b) / 2.0, b)
            } else {
                (a, b, a, b)
            };
            chart
                .draw_series([
                    Rectangle::new([(na, 0.0), (nb, n)], HEALTHY.mix(0.55).filled()),
                    Rectangle::new([(pa, 0.0), (pb, p)], DISEASE.mix(0.55).filled()),
                ])
                .map_err(draw_err(file))?;
        }
    }
    root.present().map_err(draw_err(file))
}

/// ROC curves (out-of-fold predictions), one per model, with the chance diagonal.
///
/// # Errors
/// [`PlotError::Draw`] if drawing or writing fails.
pub fn roc_curves(
    file: &Path,
    title: &str,
    curves: &[(String, Vec<(f64, f64)>)],
) -> Result<(), PlotError> {
    unit_square_lines(
        file,
        UnitSquare {
            title,
            x_desc: "false positive rate (1 − specificity)",
            y_desc: "true positive rate (sensitivity)",
            diagonal: "chance (AUC 0.5)",
            legend: SeriesLabelPosition::LowerRight,
            markers: false,
        },
        curves,
    )
}

/// What differs between the two charts of curves on the unit square (ROC, reliability).
struct UnitSquare<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    /// Legend text of the dashed diagonal.
    diagonal: &'a str,
    legend: SeriesLabelPosition,
    /// Mark each point (reliability bins) as well as the line through them.
    markers: bool,
}

/// One line per curve on [0, 1]², with the diagonal and a legend.
fn unit_square_lines(
    file: &Path,
    chart_spec: UnitSquare<'_>,
    curves: &[(String, Vec<(f64, f64)>)],
) -> Result<(), PlotError> {
    let root = canvas(file, (850, 800))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(chart_spec.title, (FONT, 26))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(draw_err(file))?;
    chart
        .configure_mesh()
        .x_desc(chart_spec.x_desc)
        .y_desc(chart_spec.y_desc)
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 20))
        .draw()
        .map_err(draw_err(file))?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.4)))
        .map_err(draw_err(file))?
        .label(chart_spec.diagonal)
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
    for (k, (label, points)) in curves.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(3),
            ))
            .map_err(draw_err(file))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(3)));
        if chart_spec.markers {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(draw_err(file))?;
        }
    }
    chart
        .configure_series_labels()
        .position(chart_spec.legend)
        .label_font((FONT, 17))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err(file))?;
    root.present().map_err(draw_err(file))
}

/// A 2×2 confusion matrix with counts and row percentages.
///
/// # Errors
/// [`PlotError::Draw`] if drawing or writing fails.
pub fn confusion_matrix(file: &Path, title: &str, c: &Confusion) -> Result<(), PlotError> {
    let root = canvas(file, (750, 700))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(25)
        .x_label_area_size(70)
        .y_label_area_size(140)
        .build_cartesian_2d((0..1usize).into_segmented(), (0..1usize).into_segmented())
        .map_err(draw_err(file))?;
    let names = ["no disease", "disease"];
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(3)
        .y_labels(3)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).map_or(String::new(), |n| (*n).to_owned()),
            _ => String::new(),
        })
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => 1usize
                .checked_sub(*i)
                .and_then(|k| names.get(k))
                .map_or(String::new(), |n| (*n).to_owned()),
            _ => String::new(),
        })
        .x_desc("predicted (probability ≥ 0.5)")
        .y_desc("actual")
        .label_style((FONT, 18))
        .axis_desc_style((FONT, 20))
        .draw()
        .map_err(draw_err(file))?;
    // (actual, predicted, count); row 1 of the chart is "no disease" at the top.
    let cells = [(0, 0, c.tn), (0, 1, c.fp), (1, 0, c.fn_), (1, 1, c.tp)];
    let max = cells.iter().map(|x| x.2).max().unwrap_or(1).max(1) as f64;
    for (actual, predicted, n) in cells {
        let row_total = if actual == 0 {
            c.tn + c.fp
        } else {
            c.fn_ + c.tp
        }
        .max(1);
        let row = 1 - actual;
        let shade = n as f64 / max;
        chart
            .draw_series([Rectangle::new(
                [
                    (SegmentValue::Exact(predicted), SegmentValue::Exact(row)),
                    (
                        SegmentValue::Exact(predicted + 1),
                        SegmentValue::Exact(row + 1),
                    ),
                ],
                RGBColor(
                    (255.0 - 200.0 * shade) as u8,
                    (255.0 - 140.0 * shade) as u8,
                    255,
                )
                .filled(),
            )])
            .map_err(draw_err(file))?;
        chart
            .draw_series([Text::new(
                format!("{n}  ({:.0} %)", 100.0 * n as f64 / row_total as f64),
                (
                    SegmentValue::CenterOf(predicted),
                    SegmentValue::CenterOf(row),
                ),
                (FONT, 26)
                    .into_font()
                    .color(&BLACK)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Center,
                    )),
            )])
            .map_err(draw_err(file))?;
    }
    root.present().map_err(draw_err(file))
}

/// A reliability diagram: observed positive fraction against mean predicted probability per
/// bin, one line per model (empty bins skipped), with the diagonal of perfect calibration.
///
/// # Errors
/// [`PlotError::Draw`] if drawing or writing fails.
pub fn reliability(
    file: &Path,
    title: &str,
    curves: &[(String, Vec<(f64, f64)>)],
) -> Result<(), PlotError> {
    unit_square_lines(
        file,
        UnitSquare {
            title,
            x_desc: "mean predicted probability (10 equal-width bins)",
            y_desc: "observed fraction with disease",
            diagonal: "perfectly calibrated",
            legend: SeriesLabelPosition::UpperLeft,
            markers: true,
        },
        curves,
    )
}

/// Horizontal bars of mean CV ROC-AUC per mask (`(name, mean, std)`, first at the top), with a
/// line at the first bar (the unmasked baseline).
///
/// # Errors
/// [`PlotError::Draw`] if drawing or writing fails.
pub fn masked_auc(file: &Path, title: &str, bars: &[(String, f64, f64)]) -> Result<(), PlotError> {
    let n = bars.len().max(1);
    let lo = bars
        .iter()
        .map(|b| b.1 - b.2)
        .fold(1.0, f64::min)
        .clamp(0.0, 1.0);
    let x0 = ((lo - 0.05) * 20.0).floor() / 20.0;
    let root = canvas(file, (1100, 60 + 42 * n as u32 + 120))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(330)
        .build_cartesian_2d(x0.max(0.0)..1.0, (0..n - 1).into_segmented())
        .map_err(draw_err(file))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n + 1)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => (n - 1)
                .checked_sub(*i)
                .and_then(|k| bars.get(k))
                .map_or(String::new(), |b| b.0.clone()),
            _ => String::new(),
        })
        .x_desc("mean CV ROC-AUC with the field(s) missing in the test folds")
        .y_desc("missing")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(draw_err(file))?;
    let start = x0.max(0.0);
    for (k, (_, mean, std)) in bars.iter().enumerate() {
        let row = n - 1 - k;
        let color = if k == 0 { HEALTHY } else { DISEASE };
        chart
            .draw_series([Rectangle::new(
                [
                    (start, SegmentValue::Exact(row)),
                    (*mean, SegmentValue::Exact(row + 1)),
                ],
                color.mix(0.6).filled(),
            )])
            .map_err(draw_err(file))?;
        chart
            .draw_series([Text::new(
                format!("{mean:.3} ± {std:.3}"),
                (start + 0.005, SegmentValue::CenterOf(row)),
                (FONT, 14)
                    .into_font()
                    .color(&BLACK)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Left,
                        plotters::style::text_anchor::VPos::Center,
                    )),
            )])
            .map_err(draw_err(file))?;
    }
    if let Some((_, base, _)) = bars.first() {
        chart
            .draw_series(LineSeries::new(
                [
                    (*base, SegmentValue::Exact(0)),
                    (*base, SegmentValue::Exact(n)),
                ],
                BLACK.stroke_width(2),
            ))
            .map_err(draw_err(file))?;
    }
    root.present().map_err(draw_err(file))
}
