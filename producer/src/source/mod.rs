//! Where patients come from: the UCI file, a CSV or JSONL file, or the synthetic generator.
//!
//! Files are read and validated whole before anything is sent, so a bad row stops the run with its
//! line and column instead of half-filling the topic. The malformed records of `--invalid-ratio`
//! are made elsewhere ([`crate::invalid`]); a source only yields valid patients.

pub(crate) mod csv;
pub(crate) mod jsonl;
pub(crate) mod synthetic;
pub(crate) mod uci;

use std::path::Path;

use heart_schemas::PatientRecord;

use crate::config::{SendArgs, SourceKind};
use crate::error::{SendError, SourceError};

/// Valid records the synthetic source sends without `--count`.
const DEFAULT_SYNTHETIC_COUNT: u64 = 1000;

/// One valid patient from a source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SourceRecord {
    /// The patient; its `event_time` is meaningful only when `event_time_given`.
    pub(crate) record: PatientRecord,
    /// Whether the source gave an event time; if not, the send time is used.
    pub(crate) event_time_given: bool,
}

impl SourceRecord {
    /// A record whose event time is the send time.
    pub(crate) fn untimed(record: PatientRecord) -> Self {
        Self {
            record,
            event_time_given: false,
        }
    }

    /// The record to send at `now_ms`.
    pub(crate) fn stamped(mut self, now_ms: i64) -> PatientRecord {
        if !self.event_time_given {
            self.record.event_time = now_ms;
        }
        self.record
    }
}

/// An iterator over the valid records to send.
#[derive(Debug)]
pub(crate) enum Source {
    /// Rows of a file, limited or repeated.
    File(FileRows),
    /// The generator, limited to a count.
    Synthetic {
        /// The generator (boxed: its RNG state is large).
        generator: Box<synthetic::Generator>,
        /// Records still to make.
        remaining: u64,
    },
}

impl Source {
    /// Opens the source `args` names, reading and validating a file source whole.
    ///
    /// # Errors
    /// [`SendError::Config`] without a needed path, [`SendError::Source`] for a file that cannot
    /// be read, has a bad row, or is empty.
    pub(crate) fn open(args: &SendArgs) -> Result<Self, SendError> {
        let prefix = args.id_prefix();
        let Some(path) = args.data_path()? else {
            return Ok(Self::Synthetic {
                generator: Box::new(synthetic::Generator::new(args.seed, prefix)),
                remaining: args.count.unwrap_or(DEFAULT_SYNTHETIC_COUNT),
            });
        };
        let rows = read_rows(args.source, &path, prefix)?;
        Ok(Self::File(FileRows::new(rows, args.count, args.repeat)))
    }

    /// How many records will come, if known.
    pub(crate) fn len_hint(&self) -> Option<u64> {
        match self {
            Self::File(rows) => rows.len_hint(),
            Self::Synthetic { remaining, .. } => Some(*remaining),
        }
    }
}

impl Iterator for Source {
    type Item = SourceRecord;

    fn next(&mut self) -> Option<SourceRecord> {
        match self {
            Self::File(rows) => rows.next(),
            Self::Synthetic {
                generator,
                remaining,
            } => {
                *remaining = remaining.checked_sub(1)?;
                Some(SourceRecord::untimed(generator.next_record()))
            }
        }
    }
}

/// Parses every non-blank line of a line-oriented file with `parse_line(line, content, prefix)`,
/// stopping at the first error (which names its line).
pub(crate) fn parse_lines(
    text: &str,
    prefix: &str,
    parse_line: fn(u64, &str, &str) -> Result<SourceRecord, SourceError>,
) -> Result<Vec<SourceRecord>, SourceError> {
    (1..)
        .zip(text.lines())
        .filter(|(_, content)| !content.trim().is_empty())
        .map(|(line, content)| parse_line(line, content, prefix))
        .collect()
}

