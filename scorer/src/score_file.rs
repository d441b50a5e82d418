//! `scorer score-file`: scores a file of patients without Kafka, through the stream's validation
//! and scoring ([`crate::score`]), so a rejected row carries the reason code and message the
//! dead-letter topic would give the same values.
//!
//! The input is read and written row by row (bounded memory whatever its size). A row's cells
//! become the same JSON-typed values `POST /predict` takes: a record whose cells are all present
//! and well typed is built directly (the fast path); any other row goes through
//! [`PatientRecord::from_json`], which names every missing or mistyped field. A line that is not
//! a row at all (not JSON, not UTF-8) is rejected as [`MALFORMED_ROW`], the one code the stream
//! does not have.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use heart_mlflow::MlflowConnection;
use heart_model::Model;
use heart_schemas::{
    AvroRecord, FIELDS, ModelVersion, N_FIELDS, PatientRecord, Prediction, RiskLevel, now_ms,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{Map, Number, Value};
use thiserror::Error;

use crate::config::{Config, InputFormat, OutputFormat, ScoreFileArgs};
use crate::score::{Rejection, Rules, Scored, score_decoded};

/// Reject code of a line that is not a row: not a JSON object, or not UTF-8.
pub const MALFORMED_ROW: &str = "malformed_row";

/// The columns of a CSV output, in [`Prediction`]'s field order.
const CSV_HEADER: [&str; 9] = [
    "patient_id",
    "event_time",
    "scored_at",
    "probability",
    "label",
    "risk_level",
    "model_name",
    "model_version",
    "imputed_fields",
];

/// A [`Prediction`] as a CSV row: `imputed_fields` joined with `;` (a CSV cell holds no list).
#[derive(Serialize)]
struct CsvRow<'a> {
    patient_id: &'a str,
    event_time: i64,
    scored_at: i64,
    probability: f64,
    label: i32,
    risk_level: RiskLevel,
    model_name: &'a str,
    model_version: i64,
    imputed_fields: String,
}

impl<'a> From<&'a Prediction> for CsvRow<'a> {
    fn from(p: &'a Prediction) -> Self {
        Self {
            patient_id: &p.patient_id,
            event_time: p.event_time,
            scored_at: p.scored_at,
            probability: p.probability,
            label: p.label,
            risk_level: p.risk_level,
            model_name: &p.model_name,
            model_version: p.model_version,
            imputed_fields: p.imputed_fields.names().collect::<Vec<_>>().join(";"),
        }
    }
}

/// Rows between progress-bar updates.
const PROGRESS_EVERY: u64 = 8192;

const BUFFER_BYTES: usize = 256 * 1024;

/// Where the model comes from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A file written by `trainer train`.
    File(PathBuf),
    /// A registered MLflow model version, `models:/NAME@ALIAS`.
    Mlflow {
        /// The reference.
        uri: String,
        /// The server and credentials.
        connection: MlflowConnection,
    },
}

impl ModelSource {
    /// The model source `args` name.
    ///
    /// # Errors
    /// [`ScoreFileError::MlflowConfig`] for a malformed `--from-mlflow` or one without a server.
    pub fn from_args(args: &ScoreFileArgs) -> Result<Self, ScoreFileError> {
        match &args.from_mlflow {
            Some(uri) => {
                args.mlflow.validate()?;
                args.mlflow.validate_from(uri)?;
                Ok(Self::Mlflow {
                    uri: uri.clone(),
                    connection: args.mlflow.clone(),
                })
            }
            // clap's required group guarantees one of the two; an empty path fails to load.
            None => Ok(Self::File(args.model_file.clone().unwrap_or_default())),
        }
    }

