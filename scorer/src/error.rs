//! Why the scorer stopped.

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use crate::config::ConfigError;
use crate::consume::ConsumeError;
use crate::model_updates::ModelUpdatesError;

/// A reason the scorer exits non-zero.
#[derive(Debug, Error)]
pub enum RunError {
    /// The configuration is inconsistent.
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    /// Metrics could not be registered.
    #[error("metrics registry")]
    Metrics(#[from] prometheus::Error),
    /// The sidecar could not listen.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The sidecar failed.
    #[error("http server")]
    Http(#[source] std::io::Error),
    /// `--model-file` could not be used.
    #[error("model file {path}: {detail}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Following the models topic failed.
    #[error(transparent)]
    ModelUpdates(#[from] ModelUpdatesError),
    /// The consume pipeline failed.
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    /// Draining took longer than allowed.
    #[error("drain did not finish within {ms} ms")]
    DrainTimeout {
        /// The bound.
        ms: u64,
    },
    /// A thread could not be started.
    #[error("cannot start a thread")]
    Thread(#[source] std::io::Error),
    /// A task panicked.
    #[error("task {task} panicked")]
    Panicked {
        /// Which task.
        task: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_lists_every_source_once() {
        let err = RunError::Http(std::io::Error::other("port taken"));
        assert_eq!(
            heart_kafka::telemetry::chain(&err),
            "http server: port taken"
        );
    }
}
