//! The one logging convention of all three binaries: `RUST_LOG` picks what is logged,
//! `--log-format` / `LOG_FORMAT` how (JSON lines for machines, text for people).

use std::io::IsTerminal;

use clap::ValueEnum;
use thiserror::Error;

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// The logging flags every binary flattens in.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log format; the level comes from RUST_LOG (e.g. `info`, `debug,rdkafka=warn`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,
}

/// Logging could not be set up.
#[derive(Debug, Error)]
pub enum TelemetryError {
    /// RUST_LOG does not parse.
    #[error("RUST_LOG={value:?} is not a valid filter (e.g. `info` or `info,heart_scorer=debug`)")]
    Filter {
        /// The value.
        value: String,
        /// Why.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A subscriber is already installed.
    #[error("a log subscriber is already installed")]
    AlreadySet,
}

/// Installs the global subscriber. `default_filter` applies when RUST_LOG is unset.
///
/// # Errors
/// [`TelemetryError`] for an unparsable RUST_LOG.
pub fn init(args: &LogArgs, default_filter: &str) -> Result<(), TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => tracing_subscriber::EnvFilter::try_new(&value)
            .map_err(|source| TelemetryError::Filter { value, source })?,
        _ => tracing_subscriber::EnvFilter::new(default_filter),
    };
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal)
        .with_writer(std::io::stderr);
    let json = match args.log_format {
        LogFormat::Auto => !terminal,
        LogFormat::Json => true,
        LogFormat::Text => false,
    };
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    }
    .map_err(|_| TelemetryError::AlreadySet)
}

/// An error and all its sources, `outer: inner: innermost`, for log fields and messages that
/// are not printed through anyhow's `{:#}`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Lets one event through per interval and counts the rest, so a client error repeated on
/// every poll while a broker is away makes one log line per interval, not thousands.
#[derive(Debug)]
pub struct Throttle {
    interval: std::time::Duration,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl Throttle {
    /// A throttle letting one event through per `interval`.
    pub fn new(interval: std::time::Duration) -> Self {
        Self {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when this event should be logged, `n` being how many were suppressed since
    /// the last one logged; `None` when it should not.
    pub fn allow(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        if self.last.is_some_and(|t| now - t < self.interval) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_interval_passes_with_the_count_suppressed() {
        let mut t = Throttle::new(std::time::Duration::from_secs(3600));
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        t.last = Some(std::time::Instant::now() - std::time::Duration::from_secs(7200));
        assert_eq!(t.allow(), Some(2));
    }
}