    /// Reads and verifies the model.
    ///
    /// # Errors
    /// [`ScoreFileError::ModelFile`] for a file that cannot be read, decoded or verified;
    /// [`ScoreFileError::Mlflow`] or [`ScoreFileError::MlflowModel`] for a registered version
    /// that cannot be fetched or verified.
    pub fn load(&self) -> Result<Model, ScoreFileError> {
        match self {
            Self::File(path) => {
                let fail = |detail: String| ScoreFileError::ModelFile {
                    path: path.clone(),
                    detail,
                };
                let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
                let version = ModelVersion::decode(&bytes).map_err(|e| fail(e.to_string()))?;
                Model::load(version).map_err(|e| fail(heart_kafka::telemetry::chain(&e)))
            }
            Self::Mlflow { uri, connection } => {
                let client = connection
                    .client()
                    .ok_or(heart_mlflow::ConfigError::FromMlflowNeedsUri)?;
                let registered =
                    heart_mlflow::registered::fetch(&client, uri).map_err(|source| {
                        ScoreFileError::Mlflow {
                            uri: uri.clone(),
                            source,
                        }
                    })?;
                tracing::info!(
                    uri = %uri,
                    registered_model = %registered.info.name,
                    mlflow_model_version = %registered.info.version,
                    run_id = %registered.info.run_id,
                    "score-file model from mlflow"
                );
                Model::load(registered.version).map_err(|e| ScoreFileError::MlflowModel {
                    uri: uri.clone(),
                    detail: heart_kafka::telemetry::chain(&e),
                })
            }
        }
    }
}

/// Why `score-file` stopped before the end of its input. Rejected rows are not errors.
#[derive(Debug, Error)]
pub enum ScoreFileError {
    /// The model cannot be used.
    #[error(
        "model file {path}: {detail}; pass the model.avro that `trainer train --out DIR` writes to DIR"
    )]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A malformed `--from-mlflow` or `--mlflow-*` value.
    #[error(transparent)]
    MlflowConfig(#[from] heart_mlflow::ConfigError),
    /// The registered version cannot be fetched.
    #[error("{uri}: {source}")]
    Mlflow {
        /// The `models:/NAME@ALIAS` reference.
        uri: String,
        /// What the server said, or why it did not answer.
        source: heart_mlflow::MlflowError,
    },
    /// The registered version's model file fails verification.
    #[error(
        "{uri}: {detail}; the registered version's model.avro must be one `trainer train --mlflow-uri` logged"
    )]
    MlflowModel {
        /// The `models:/NAME@ALIAS` reference.
        uri: String,
        /// What went wrong.
        detail: String,
    },
    /// The input cannot be opened or read.
    #[error("cannot read {path}: {source}; check --input")]
    Input {
        /// The input (`-` for stdin).
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// An output cannot be created or written.
    #[error("cannot write {path}: {source}; check the directory exists and has space")]
    Output {
        /// The output or rejects file (`-` for stdout).
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A CSV header without one of the attributes.
    #[error(
        "{path}: the CSV header has no {column} column (expected the UCI attribute names; for a file without a header pass --input-format uci)"
    )]
    MissingColumn {
        /// The input.
        path: PathBuf,
        /// The attribute.
        column: &'static str,
    },
    /// The risk thresholds or the imputation policy are invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// What a run did: printed on stderr at the end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Rows read (blank lines are not rows).
    pub rows: u64,
    /// Rows scored and written to the output.
    pub scored: u64,
    /// Rejected rows by reason code.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Predictions per risk level, in [`RiskLevel::ALL`] order.
    pub levels: [u64; 3],
    /// Predictions that imputed each attribute, in `FIELDS` order.
    pub imputed: [u64; N_FIELDS],
    /// Time from the first row read to the last output flushed.
    pub elapsed: Duration,
    /// The model version used.
    pub model_version: i64,
}