fn read_rows(
    kind: SourceKind,
    path: &Path,
    prefix: &str,
) -> Result<Vec<SourceRecord>, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|source| SourceError::Read {
        path: path.to_owned(),
        source,
    })?;
    let rows = match kind {
        SourceKind::Uci => uci::parse(&text, prefix)?,
        SourceKind::Csv => csv::parse(&text, prefix)?,
        SourceKind::Jsonl => jsonl::parse(&text, prefix)?,
        SourceKind::Synthetic => Vec::new(),
    };
    if rows.is_empty() {
        return Err(SourceError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(rows)
}

/// The rows of a file: the first `count`, or with `repeat` the file over and over, renamed.
#[derive(Debug)]
pub(crate) struct FileRows {
    rows: Vec<SourceRecord>,
    /// Records still allowed; `None` = unbounded.
    remaining: Option<u64>,
    repeat: bool,
    /// Index of the next row in `rows`.
    index: usize,
    /// How many full passes are done; pass `n > 0` renames ids to `<id>~<n+1>`.
    pass: u64,
}

impl FileRows {
    /// Without `repeat`, `count` only limits (never beyond one pass); with it, `count` records
    /// are made by cycling, or forever without a count.
    pub(crate) fn new(rows: Vec<SourceRecord>, count: Option<u64>, repeat: bool) -> Self {
        let once = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        let remaining = match (count, repeat) {
            (Some(n), true) => Some(n),
            (None, true) => None,
            (n, false) => Some(n.map_or(once, |n| n.min(once))),
        };
        Self {
            rows,
            remaining,
            repeat,
            index: 0,
            pass: 0,
        }
    }

    fn len_hint(&self) -> Option<u64> {
        self.remaining
    }
}

impl Iterator for FileRows {
    type Item = SourceRecord;

    fn next(&mut self) -> Option<SourceRecord> {
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.checked_sub(1)?;
        }
        if self.index == self.rows.len() {
            if !self.repeat {
                return None;
            }
            self.index = 0;
            self.pass += 1;
        }
        let mut row = self.rows.get(self.index)?.clone();
        self.index += 1;
        if self.pass > 0 {
            row.record.patient_id = format!("{}~{}", row.record.patient_id, self.pass + 1);
        }
        Some(row)
    }
}

/// The line's patient id when the row has none.
pub(crate) fn default_id(prefix: &str, line: u64) -> String {
    format!("{prefix}{line}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The UCI file, read in place (never copied into the repo): `HEART_TEST_DATA`, else
    /// `HEART_DATA`, else its shared location.
    pub(crate) fn uci_path() -> std::path::PathBuf {
        std::env::var_os("HEART_TEST_DATA")
            .or_else(|| std::env::var_os("HEART_DATA"))
            .map_or_else(
                || {
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("..")
                        .join(crate::config::DEFAULT_DATA_PATH)
                },
                std::path::PathBuf::from,
            )
    }

    fn rows(n: usize) -> Vec<SourceRecord> {
        let text = std::fs::read_to_string(uci_path()).unwrap();
        let mut rows = uci::parse(&text, "p").unwrap();
        rows.truncate(n);
        rows
    }

    fn ids(rows: FileRows) -> Vec<String> {
        rows.map(|r| r.record.patient_id).collect()
    }

    #[test]
    fn count_limits_a_file_without_loop() {
        assert_eq!(ids(FileRows::new(rows(3), Some(2), false)), ["p1", "p2"]);
        assert_eq!(ids(FileRows::new(rows(3), Some(9), false)).len(), 3);
        assert_eq!(ids(FileRows::new(rows(3), None, false)).len(), 3);
    }

    #[test]
    fn loop_repeats_with_new_ids_until_count() {
        assert_eq!(
            ids(FileRows::new(rows(2), Some(5), true)),
            ["p1", "p2", "p1~2", "p2~2", "p1~3"]
        );
    }

    #[test]
    fn loop_without_count_is_unbounded() {
        let rows = FileRows::new(rows(2), None, true);
        assert_eq!(rows.len_hint(), None);
        assert_eq!(rows.take(1000).count(), 1000);
    }

    #[test]
    fn send_time_fills_only_missing_event_times() {
        let row = rows(1).remove(0);
        assert_eq!(row.clone().stamped(7).event_time, 7);
        let timed = SourceRecord {
            record: PatientRecord {
                event_time: 3,
                ..row.record
            },
            event_time_given: true,
        };
        assert_eq!(timed.stamped(7).event_time, 3);
    }
}
