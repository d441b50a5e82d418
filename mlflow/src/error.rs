//! What can go wrong talking to MLflow, and with the flags that say where it is.

use std::path::PathBuf;

use thiserror::Error;

/// A call to the MLflow tracking server failed.
#[derive(Debug, Error)]
pub enum MlflowError {
    /// No HTTP answer (server down, wrong URL, timeout).
    #[error(
        "mlflow at {url} is unreachable ({operation}): {detail}; start it (scripts/mlflow start) or fix --mlflow-uri / MLFLOW_TRACKING_URI"
    )]
    Unreachable {
        /// The server's base URL.
        url: String,
        /// What we were doing.
        operation: &'static str,
        /// ureq's error text.
        detail: String,
    },
    /// The server answered with an error status.
    #[error("mlflow {operation}: HTTP {status} {code}: {message}")]
    Http {
        /// What we were doing.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// MLflow's `error_code`, e.g. `RESOURCE_DOES_NOT_EXIST` (empty if none).
        code: String,
        /// MLflow's message, or the start of the body.
        message: String,
    },
    /// The answer is not the JSON expected.
    #[error("mlflow {operation}: unexpected answer: {detail}")]
    Decode {
        /// What we were doing.
        operation: &'static str,
        /// What did not parse.
        detail: String,
    },
    /// An artifact URI the server's artifact proxy does not serve.
    #[error(
        "artifact uri {0:?} is not an mlflow-artifacts: uri (start the server with --serve-artifacts)"
    )]
    ArtifactUri(String),
    /// The registered model's `model.avro` is not a model version.
    #[error("{uri}: its model.avro is not an Avro ModelVersion")]
    ModelFile {
        /// The `models:/NAME@ALIAS` reference.
        uri: String,
        /// The decode error.
        source: heart_schemas::DecodeError,
    },
    /// A local file to upload could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl MlflowError {
    /// Whether the server said the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Http { status: 404, .. })
            || matches!(self, Self::Http { code, .. } if code == "RESOURCE_DOES_NOT_EXIST")
    }

    /// Whether a `models:/NAME@ALIAS` lookup failed because there is no such alias (or model).
    /// MLflow 3 answers a missing alias of an existing model with 400 `INVALID_PARAMETER_VALUE`
    /// ("Registered model alias … not found"), not with a 404.
    pub fn is_missing_alias(&self) -> bool {
        self.is_not_found()
            || matches!(self, Self::Http { status: 400, code, message, .. }
                if code == "INVALID_PARAMETER_VALUE" && message.contains("alias") && message.contains("not found"))
    }
}

/// An MLflow flag that parsed but breaks a rule.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A timeout of zero would never succeed.
    #[error("--mlflow-timeout-ms must be positive")]
    ZeroTimeout,
    /// The tracking URI must be an HTTP(S) server (file stores are not supported).
    #[error(
        "--mlflow-uri / MLFLOW_TRACKING_URI must be an http:// or https:// tracking server, got {0:?}"
    )]
    Uri(String),
    /// `--from-mlflow` without a server to read from.
    #[error("--from-mlflow needs --mlflow-uri (or MLFLOW_TRACKING_URI)")]
    FromMlflowNeedsUri,
    /// `--from-mlflow` is not a `models:/NAME@ALIAS` reference.
    #[error("--from-mlflow {0:?} is not a models:/NAME@ALIAS reference")]
    ModelUri(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, code: &str, message: &str) -> MlflowError {
        MlflowError::Http {
            operation: "get model version by alias",
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_missing_alias_is_told_from_a_bad_request() {
        // What MLflow 3.17 answers for an alias that was deleted from an existing model.
        let gone = http(
            400,
            "INVALID_PARAMETER_VALUE",
            "Registered model alias challenger not found.",
        );
        assert!(gone.is_missing_alias() && !gone.is_not_found());
        assert!(http(404, "RESOURCE_DOES_NOT_EXIST", "no model").is_missing_alias());
        assert!(!http(400, "INVALID_PARAMETER_VALUE", "bad name").is_missing_alias());
        assert!(!http(500, "INTERNAL_ERROR", "alias not found").is_missing_alias());
    }
}
