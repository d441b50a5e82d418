//! JSON lines: one object per line with the UCI attribute names, as `POST /predict` takes them,
//! parsed by [`PatientRecord::from_json`]. Blank lines are skipped.

use heart_schemas::PatientRecord;
use serde_json::Value;

use super::{SourceRecord, default_id};
use crate::error::SourceError;

/// Parses every non-blank line into a validated record; objects without `patient_id` get
/// `<prefix><line>`, objects without `event_time` get the send time.
///
/// # Errors
/// The first line that is not a JSON object (with the column where parsing stopped) or that fails
/// validation.
pub(crate) fn parse(text: &str, prefix: &str) -> Result<Vec<SourceRecord>, SourceError> {
    super::parse_lines(text, prefix, parse_line)
}

fn parse_line(line: u64, content: &str, prefix: &str) -> Result<SourceRecord, SourceError> {
    let value: Value = serde_json::from_str(content).map_err(|e| SourceError::Json {
        line,
        column: e.column(),
        detail: without_position(&e),
    })?;
    let Value::Object(mut object) = value else {
        return Err(SourceError::Json {
            line,
            column: 1,
            detail: "expected a JSON object".to_owned(),
        });
    };
    if object.get("patient_id").is_none_or(Value::is_null) {
        object.insert(
            "patient_id".to_owned(),
            Value::String(default_id(prefix, line)),
        );
    }
    let event_time_given = object.get("event_time").is_some_and(|v| !v.is_null());
    let record = PatientRecord::from_json(&object, 0)
        .map_err(|invalid| SourceError::Invalid { line, invalid })?;
    Ok(SourceRecord {
        record,
        event_time_given,
    })
}

/// serde_json's message without its " at line 1 column N" suffix: we report our own line.
fn without_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = r#""age":63,"sex":1,"cp":1,"trestbps":145,"chol":233,"fbs":1,"restecg":2,"thalach":150,"exang":0,"oldpeak":2.3,"slope":3,"ca":0,"thal":6"#;

    #[test]
    fn objects_become_records() {
        let text =
            format!("{{\"patient_id\":\"bob\",\"event_time\":5,{ROW}}}\n\n{{{ROW},\"ca\":null}}\n");
        let rows = parse(&text, "jsonl-").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].record.patient_id, "bob");
        assert_eq!(rows[0].record.event_time, 5);
        assert!(rows[0].event_time_given);
        assert_eq!(rows[1].record.patient_id, "jsonl-3");
        assert_eq!(rows[1].record.ca, None);
        assert!(!rows[1].event_time_given);
    }

    #[test]
    fn bad_json_names_line_and_column() {
        let text = format!("{{{ROW}}}\n{{\"age\": 63,, }}\n");
        let err = parse(&text, "p").unwrap_err();
        assert_eq!(err.to_string(), "line 2, column 12: key must be a string");
    }

    #[test]
    fn a_non_object_is_rejected() {
        let err = parse("[1,2]\n", "p").unwrap_err();
        assert_eq!(err.to_string(), "line 1, column 1: expected a JSON object");
    }

    #[test]
    fn a_missing_field_is_sent_as_null_and_a_mistyped_one_is_named_with_its_line() {
        // The scorer imputes missing attributes within its policy; the producer passes them on.
        let text = format!("{{{}}}\n", ROW.replace(r#""chol":233,"#, ""));
        assert_eq!(parse(&text, "p").unwrap()[0].record.chol, None);
        let text = format!(
            "{{{}}}\n",
            ROW.replace(r#""chol":233,"#, r#""chol":"high","#)
        );
        let err = parse(&text, "p").unwrap_err();
        assert_eq!(err.to_string(), r#"line 1: chol = "high" is not a number"#);
    }
}
