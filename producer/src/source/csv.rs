//! A headered CSV file: the UCI attribute names as columns (any order, other columns ignored),
//! optional `patient_id` and `event_time` (ms since the epoch) columns, and empty or `?` cells for
//! missing values.

use heart_schemas::{ColumnLayout, FIELDS, PatientRecord};
use serde_json::{Map, Number, Value};

use super::{SourceRecord, default_id};
use crate::error::SourceError;

/// Parses every row into a validated record; rows without a patient id get `<prefix><line>`.
///
/// # Errors
/// A header without an attribute, a malformed CSV line, a cell that is not a number (named by
/// line, column and header), or a row that fails validation.
pub(crate) fn parse(text: &str, prefix: &str) -> Result<Vec<SourceRecord>, SourceError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| csv_error(&e, 1))?.clone();
    let columns = ColumnLayout::from_header(&header)
        .map_err(|column| SourceError::MissingColumn { column })?;
    let mut rows = Vec::new();
    let mut row = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut row) {
            Ok(true) => rows.push(parse_row(&row, &header, &columns, line, prefix)?),
            Ok(false) => break,
            Err(e) => return Err(csv_error(&e, line)),
        }
    }
    Ok(rows)
}

fn csv_error(err: &csv::Error, line: u64) -> SourceError {
    SourceError::Csv {
        line: err.position().map_or(line, csv::Position::line),
        detail: err.to_string(),
    }
}

fn parse_row(
    row: &csv::StringRecord,
    header: &csv::StringRecord,
    columns: &ColumnLayout,
    line: u64,
    prefix: &str,
) -> Result<SourceRecord, SourceError> {
    let line = row.position().map_or(line, csv::Position::line);
    let not_a_number = |column: usize, cell: &str| SourceError::NotANumber {
        line,
        column: column + 1,
        name: header.get(column).unwrap_or_default().to_owned(),
        value: cell.to_owned(),
    };
    let mut object = Map::new();
    for (spec, &column) in FIELDS.iter().zip(&columns.fields) {
        let cell = row.get(column).unwrap_or_default();
        let value = if cell.is_empty() || cell == "?" {
            Value::Null
        } else {
            let number = cell
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .ok_or_else(|| not_a_number(column, cell))?;
            Value::Number(number)
        };
        object.insert(spec.name.to_owned(), value);
    }
    let id = columns
        .patient_id
        .and_then(|c| row.get(c))
        .filter(|id| !id.is_empty())
        .map_or_else(|| default_id(prefix, line), str::to_owned);
    object.insert("patient_id".to_owned(), Value::String(id));
    let event_time = match columns.event_time {
        Some(c) => match row.get(c).unwrap_or_default() {
            "" => None,
            cell => Some(cell.parse::<i64>().map_err(|_| not_a_number(c, cell))?),
        },
        None => None,
    };
    let record = PatientRecord::from_json(&object, event_time.unwrap_or(0))
        .map_err(|invalid| SourceError::Invalid { line, invalid })?;
    Ok(SourceRecord {
        record,
        event_time_given: event_time.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal";

    #[test]
    fn rows_become_records_with_ids_and_optional_event_times() {
        let text = format!(
            "patient_id,event_time,{HEADER},num\n\
             alice,1700000000000,63,1,1,145,233,1,2,150,0,2.3,3,0,6,0\n\
             ,,67,1,4,160,286,0,2,108,1,1.5,2,?,,2\n"
        );
        let rows = parse(&text, "csv-").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].record.patient_id, "alice");
        assert_eq!(rows[0].record.event_time, 1_700_000_000_000);
        assert!(rows[0].event_time_given);
        assert_eq!(rows[0].record.thal, Some(6));
        assert_eq!(rows[1].record.patient_id, "csv-3");
        assert!(!rows[1].event_time_given);
        assert_eq!((rows[1].record.ca, rows[1].record.thal), (None, None));
    }

    #[test]
    fn columns_may_come_in_any_order() {
        let mut names: Vec<&str> = HEADER.split(',').collect();
        names.reverse();
        let values = "6,0,3,2.3,0,150,2,1,233,145,1,1,63";
        let rows = parse(&format!("{}\n{values}\n", names.join(",")), "p").unwrap();
        assert_eq!(rows[0].record.age, Some(63));
        assert_eq!(rows[0].record.thal, Some(6));
    }

    #[test]
    fn a_bad_cell_names_line_column_and_header() {
        let text = format!(
            "{HEADER}\n63,1,1,145,233,1,2,150,0,2.3,3,0,6\n63,1,1,145,lots,1,2,150,0,2.3,3,0,6\n"
        );
        let err = parse(&text, "p").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3, column 5 (chol): \"lots\" is not a number"
        );
    }

    #[test]
    fn a_missing_attribute_column_is_named() {
        let err = parse("age,sex\n1,1\n", "p").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: the CSV header has no cp column (expected the UCI attribute names)"
        );
    }

    #[test]
    fn a_ragged_row_is_reported_with_its_line() {
        let text = format!("{HEADER}\n63,1,1\n");
        assert!(matches!(
            parse(&text, "p"),
            Err(SourceError::Csv { line: 2, .. })
        ));
    }

    #[test]
    fn a_non_integer_code_fails_validation() {
        let text = format!("{HEADER}\n63,1,1.5,145,233,1,2,150,0,2.3,3,0,6\n");
        let err = parse(&text, "p").unwrap_err();
        assert!(matches!(err, SourceError::Invalid { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("cp"), "{err}");
    }
}
