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
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use heart_mlflow::MlflowConnection;
use heart_model::Model;
use heart_schemas::{AvroRecord, FIELDS, ModelVersion, N_FIELDS, RiskLevel, now_ms};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use thiserror::Error;

mod rows;
mod sink;

use crate::config::{Config, InputFormat, ScoreFileArgs};
use rows::{RowScorer, RowsError, score_delimited, score_jsonl};
use sink::Sink;

/// Reject code of a line that is not a row: not a JSON object, or not UTF-8.
pub const MALFORMED_ROW: &str = "malformed_row";

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

#[cfg(test)]
mod tests {
    use heart_schemas::{AvroRecord, ColumnLayout, PatientRecord, Reason};

    use super::rows::*;
    use super::sink::*;
    use super::*;
    use crate::score::tests::{model, record};
    use crate::score::{Rejection, Rules, score_decoded};

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
                &ColumnLayout::uci(),
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
                &ColumnLayout::uci(),
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
                &ColumnLayout::uci(),
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
            .delimited(&row("63,1,1,?"), &ColumnLayout::uci(), 2)
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
                &ColumnLayout::uci(),
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
        let layout = ColumnLayout::from_header(&header).unwrap();
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
        assert_eq!(ColumnLayout::from_header(&row("age,sex")), Err("cp"));
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
