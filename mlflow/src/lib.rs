//! A small typed client for the MLflow tracking server's REST API (`/api/2.0/mlflow/…`):
//! experiments, runs, artifacts through the server's artifact proxy (`mlflow-artifacts:` URIs)
//! and the model registry. No MLflow crate fits, so this is the whole client; it is blocking
//! (ureq), as its callers are command-line tools.
//!
//! - [`client`]: the REST calls and their typed answers.
//! - [`connection`]: the `--mlflow-*` flags every binary shares.
//! - [`registered`]: `models:/NAME@ALIAS` and the model file a registered version carries.

pub mod client;
pub mod connection;
pub mod error;
pub mod registered;

pub use client::{Auth, Client};
pub use connection::MlflowConnection;
pub use error::{ConfigError, MlflowError};
pub use registered::{ModelUri, Registered};