impl Summary {
    /// Rejected rows, all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Rows per second over [`Summary::elapsed`].
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "score-file: {} rows in {:.3} s ({:.0} rows/s), model version {}",
            self.rows,
            self.elapsed.as_secs_f64(),
            self.rows_per_second(),
            self.model_version,
        )?;
        let levels: Vec<String> = RiskLevel::ALL
            .iter()
            .zip(self.levels)
            .map(|(level, n)| format!("{level} {n}"))
            .collect();
        writeln!(f, "  scored   {} ({})", self.scored, levels.join(", "))?;
        let imputed: Vec<String> = FIELDS
            .iter()
            .zip(self.imputed)
            .filter(|(_, n)| *n > 0)
            .map(|(spec, n)| format!("{} {n}", spec.name))
            .collect();
        if !imputed.is_empty() {
            writeln!(f, "  imputed  {}", imputed.join(", "))?;
        }
        let reasons: Vec<String> = self
            .rejected
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        if reasons.is_empty() {
            writeln!(f, "  rejected 0")
        } else {
            writeln!(
                f,
                "  rejected {} ({})",
                self.rejected_total(),
                reasons.join(", ")
            )
        }
    }
}

/// Scores `args.input` into `args.output`, rejected rows into `args.rejects`.
///
/// # Errors
/// [`ScoreFileError`] when the model, the input or an output cannot be used; never for a
/// rejected row.
pub fn run(config: &Config, args: &ScoreFileArgs) -> Result<Summary, ScoreFileError> {
    let rules = config.rules()?;
    let model = ModelSource::from_args(args)?.load()?;
    tracing::info!(
        model_name = model.name(),
        model_version = model.version_number(),
        input = %args.input.display(),
        "score-file starting"
    );
    let (mut reader, input_bytes) = open_input(&args.input)?;
    let format = match args.input_format {
        InputFormat::Auto => sniff(&mut reader).map_err(|source| ScoreFileError::Input {
            path: args.input.clone(),
            source,
        })?,
        given => given,
    };
    let prefix = args
        .id_prefix
        .clone()
        .unwrap_or_else(|| default_prefix(format).to_owned());
    let mut sink = Sink::create(args)?;
    let progress = progress_bar(input_bytes);
    let mut scorer = RowScorer {
        model: &model,
        rules,
        prefix,
        default_event_time: now_ms(),
    };
    let started = Instant::now();
    let read = if format == InputFormat::Jsonl {
        score_jsonl(reader, &mut scorer, &mut sink, &progress)
    } else {
        score_delimited(reader, format, &mut scorer, &mut sink, &progress)
    };
    progress.finish_and_clear();
    read.map_err(|e| match e {
        RowsError::Input(source) => ScoreFileError::Input {
            path: args.input.clone(),
            source,
        },
        RowsError::MissingColumn(column) => ScoreFileError::MissingColumn {
            path: args.input.clone(),
            column,
        },
        RowsError::Output(e) => e,
    })?;
    let mut summary = sink.finish()?;
    summary.elapsed = started.elapsed();
    summary.model_version = model.version_number();
    tracing::info!(
        rows = summary.rows,
        scored = summary.scored,
        rejected = summary.rejected_total(),
        elapsed_ms = summary.elapsed.as_millis() as u64,
        "score-file done"
    );
    Ok(summary)
}

fn default_prefix(format: InputFormat) -> &'static str {
    match format {
        InputFormat::Auto | InputFormat::Uci => "cleveland-",
        InputFormat::Csv => "csv-",
        InputFormat::Jsonl => "jsonl-",
    }
}

