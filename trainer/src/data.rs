//! Reading the data: UCI `processed.*.data` files (no header, `?` = missing) and headered CSV,
//! parsed with polars, checked cell by cell so that a bad file names its line and column.

use std::io::Cursor;
use std::path::Path;

use heart_schemas::patient::{FIELDS, FieldKind, N_FIELDS};
use polars::prelude::{CsvReadOptions, DataFrame, SerReader};

use crate::error::DataError;

/// One patient's 13 attributes in [`FIELDS`] order, `None` where missing.
pub type Row = [Option<f64>; N_FIELDS];

/// Names accepted for the target column of a headered CSV; the UCI files call it `num`.
const TARGET_NAMES: [&str; 2] = ["num", "target"];

/// A loaded data file.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where it came from, for reports.
    pub source: String,
    /// sha256 of the file's bytes, lowercase hex.
    pub sha256: String,
    /// The attributes.
    pub rows: Vec<Row>,
    /// `num > 0`: heart disease present.
    pub target: Vec<bool>,
    /// How many "not measured" placeholder cells (`FieldSpec::not_measured`: `chol = 0`,
    /// `trestbps = 0`) were read as missing.
    pub placeholders_as_missing: usize,
}

impl Dataset {
    /// Rows with heart disease.
    pub fn positives(&self) -> usize {
        self.target.iter().filter(|&&t| t).count()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows (never true for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Reads and parses a data file.
///
/// # Errors
/// [`DataError`] naming the file, and for a bad cell its line and column.
pub fn load(path: &Path) -> Result<Dataset, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&bytes, &path.display().to_string())
}

/// Parses the bytes of a data file; `source_name` is used in errors.
///
/// A first line whose first field is a number or `?` means a UCI file without header, in UCI
/// column order; otherwise the first line is a header naming the 13 attributes and `num` (or
/// `target`) in any order. Empty cells and `?` are missing, and so is `chol = 0`.
///
/// # Errors
/// [`DataError`] naming the line and column of the first bad cell.
pub fn parse(bytes: &[u8], source_name: &str) -> Result<Dataset, DataError> {
    let text = String::from_utf8_lossy(bytes);
    let first = text.lines().next().unwrap_or_default();
    let first_field = first.split(',').next().unwrap_or_default().trim();
    let has_header = !(first_field == "?" || first_field.parse::<f64>().is_ok());
    let expected = if has_header {
        first.split(',').count()
    } else {
        N_FIELDS + 1
    };
    check_shape(&text, expected, has_header, source_name)?;

    // Every column is read as text so that each cell's problem can be reported precisely.
    let df = CsvReadOptions::default()
        .with_has_header(has_header)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(Cursor::new(bytes))
        .finish()
        .map_err(|source| DataError::Csv {
            source_name: source_name.to_owned(),
            source,
        })?;
    if df.height() == 0 {
        return Err(DataError::Empty {
            source_name: source_name.to_owned(),
        });
    }
    let columns = locate_columns(&df, has_header, source_name)?;
    let line_of = |i: usize| i + 1 + usize::from(has_header);
    let cell = |col: usize, i: usize| -> Result<Option<String>, DataError> {
        let c = &df.columns()[col];
        let s = c.str().map_err(|source| DataError::Csv {
            source_name: source_name.to_owned(),
            source,
        })?;
        Ok(s.get(i).map(|v| v.trim().to_owned()))
    };

    let mut rows = Vec::with_capacity(df.height());
    let mut target = Vec::with_capacity(df.height());
    let mut placeholders_as_missing = 0;
    for i in 0..df.height() {
        let mut row: Row = [None; N_FIELDS];
        for (field, spec) in FIELDS.iter().enumerate() {
            let raw = cell(columns.fields[field], i)?;
            let bad = |problem: String| DataError::BadValue {
                source_name: source_name.to_owned(),
                line: line_of(i),
                column: spec.name.to_owned(),
                value: raw.clone().unwrap_or_default(),
                problem,
            };
            let Some(value) = parse_cell(raw.as_deref()).map_err(&bad)? else {
                continue;
            };
            // The contract's "not measured" placeholders (chol = 0, trestbps = 0 in the
            // Hungarian, Swiss and VA files) are missing values, as the scorer reads them.
            if spec.normalize(Some(value)).is_none() {
                placeholders_as_missing += 1;
                continue;
            }
            check_value(spec.kind, value).map_err(bad)?;
            row[field] = Some(value);
        }
        let raw = cell(columns.target, i)?;
        let num = parse_cell(raw.as_deref())
            .ok()
            .flatten()
            .filter(|n| *n >= 0.0 && n.fract() == 0.0)
            .ok_or_else(|| DataError::BadValue {
                source_name: source_name.to_owned(),
                line: line_of(i),
                column: columns.target_name.clone(),
                value: raw.unwrap_or_default(),
                problem: "is not a diagnosis code (a whole number >= 0)".to_owned(),
            })?;
        rows.push(row);
        target.push(num > 0.0);
    }
    let positives = target.iter().filter(|&&t| t).count();
    if positives == 0 || positives == target.len() {
        return Err(DataError::OneClass {
            source_name: source_name.to_owned(),
            positives,
            rows: target.len(),
        });
    }
    Ok(Dataset {
        source: source_name.to_owned(),
        sha256: heart_model::sha256_hex(bytes),
        rows,
        target,
        placeholders_as_missing,
    })
}

/// Rejects ragged and blank lines before polars sees them, so the error names the line.
fn check_shape(
    text: &str,
    expected: usize,
    has_header: bool,
    source_name: &str,
) -> Result<(), DataError> {
    let lines: Vec<&str> = text.lines().collect();
    let data_lines = lines.len()
        - lines
            .iter()
            .rev()
            .take_while(|l| l.trim().is_empty())
            .count();
    for (i, line) in lines[..data_lines].iter().enumerate() {
        let found = if line.trim().is_empty() {
            0
        } else {
            line.split(',').count()
        };
        if found != expected {
            return Err(DataError::FieldCount {
                source_name: source_name.to_owned(),
                line: i + 1,
                expected,
                found,
            });
        }
    }
    if data_lines <= usize::from(has_header) {
        return Err(DataError::Empty {
            source_name: source_name.to_owned(),
        });
    }
    Ok(())
}

struct Columns {
    fields: [usize; N_FIELDS],
    target: usize,
    target_name: String,
}

fn locate_columns(
    df: &DataFrame,
    has_header: bool,
    source_name: &str,
) -> Result<Columns, DataError> {
    if !has_header {
        return Ok(Columns {
            fields: std::array::from_fn(|i| i),
            target: N_FIELDS,
            target_name: "num".to_owned(),
        });
    }
    let names: Vec<String> = df
        .columns()
        .iter()
        .map(|c| c.name().trim().to_ascii_lowercase())
        .collect();
    let find = |name: &'static str| {
        names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| DataError::MissingColumn {
                source_name: source_name.to_owned(),
                column: name,
            })
    };
    let mut fields = [0; N_FIELDS];
    for (slot, spec) in fields.iter_mut().zip(FIELDS.iter()) {
        *slot = find(spec.name)?;
    }
    let (target, target_name) = TARGET_NAMES
        .iter()
        .find_map(|t| {
            names
                .iter()
                .position(|n| n == t)
                .map(|i| (i, (*t).to_owned()))
        })
        .ok_or_else(|| DataError::MissingColumn {
            source_name: source_name.to_owned(),
            column: "num",
        })?;
    Ok(Columns {
        fields,
        target,
        target_name,
    })
}

