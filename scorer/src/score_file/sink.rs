//! Writing predictions (JSONL or CSV) and rejected rows, and counting both.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use heart_schemas::{Prediction, RiskLevel};
use serde::Serialize;

use super::{BUFFER_BYTES, ScoreFileError, Summary};
use crate::config::{OutputFormat, ScoreFileArgs};
use crate::score::{Rejection, Scored};

/// The columns of a CSV output, in [`Prediction`]'s field order.
pub(super) const CSV_HEADER: [&str; 9] = [
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
pub(super) struct CsvRow<'a> {
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

pub(super) enum Output {
    Jsonl(BufWriter<Box<dyn Write>>),
    Csv(Box<csv::Writer<Box<dyn Write>>>),
}

/// One line of the rejects file.
#[derive(Serialize)]
pub(super) struct RejectLine<'a> {
    line: u64,
    reason: &'a str,
    message: &'a str,
    row: &'a str,
}

/// The outputs and the counts.
pub(super) struct Sink {
    output: Output,
    output_path: PathBuf,
    rejects: Option<(BufWriter<File>, PathBuf)>,
    pub(super) summary: Summary,
}

impl Sink {
    pub(super) fn create(args: &ScoreFileArgs) -> Result<Self, ScoreFileError> {
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

    pub(super) fn write(
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

    pub(super) fn prediction(&mut self, p: &Prediction) -> Result<(), ScoreFileError> {
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

    pub(super) fn reject(
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

    pub(super) fn finish(self) -> Result<Summary, ScoreFileError> {
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
