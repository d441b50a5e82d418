//! The producer: the start of heart-risk's data flow, and the reference client at its end.
//!
//! ```text
//! producer send ──PatientRecord (Avro)──▶ [patients] ──▶ scorer ──▶ [predictions] ──▶ producer tail
//!   (uci | csv | jsonl | synthetic,                                  [dead-letters] ──┘ (--dead-letters)
//!    paced, with optional malformed records)
//! ```
//!
//! # Layout
//! - [`config`]: the command line ([`Config`]), its validation, and the two client configurations,
//!   built by heart-kafka's `client_config` (an idempotent producer for `send`, a read_committed
//!   follower for `tail`).
//! - `source/`: where patients come from: `uci`, `csv`, `jsonl` files and the seeded `synthetic`
//!   generator.
//! - `invalid`: malformed records for the dead-letter path, and the [`Reason`] each should get.
//! - `rate`: the drift-free pacer behind `--rate`.
//! - `send`: the idempotent producer loop, its bounded flush on shutdown, and its report
//!   ([`SendSummary`]).
//! - `tail`: the read-committed consumer of predictions and its summary ([`TailSummary`]).
//! - `stats`: latency percentiles.
//! - [`error`]: one error enum per operation.
//!
//! [`Reason`]: heart_schemas::Reason

pub mod config;
pub mod error;
mod invalid;
mod rate;
mod send;
pub mod shift;
mod source;
mod stats;
mod tail;

pub use config::Config;
pub use error::Error;
pub use invalid::InvalidKind;
pub use send::SendSummary;
pub use stats::LatencySummary;
pub use tail::TailSummary;
use tokio_util::sync::CancellationToken;

/// What a run did.
#[derive(Debug)]
pub enum Outcome {
    /// `send` finished; failed and unacknowledged deliveries are counted, not errors.
    Sent(SendSummary),
    /// `tail` finished.
    Tailed(TailSummary),
}

/// Validates the configuration and runs its subcommand until done or `shutdown` is cancelled
/// (`send` then flushes within `--flush-timeout-ms`; both still return their summary).
///
/// # Errors
/// An invalid configuration, or whatever [`error::SendError`] / [`error::TailError`] stopped the
/// subcommand.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Outcome, Error> {
    config.validate()?;
    tracing::info!(kafka = %config.kafka.connection.redacted(), "starting");
    match &config.command {
        config::Command::Send(args) => Ok(Outcome::Sent(
            send::run(&config.kafka, config.registry()?, args, shutdown).await?,
        )),
        config::Command::Tail(args) => Ok(Outcome::Tailed(
            tail::run(&config.kafka, config.registry()?, args, shutdown).await?,
        )),
    }
}
