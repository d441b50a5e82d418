//! The contract between the processes of heart-risk: everything that crosses a Kafka topic or an
//! HTTP body is defined here, so that producer, scorer and trainer cannot disagree.
//!
//! ```text
//! producer ──PatientRecord──▶ [patients] ──▶ scorer ──Prediction──▶ [predictions]
//!                                              │  └──DeadLetter───▶ [dead-letters]
//! trainer ──ModelVersion──▶ [models, compacted] ─┘
//! ```
//!
//! # Layout
//! - [`patient`]: [`PatientRecord`], the 13 UCI attributes, their allowed values ([`FIELDS`]) and
//!   validation that names the field, the value and the allowed range.
//! - [`columns`]: [`ColumnLayout`], where the attributes sit in a delimited file's rows.
//! - [`imputation`]: [`FieldSet`] of missing attributes and the [`ImputationPolicy`] deciding
//!   which a scorer fills in ([`TooManyMissing`] otherwise).
//! - [`prediction`]: [`Prediction`], [`RiskLevel`] and the [`RiskThresholds`] that map a
//!   probability to a level.
//! - [`dead_letter`]: [`DeadLetter`] and the closed set of [`Reason`] codes.
//! - [`model`]: [`ModelVersion`], the envelope a trained model travels in.
//! - [`codec`]: Avro single-object encoding of all of the above ([`AvroRecord`]); `binary` holds
//!   hand-written readers and writers for the two hot-path records.
//! - [`canonical`]: the specification's Parsing Canonical Form and CRC-64-AVRO fingerprint, which
//!   name a schema in a single-object header.
//! - [`framing`]: the headers in front of a body, single-object or Confluent ([`Framing`] to
//!   write, [`Framed`] read).
//! - [`writer_schema`]: [`WriterSchema`], a registry's schema for a record, read as ours by Avro
//!   schema resolution (or by the fast decoder when it is ours).
//! - [`topics`]: default topic names and header names.
//! - [`error`]: [`DecodeError`], [`EncodeError`].

mod binary;
pub mod canonical;
pub mod codec;
pub mod columns;
pub mod dead_letter;
pub mod error;
pub mod explanation;
pub mod framing;
pub mod imputation;
pub mod model;
pub mod patient;
pub mod prediction;
pub mod topics;
pub mod trace;
pub mod writer_schema;

pub use codec::AvroRecord;
pub use columns::ColumnLayout;
pub use dead_letter::{DeadLetter, Reason};
pub use error::{DecodeError, EncodeError};
pub use explanation::{Contribution, Explanation, OutputSpace};
pub use framing::{Framed, Framing};
pub use imputation::{FieldSet, ImputationPolicy, TooManyMissing};
pub use model::ModelVersion;
pub use patient::{
    Encoding, FIELDS, FieldKind, FieldSpec, Invalid, N_FIELDS, PatientRecord, Problem, Violation,
};
pub use prediction::{Prediction, RiskLevel, RiskThresholds, ThresholdError};
pub use trace::{SpanIds, TraceParent};
pub use writer_schema::WriterSchema;

/// Milliseconds since the Unix epoch: the clock of every record's timestamps (`event_time`,
/// `scored_at`, `failed_at`, `created_at`).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
