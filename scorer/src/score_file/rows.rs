//! Reading rows: a delimited file's layout or JSON lines, each row's cells turned into the
//! values `POST /predict` takes, and scored through [`crate::score`].

use std::io::{self, BufRead};

use heart_model::Model;
use heart_schemas::{ColumnLayout, FIELDS, N_FIELDS, PatientRecord, now_ms};
use indicatif::ProgressBar;
use serde_json::{Map, Number, Value};

use super::sink::Sink;
use super::{BUFFER_BYTES, MALFORMED_ROW, PROGRESS_EVERY, ScoreFileError};
use crate::config::InputFormat;
use crate::score::{Rejection, Rules, Scored, score_decoded};

/// A failure while reading rows, told apart so each names the right path.
pub(super) enum RowsError {
    Input(io::Error),
    MissingColumn(&'static str),
    Output(ScoreFileError),
}

impl From<ScoreFileError> for RowsError {
    fn from(e: ScoreFileError) -> Self {
        Self::Output(e)
    }
}

pub(super) fn score_delimited(
    reader: Box<dyn BufRead>,
    format: InputFormat,
    scorer: &mut RowScorer<'_>,
    sink: &mut Sink,
    progress: &ProgressBar,
) -> Result<(), RowsError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .buffer_capacity(BUFFER_BYTES)
        .from_reader(reader);
    let mut raw = csv::ByteRecord::new();
    let input_error = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(e) => RowsError::Input(e),
        other => RowsError::Input(io::Error::other(format!("{other:?}"))),
    };
    let mut layout = ColumnLayout::uci();
    if format == InputFormat::Csv {
        if !csv.read_byte_record(&mut raw).map_err(input_error)? {
            return Ok(());
        }
        let header = csv::StringRecord::from_byte_record_lossy(raw.clone());
        layout = ColumnLayout::from_header(&header).map_err(RowsError::MissingColumn)?;
    }
    while csv.read_byte_record(&mut raw).map_err(input_error)? {
        let line = raw.position().map_or(0, csv::Position::line);
        match csv::StringRecord::from_byte_record(std::mem::take(&mut raw)) {
            Ok(row) => {
                let outcome = scorer.delimited(&row, &layout, line);
                sink.write(line, outcome, || row_text(&row))?;
                raw = row.into_byte_record();
            }
            Err(e) => {
                let bytes = e.into_byte_record();
                let text = csv::StringRecord::from_byte_record_lossy(bytes.clone());
                sink.reject(
                    line,
                    MALFORMED_ROW,
                    "the row is not valid UTF-8",
                    &row_text(&text),
                )?;
                raw = bytes;
            }
        }
        if sink.summary.rows.is_multiple_of(PROGRESS_EVERY) {
            progress.set_position(csv.position().byte());
        }
    }
    Ok(())
}

pub(super) fn score_jsonl(
    mut reader: Box<dyn BufRead>,
    scorer: &mut RowScorer<'_>,
    sink: &mut Sink,
    progress: &ProgressBar,
) -> Result<(), RowsError> {
    let mut buf = Vec::new();
    let (mut line, mut bytes) = (0u64, 0u64);
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(RowsError::Input)?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        bytes += n as u64;
        let Ok(text) = std::str::from_utf8(&buf) else {
            let lossy = String::from_utf8_lossy(&buf);
            sink.reject(
                line,
                MALFORMED_ROW,
                "the line is not valid UTF-8",
                lossy.trim_end(),
            )?;
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match scorer.json(text, line) {
            Ok(outcome) => sink.write(line, outcome, || text.to_owned())?,
            Err(message) => sink.reject(line, MALFORMED_ROW, &message, text)?,
        }
        if sink.summary.rows.is_multiple_of(PROGRESS_EVERY) {
            progress.set_position(bytes);
        }
    }
}

/// A delimited row as text for the rejects file: its cells joined by commas.
pub(super) fn row_text(row: &csv::StringRecord) -> String {
    row.iter().collect::<Vec<_>>().join(",")
}

/// One cell of a delimited row, typed as a JSON value would be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Cell<'a> {
    /// Absent, empty or `?`.
    Missing,
    Number(f64),
    /// Not a number: kept so the message can quote it.
    Text(&'a str),
}