/// `Ok(None)` for a missing cell (`?` or empty).
fn parse_cell(raw: Option<&str>) -> Result<Option<f64>, String> {
    match raw {
        None | Some("" | "?") => Ok(None),
        Some(s) => match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err("is not a number (use ? for a missing value)".to_owned()),
        },
    }
}

fn check_value(kind: FieldKind, value: f64) -> Result<(), String> {
    match kind {
        FieldKind::Numeric { min, max } if !(min..=max).contains(&value) => {
            Err(format!("is outside the allowed range {min}..={max}"))
        }
        FieldKind::Categorical { allowed }
            if value.fract() != 0.0 || !allowed.contains(&(value as i32)) =>
        {
            Err(format!("is not one of the allowed codes {allowed:?}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;

    const UCI: &str = "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0\n\
                       67.0,1.0,4.0,160.0,286.0,0.0,2.0,108.0,1.0,1.5,2.0,3.0,3.0,2\n\
                       41.0,0.0,2.0,130.0,0,0.0,2.0,172.0,0.0,1.4,1.0,?,?,0\n";

    #[test]
    fn uci_file_parses_with_missing_values_and_binary_target() {
        let d = parse(UCI.as_bytes(), "t").unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d.target, [false, true, false]);
        assert_eq!(d.rows[0][0], Some(63.0));
        assert_eq!(d.rows[0][9], Some(2.3));
        assert_eq!(d.rows[2][11], None, "ca = ?");
        assert_eq!(d.rows[2][12], None, "thal = ?");
        assert_eq!(d.rows[2][4], None, "chol = 0 means not measured");
        assert_eq!(d.placeholders_as_missing, 1);
        assert_eq!(d.sha256, heart_model::sha256_hex(UCI.as_bytes()));
    }

    #[test]
    fn headered_csv_in_any_column_order_parses() {
        let csv = "target,age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal\n\
                   1,63,1,1,145,233,1,2,150,0,2.3,3,0,6\n\
                   0,41,0,2,130,204,0,2,172,0,1.4,1,,3\n";
        let d = parse(csv.as_bytes(), "t").unwrap();
        assert_eq!(d.target, [true, false]);
        assert_eq!(d.rows[0][0], Some(63.0));
        assert_eq!(d.rows[1][11], None, "empty cell is missing");
        assert_eq!(d.rows[1][12], Some(3.0));
    }

    #[test]
    fn a_non_number_names_line_and_column() {
        let bad = UCI.replace("160.0", "abc");
        let err = parse(bad.as_bytes(), "f.data").unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, DataError::BadValue { line: 2, column, .. } if column == "trestbps"),
            "{text}"
        );
        assert!(text.contains("line 2, column trestbps"), "{text}");
    }

    #[test]
    fn an_out_of_range_code_names_line_and_column() {
        let bad = UCI.replace(",6.0,0\n", ",5.0,0\n");
        let err = parse(bad.as_bytes(), "f").unwrap_err();
        assert!(
            matches!(&err, DataError::BadValue { line: 1, column, .. } if column == "thal"),
            "{err}"
        );
    }

    #[test]
    fn a_short_line_names_the_line() {
        let bad = UCI.replace("67.0,1.0,", "67.0,");
        let err = parse(bad.as_bytes(), "f").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::FieldCount {
                    line: 2,
                    expected: 14,
                    found: 13,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_bad_target_names_the_target_column() {
        let bad = UCI.replace(",6.0,0\n", ",6.0,x\n");
        let err = parse(bad.as_bytes(), "f").unwrap_err();
        assert!(
            matches!(&err, DataError::BadValue { line: 1, column, .. } if column == "num"),
            "{err}"
        );
    }

    #[test]
    fn a_header_without_an_attribute_is_refused() {
        let csv = "age,sex,num\n63,1,0\n";
        let err = parse(csv.as_bytes(), "f").unwrap_err();
        assert!(
            matches!(err, DataError::MissingColumn { column: "cp", .. }),
            "{err}"
        );
    }

    /// The Cleveland file of the unit tests, read in place (never copied): `HEART_TEST_DATA`,
    /// else `HEART_DATA`, else the shared copy beside the repository.
    pub(crate) fn cleveland_path() -> std::path::PathBuf {
        std::env::var_os("HEART_TEST_DATA")
            .or_else(|| std::env::var_os("HEART_DATA"))
            .map_or_else(
                || {
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../../shared/data/processed.cleveland.data")
                },
                std::path::PathBuf::from,
            )
    }

    /// The Cleveland file, loaded.
    pub(crate) fn cleveland() -> Dataset {
        let path = cleveland_path();
        load(&path).unwrap_or_else(|e| panic!("{}: {e}; set HEART_TEST_DATA", path.display()))
    }

    #[test]
    fn the_cleveland_file_has_303_rows_139_positive_and_6_missing() {
        let d = cleveland();
        assert_eq!(d.len(), 303);
        assert_eq!(d.positives(), 139);
        let missing: usize = d.rows.iter().flatten().filter(|v| v.is_none()).count();
        assert_eq!(missing, 6);
        assert_eq!(
            d.sha256,
            "a74b7efa387bc9d108d7d0115d831fe9b414b29ae7124f331b622b4efa0427c8"
        );
    }
}