fn open_input(path: &Path) -> Result<(Box<dyn BufRead>, Option<u64>), ScoreFileError> {
    if path == Path::new("-") {
        return Ok((
            Box::new(BufReader::with_capacity(BUFFER_BYTES, io::stdin())),
            None,
        ));
    }
    let fail = |source| ScoreFileError::Input {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(fail)?;
    let len = file.metadata().ok().map(|m| m.len());
    Ok((Box::new(BufReader::with_capacity(BUFFER_BYTES, file)), len))
}

/// Decides the format from the first bytes, without consuming them: JSONL if the first
/// non-blank character is `{`, UCI if the first cell is a number, CSV (with a header) otherwise.
fn sniff(reader: &mut dyn BufRead) -> io::Result<InputFormat> {
    let head = reader.fill_buf()?;
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    let head = &head[start..];
    if head.first() == Some(&b'{') {
        return Ok(InputFormat::Jsonl);
    }
    let end = head
        .iter()
        .position(|&b| b == b',' || b == b'\n' || b == b'\r')
        .unwrap_or(head.len());
    let first = String::from_utf8_lossy(&head[..end]);
    let first = first.trim().trim_matches('"');
    Ok(if head.is_empty() || first.parse::<f64>().is_ok() {
        InputFormat::Uci
    } else {
        InputFormat::Csv
    })
}

fn progress_bar(len: Option<u64>) -> ProgressBar {
    let target = if io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(len, target);
    let template = if len.is_some() {
        "{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} ({bytes_per_sec}) {msg}"
    } else {
        "{elapsed_precise} {bytes} ({bytes_per_sec}) {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// A failure while reading rows, told apart so each names the right path.
enum RowsError {
    Input(io::Error),
    MissingColumn(&'static str),
    Output(ScoreFileError),
}

impl From<ScoreFileError> for RowsError {
    fn from(e: ScoreFileError) -> Self {
        Self::Output(e)
    }
}

/// Where each attribute sits in a delimited row.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    fields: [usize; N_FIELDS],
    patient_id: Option<usize>,
    event_time: Option<usize>,
}

impl Layout {
    /// The UCI column order; a 14th column (`num`, the diagnosis) is ignored.
    fn uci() -> Self {
        Self {
            fields: std::array::from_fn(|i| i),
            patient_id: None,
            event_time: None,
        }
    }

    fn from_header(header: &csv::StringRecord) -> Result<Self, &'static str> {
        let find = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
        let mut fields = [0; N_FIELDS];
        for (slot, spec) in fields.iter_mut().zip(&FIELDS) {
            *slot = find(spec.name).ok_or(spec.name)?;
        }
        Ok(Self {
            fields,
            patient_id: find("patient_id"),
            event_time: find("event_time"),
        })
    }
}

fn score_delimited(
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
    let mut layout = Layout::uci();
    if format == InputFormat::Csv {
        if !csv.read_byte_record(&mut raw).map_err(input_error)? {
            return Ok(());
        }
        let header = csv::StringRecord::from_byte_record_lossy(raw.clone());
        layout = Layout::from_header(&header).map_err(RowsError::MissingColumn)?;
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

fn score_jsonl(
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
fn row_text(row: &csv::StringRecord) -> String {
    row.iter().collect::<Vec<_>>().join(",")
}

/// One cell of a delimited row, typed as a JSON value would be.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell<'a> {
    /// Absent, empty or `?`.
    Missing,
    Number(f64),
    /// Not a number: kept so the message can quote it.
    Text(&'a str),
}

impl<'a> Cell<'a> {
    fn parse(cell: Option<&'a str>) -> Self {
        match cell {
            None | Some("" | "?") => Self::Missing,
            Some(text) => text.parse().map_or(Self::Text(text), Self::Number),
        }
    }

    fn to_json(self) -> Value {
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
struct RowScorer<'m> {
    model: &'m Model,
    rules: Rules,
    prefix: String,
    /// The event time of rows without one: when the run started.
    default_event_time: i64,
}

impl RowScorer<'_> {
    fn delimited(
        &self,
        row: &csv::StringRecord,
        layout: &Layout,
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
    fn json(&self, text: &str, line: u64) -> Result<Result<Scored, Rejection>, String> {
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
fn fast_values(cells: &[Cell<'_>; N_FIELDS]) -> Option<[Option<f64>; N_FIELDS]> {
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

enum Output {
    Jsonl(BufWriter<Box<dyn Write>>),
    Csv(Box<csv::Writer<Box<dyn Write>>>),
}

/// One line of the rejects file.
#[derive(Serialize)]
struct RejectLine<'a> {
    line: u64,
    reason: &'a str,
    message: &'a str,
    row: &'a str,
}

/// The outputs and the counts.
struct Sink {
    output: Output,
    output_path: PathBuf,
    rejects: Option<(BufWriter<File>, PathBuf)>,
    summary: Summary,
}

impl Sink {
    fn create(args: &ScoreFileArgs) -> Result<Self, ScoreFileError> {
        let out_fail = |source| ScoreFileError::Output {
            path: args.output.clone(),
            source,
        };
        let writer: Box<dyn Write> = if args.output == Path::new("-") {
            Box::new(io::stdout().lock())
        } else {
            Box::new(File::create(&args.output).map_err(out_fail)?)
        };
        let output = match args.output_format() {
            OutputFormat::Jsonl => Output::Jsonl(BufWriter::with_capacity(BUFFER_BYTES, writer)),
            OutputFormat::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .buffer_capacity(BUFFER_BYTES)
                    .from_writer(writer);
                w.write_record(CSV_HEADER)
                    .map_err(|e| out_fail(io::Error::other(e)))?;
                Output::Csv(Box::new(w))
            }
        };
        let rejects = match &args.rejects {
            Some(path) => {
                let file = File::create(path).map_err(|source| ScoreFileError::Output {
                    path: path.clone(),
                    source,
                })?;
                Some((BufWriter::new(file), path.clone()))
            }
            None => None,
        };
        Ok(Self {
            output,
            output_path: args.output.clone(),
            rejects,
            summary: Summary::default(),
        })
    }

    fn write(
        &mut self,
        line: u64,
        outcome: Result<Scored, Rejection>,
        row: impl FnOnce() -> String,
    ) -> Result<(), ScoreFileError> {
        match outcome {
            Ok(scored) => self.prediction(&scored.prediction),
            Err(rejection) => {
                self.reject(line, rejection.reason.code(), &rejection.message, &row())
            }
        }
    }

    fn prediction(&mut self, p: &Prediction) -> Result<(), ScoreFileError> {
        self.summary.rows += 1;
        self.summary.scored += 1;
        let level = RiskLevel::ALL.iter().position(|l| *l == p.risk_level);
        if let Some(count) = level.and_then(|i| self.summary.levels.get_mut(i)) {
            *count += 1;
        }
        for field in p.imputed_fields.indices() {
            self.summary.imputed[field] += 1;
        }
        let written = match &mut self.output {
            Output::Jsonl(w) => serde_json::to_writer(&mut *w, p)
                .map_err(io::Error::from)
                .and_then(|()| w.write_all(b"\n")),
            Output::Csv(w) => w.serialize(CsvRow::from(p)).map_err(io::Error::other),
        };
        written.map_err(|source| ScoreFileError::Output {
            path: self.output_path.clone(),
            source,
        })
    }

    fn reject(
        &mut self,
        line: u64,
        code: &'static str,
        message: &str,
        row: &str,
    ) -> Result<(), ScoreFileError> {
        self.summary.rows += 1;
        *self.summary.rejected.entry(code).or_default() += 1;
        tracing::debug!(line, reason = code, "row rejected");
        let Some((w, path)) = &mut self.rejects else {
            return Ok(());
        };
        let entry = RejectLine {
            line,
            reason: code,
            message,
            row,
        };
        serde_json::to_writer(&mut *w, &entry)
            .map_err(io::Error::from)
            .and_then(|()| w.write_all(b"\n"))
            .map_err(|source| ScoreFileError::Output {
                path: path.clone(),
                source,
            })
    }

    fn finish(self) -> Result<Summary, ScoreFileError> {
        let flushed = match self.output {
            Output::Jsonl(mut w) => w.flush(),
            Output::Csv(mut w) => w.flush(),
        };
        flushed.map_err(|source| ScoreFileError::Output {
            path: self.output_path.clone(),
            source,
        })?;
        if let Some((mut w, path)) = self.rejects {
            w.flush()
                .map_err(|source| ScoreFileError::Output { path, source })?;
        }
        Ok(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use heart_schemas::{AvroRecord, Reason};

    use super::*;
    use crate::score::tests::{model, record};

    const HEADER: &str = "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal";

    fn scorer(m: &Model) -> RowScorer<'_> {
        RowScorer {
            model: m,
            rules: Rules::default(),
            prefix: "p-".into(),
            default_event_time: 42,
        }
    }

    fn row(text: &str) -> csv::StringRecord {
        csv::StringRecord::from(text.split(',').map(str::trim).collect::<Vec<_>>())
    }

    /// What the stream's dead-letter path says about `record` (encoded, then scored from bytes).
    fn stream_rejection(m: &Model, record: &PatientRecord) -> Rejection {
        let bytes = record.encode().unwrap();
        crate::score::score_bytes(m, &Rules::default(), Some(&bytes), 0).unwrap_err()
    }

    #[test]
    fn sniffing_tells_jsonl_uci_and_csv_apart() {
        let sniffed = |text: &str| sniff(&mut io::Cursor::new(text.as_bytes())).unwrap();
        assert_eq!(sniffed("\n  {\"age\": 1}\n"), InputFormat::Jsonl);
        assert_eq!(sniffed("63.0,1.0,1.0\n"), InputFormat::Uci);
        assert_eq!(sniffed("\u{feff}age,sex\n"), InputFormat::Csv);
        assert_eq!(sniffed("patient_id,age\n"), InputFormat::Csv);
        assert_eq!(sniffed(""), InputFormat::Uci);
    }

    #[test]
    fn a_uci_row_scores_like_the_record_it_holds() {
        let m = model(4, 1.0);
        let s = scorer(&m);
        let scored = s
            .delimited(
                &row("63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0"),
                &Layout::uci(),
                7,
            )
            .unwrap();
        let want = PatientRecord {
            patient_id: "p-7".into(),
            event_time: 42,
            ..record()
        };
        assert_eq!(scored.prediction.patient_id, "p-7");
        assert_eq!(scored.prediction.event_time, 42);
        assert_eq!(scored.prediction.probability, m.predict(&want).probability);
        assert_eq!(scored.prediction.model_version, 4);
    }

    #[test]
    fn a_bad_value_gets_the_dead_letter_reason_and_message() {
        let m = model(1, 1.0);
        let s = scorer(&m);
        let err = s
            .delimited(
                &row("500,1,1,145,233,1,2,150,0,2.3,3,?,9"),
                &Layout::uci(),
                2,
            )
            .unwrap_err();
        let stream = stream_rejection(
            &m,
            &PatientRecord {
                age: Some(500),
                ca: None,
                thal: Some(9),
                ..record()
            },
        );
        assert_eq!(err, stream);
        assert_eq!(err.reason, Reason::OutOfRange);
        assert_eq!(
            err.message,
            "age = 500 is outside the allowed range 1..=120; thal = 9 is not one of the allowed codes [3, 6, 7]"
        );
    }

    #[test]
    fn missing_and_mistyped_cells_are_named() {
        let m = model(1, 1.0);
        let s = scorer(&m);
        let err = s
            .delimited(
                &row("63,1,1.5,145,lots,1,2,150,0,2.3,3,0"),
                &Layout::uci(),
                2,
            )
            .unwrap_err();
        assert_eq!(err.reason, Reason::MissingField);
        assert_eq!(
            err.message,
            "cp = 1.5 is not an integer; chol = \"lots\" is not a number"
        );
        // A row cut short lacks ten attributes: more than the policy imputes.
        let err = s
            .delimited(&row("63,1,1,?"), &Layout::uci(), 2)
            .unwrap_err();
        assert_eq!(err.reason, Reason::TooManyMissing);
        assert!(
            err.message.starts_with("missing trestbps, chol, fbs"),
            "{}",
            err.message
        );
        // `?` for slope, ca and thal is imputed and named.
        let scored = s
            .delimited(
                &row("63,1,1,145,233,1,2,150,0,2.3,?,?,?"),
                &Layout::uci(),
                3,
            )
            .unwrap();
        assert_eq!(
            scored.prediction.imputed_fields.to_string(),
            "slope, ca, thal"
        );
    }

    #[test]
    fn a_csv_header_maps_columns_and_names_a_missing_one() {
        let header = row(&format!("event_time,patient_id,{HEADER}"));
        let layout = Layout::from_header(&header).unwrap();
        let m = model(1, 1.0);
        let scored = scorer(&m)
            .delimited(
                &row("5,alice,63,1,1,145,233,1,2,150,0,2.3,3,0,6"),
                &layout,
                2,
            )
            .unwrap();
        assert_eq!(
            (
                scored.prediction.patient_id.as_str(),
                scored.prediction.event_time
            ),
            ("alice", 5)
        );
        let err = scorer(&m)
            .delimited(&row("soon,,63,1,1,145,233,1,2,150,0,2.3,3,0,6"), &layout, 3)
            .unwrap_err();
        assert_eq!(err.reason, Reason::MissingField);
        assert!(err.message.contains("event_time"), "{}", err.message);
        assert_eq!(Layout::from_header(&row("age,sex")), Err("cp"));
    }

    #[test]
    fn a_json_line_is_validated_like_predict_and_a_non_object_is_malformed() {
        let m = model(1, 1.0);
        let s = scorer(&m);
        let line = serde_json::to_string(&record()).unwrap();
        let scored = s.json(&line, 1).unwrap().unwrap();
        assert_eq!(scored.prediction.patient_id, "p-1");
        let err = s.json(r#"{"age": 63}"#, 2).unwrap().unwrap_err();
        assert_eq!(err.reason, Reason::TooManyMissing);
        assert!(
            err.message.contains("sex, cp may never be imputed"),
            "{}",
            err.message
        );
        assert_eq!(s.json("[1]", 3).unwrap_err(), "not a JSON object");
        assert!(
            s.json("{oops", 4)
                .unwrap_err()
                .starts_with("not JSON (column 2)")
        );
    }

    #[test]
    fn csv_header_names_the_prediction_fields_in_order() {
        let p = score_decoded(&model(1, 1.0), &Rules::default(), Ok(record()), 0)
            .unwrap()
            .prediction;
        let json = serde_json::to_value(&p).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = CSV_HEADER.to_vec();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        let mut w = csv::WriterBuilder::new()
            .has_headers(true)
            .from_writer(vec![]);
        w.serialize(CsvRow::from(&p)).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert!(text.starts_with(&CSV_HEADER.join(",")), "{text}");
    }

    #[test]
    fn the_summary_lists_levels_and_reasons() {
        let summary = Summary {
            rows: 10,
            scored: 7,
            rejected: BTreeMap::from([("out_of_range", 2), (MALFORMED_ROW, 1)]),
            levels: [3, 2, 2],
            imputed: [0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 0],
            elapsed: Duration::from_millis(500),
            model_version: 3,
        };
        let text = summary.to_string();
        assert!(text.contains("imputed  chol 2, ca 1"), "{text}");
        assert!(
            text.contains("10 rows in 0.500 s (20 rows/s), model version 3"),
            "{text}"
        );
        assert!(
            text.contains("scored   7 (LOW 3, MEDIUM 2, HIGH 2)"),
            "{text}"
        );
        assert!(
            text.contains("rejected 3 (malformed_row 1, out_of_range 2)"),
            "{text}"
        );
    }
}
