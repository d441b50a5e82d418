//! The flags that say where the tracking server is and how to authenticate, shared by every
//! binary that talks to MLflow.

use std::time::Duration;

use clap::Args;

use crate::client::{Auth, Client};
use crate::error::ConfigError;

/// Where the MLflow tracking server is and how to authenticate to it (MLflow's own variable
/// names where it has them).
#[derive(Debug, Clone, Args)]
pub struct MlflowConnection {
    /// MLflow tracking server, e.g. http://127.0.0.1:5000 (started with --serve-artifacts).
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub mlflow_uri: Option<String>,
    /// Bound on each MLflow request, milliseconds.
    #[arg(long, env = "MLFLOW_TIMEOUT_MS", default_value_t = 30_000)]
    pub mlflow_timeout_ms: u64,
    /// Bearer token (takes precedence over username and password).
    #[arg(long, env = "MLFLOW_TRACKING_TOKEN", hide_env_values = true)]
    pub mlflow_token: Option<String>,
    /// User for HTTP basic authentication.
    #[arg(long, env = "MLFLOW_TRACKING_USERNAME")]
    pub mlflow_username: Option<String>,
    /// Password for HTTP basic authentication.
    #[arg(long, env = "MLFLOW_TRACKING_PASSWORD", hide_env_values = true)]
    pub mlflow_password: Option<String>,
}

impl MlflowConnection {
    /// Checks the values clap cannot.
    ///
    /// # Errors
    /// A zero timeout, or a URI that is not http(s).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mlflow_timeout_ms == 0 {
            return Err(ConfigError::ZeroTimeout);
        }
        if let Some(uri) = &self.mlflow_uri
            && !(uri.starts_with("http://") || uri.starts_with("https://"))
        {
            return Err(ConfigError::Uri(uri.clone()));
        }
        Ok(())
    }

    /// Checks a `--from-mlflow` reference against these flags.
    ///
    /// # Errors
    /// The reference is malformed, or there is no server to read it from.
    pub fn validate_from(&self, uri: &str) -> Result<(), ConfigError> {
        crate::registered::ModelUri::parse(uri)?;
        if self.mlflow_uri.is_none() {
            return Err(ConfigError::FromMlflowNeedsUri);
        }
        Ok(())
    }

    /// A client for the configured server, if any.
    pub fn client(&self) -> Option<Client> {
        let uri = self.mlflow_uri.as_deref()?;
        Some(Client::new(
            uri,
            self.auth(),
            Duration::from_millis(self.mlflow_timeout_ms),
        ))
    }

    /// The credentials from the flags (token first).
    pub fn auth(&self) -> Auth {
        match (
            &self.mlflow_token,
            &self.mlflow_username,
            &self.mlflow_password,
        ) {
            (Some(token), _, _) => Auth::Token(token.clone()),
            (None, Some(username), password) => Auth::Basic {
                username: username.clone(),
                password: password.clone().unwrap_or_default(),
            },
            _ => Auth::None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn connection(uri: Option<&str>) -> MlflowConnection {
        MlflowConnection {
            mlflow_uri: uri.map(str::to_owned),
            mlflow_timeout_ms: 1000,
            mlflow_token: None,
            mlflow_username: Some("u".into()),
            mlflow_password: None,
        }
    }

    #[test]
    fn only_http_servers_and_positive_timeouts_pass() {
        assert_eq!(connection(Some("http://h:5000")).validate(), Ok(()));
        assert_eq!(
            connection(Some("./mlruns")).validate(),
            Err(ConfigError::Uri("./mlruns".into()))
        );
        let mut zero = connection(None);
        zero.mlflow_timeout_ms = 0;
        assert_eq!(zero.validate(), Err(ConfigError::ZeroTimeout));
    }

    #[test]
    fn from_mlflow_needs_a_reference_and_a_server() {
        assert_eq!(
            connection(None).validate_from("models:/m@champion"),
            Err(ConfigError::FromMlflowNeedsUri)
        );
        assert!(matches!(
            connection(Some("http://h")).validate_from("models:/m"),
            Err(ConfigError::ModelUri(_))
        ));
        assert!(connection(None).client().is_none());
        assert!(matches!(
            connection(Some("http://h")).auth(),
            Auth::Basic { password, .. } if password.is_empty()
        ));
    }
}