impl<'a> Cell<'a> {
    pub(super) fn parse(cell: Option<&'a str>) -> Self {
        match cell {
            None | Some("" | "?") => Self::Missing,
            Some(text) => text.parse().map_or(Self::Text(text), Self::Number),
        }
    }

    pub(super) fn to_json(self) -> Value {
        match self {
            Self::Missing => Value::Null,
            Self::Number(x) => Number::from_f64(x).map_or_else(
                // NaN and infinities have no JSON number; quoting them keeps them in the message.
                || Value::String(x.to_string()),
                Value::Number,
            ),
            Self::Text(text) => Value::String(text.to_owned()),
        }
    }
}

/// Turns rows into outcomes with one model, the same way the stream does.
pub(super) struct RowScorer<'m> {
    pub(super) model: &'m Model,
    pub(super) rules: Rules,
    pub(super) prefix: String,
    /// The event time of rows without one: when the run started.
    pub(super) default_event_time: i64,
}

impl RowScorer<'_> {
    pub(super) fn delimited(
        &self,
        row: &csv::StringRecord,
        layout: &ColumnLayout,
        line: u64,
    ) -> Result<Scored, Rejection> {
        let cells: [Cell<'_>; N_FIELDS] =
            std::array::from_fn(|i| Cell::parse(row.get(layout.fields[i])));
        let patient_id = layout
            .patient_id
            .and_then(|c| row.get(c))
            .filter(|id| !id.is_empty())
            .map_or_else(|| format!("{}{line}", self.prefix), str::to_owned);
        let event_time = layout
            .event_time
            .and_then(|c| row.get(c))
            .filter(|t| !t.is_empty());
        let record = match (fast_values(&cells), event_time.map(str::parse::<i64>)) {
            (Some(values), None | Some(Ok(_))) => {
                let event_time = event_time
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(self.default_event_time);
                Ok(PatientRecord::from_features(
                    patient_id, event_time, &values,
                ))
            }
            _ => {
                let mut object: Map<String, Value> = FIELDS
                    .iter()
                    .zip(cells)
                    .map(|(spec, cell)| (spec.name.to_owned(), cell.to_json()))
                    .collect();
                object.insert("patient_id".to_owned(), Value::String(patient_id));
                if let Some(t) = event_time {
                    let value = t
                        .parse::<i64>()
                        .map_or_else(|_| Cell::parse(Some(t)).to_json(), Value::from);
                    object.insert("event_time".to_owned(), value);
                }
                PatientRecord::from_json(&object, self.default_event_time)
                    .map_err(|e| Rejection::invalid(&e))
            }
        };
        score_decoded(self.model, &self.rules, record, now_ms())
    }

    /// `Err` is the message for a line that is not a JSON object.
    pub(super) fn json(&self, text: &str, line: u64) -> Result<Result<Scored, Rejection>, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            let text = e.to_string();
            let detail = text
                .rfind(" at line ")
                .map_or(text.as_str(), |i| &text[..i]);
            format!("not JSON (column {}): {detail}", e.column())
        })?;
        let Value::Object(mut object) = value else {
            return Err("not a JSON object".to_owned());
        };
        if object.get("patient_id").is_none_or(Value::is_null) {
            object.insert(
                "patient_id".to_owned(),
                Value::String(format!("{}{line}", self.prefix)),
            );
        }
        let record = PatientRecord::from_json(&object, self.default_event_time)
            .map_err(|e| Rejection::invalid(&e));
        Ok(score_decoded(self.model, &self.rules, record, now_ms()))
    }
}

/// The attribute values when every cell is missing or of the field's JSON type
/// (whole numbers for codes) — then [`PatientRecord::from_json`] would build exactly the record
/// [`PatientRecord::from_features`] builds from them, and validation decides the rest.
pub(super) fn fast_values(cells: &[Cell<'_>; N_FIELDS]) -> Option<[Option<f64>; N_FIELDS]> {
    let mut values = [None; N_FIELDS];
    for ((slot, spec), cell) in values.iter_mut().zip(&FIELDS).zip(cells) {
        match *cell {
            Cell::Missing => {}
            Cell::Number(x) if !spec.integer || x.fract() == 0.0 => *slot = Some(x),
            _ => return None,
        }
    }
    Some(values)
}
