//! The UCI processed file: no header, 14 comma-separated columns (13 attributes and `num`, the
//! diagnosis, which is not sent), `?` for a missing value.

use heart_schemas::{FIELDS, N_FIELDS, PatientRecord};

use super::{SourceRecord, default_id};
use crate::error::SourceError;

/// Columns per line: the 13 attributes and the diagnosis.
const COLUMNS: usize = N_FIELDS + 1;

/// Parses every non-blank line into a validated record with id `<prefix><line>`.
///
/// # Errors
/// The first line with the wrong number of columns, a cell that is not a number, or a value that
/// fails validation.
pub(crate) fn parse(text: &str, prefix: &str) -> Result<Vec<SourceRecord>, SourceError> {
    super::parse_lines(text, prefix, parse_line)
}

fn parse_line(line: u64, content: &str, prefix: &str) -> Result<SourceRecord, SourceError> {
    let cells: Vec<&str> = content.split(',').map(str::trim).collect();
    if cells.len() != COLUMNS {
        return Err(SourceError::Columns {
            line,
            expected: COLUMNS,
            found: cells.len(),
        });
    }
    let mut values = [None; N_FIELDS];
    for (column, ((slot, spec), cell)) in values.iter_mut().zip(&FIELDS).zip(&cells).enumerate() {
        if *cell == "?" {
            continue;
        }
        let value = cell
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| SourceError::NotANumber {
                line,
                column: column + 1,
                name: spec.name.to_owned(),
                value: (*cell).to_owned(),
            })?;
        *slot = Some(value);
    }
    let record = PatientRecord::from_features(default_id(prefix, line), 0, &values);
    record
        .validate()
        .map_err(|invalid| SourceError::Invalid { line, invalid })?;
    Ok(SourceRecord::untimed(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::tests::uci_path;

    #[test]
    fn the_cleveland_file_has_303_valid_rows_with_6_missing_values() {
        let text = std::fs::read_to_string(uci_path()).unwrap();
        let rows = parse(&text, "cleveland-").unwrap();
        assert_eq!(rows.len(), 303);
        let first = &rows[0].record;
        assert_eq!(first.patient_id, "cleveland-1");
        assert_eq!(
            (first.age, first.cp, first.chol, first.oldpeak),
            (Some(63), Some(1), Some(233.0), Some(2.3))
        );
        assert_eq!((first.ca, first.thal), (Some(0), Some(6)));
        let missing_ca: Vec<&str> = rows
            .iter()
            .filter(|r| r.record.ca.is_none())
            .map(|r| r.record.patient_id.as_str())
            .collect();
        assert_eq!(
            missing_ca,
            [
                "cleveland-167",
                "cleveland-193",
                "cleveland-288",
                "cleveland-303"
            ]
        );
        assert_eq!(rows.iter().filter(|r| r.record.thal.is_none()).count(), 2);
        assert!(rows.iter().all(|r| !r.event_time_given));
    }

    #[test]
    fn a_bad_cell_names_line_column_and_attribute() {
        let text = "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0\n\
                    67.0,1.0,4.0,high,286.0,0.0,2.0,108.0,1.0,1.5,2.0,3.0,3.0,2\n";
        let err = parse(text, "p").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2, column 4 (trestbps): \"high\" is not a number"
        );
    }

    #[test]
    fn a_short_line_says_how_many_columns() {
        let err = parse("63.0,1.0\n", "p").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: expected 14 comma-separated values, found 2"
        );
    }

    #[test]
    fn an_out_of_range_value_is_rejected_with_its_line() {
        let text = "\n500.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,?,?,0\n";
        let err = parse(text, "p").unwrap_err();
        assert!(matches!(err, SourceError::Invalid { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("age = 500"), "{err}");
    }
}
