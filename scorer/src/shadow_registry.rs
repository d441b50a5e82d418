//! The challenger from the MLflow model registry (`--shadow-from-mlflow models:/NAME@ALIAS`):
//! the alias is looked up at start and every `--shadow-refresh-ms`; when it names another
//! version, that version's model file is downloaded, verified like any model and put in the
//! store's shadow slot; when the alias is removed, the slot is emptied. A failed lookup keeps
//! the shadow that is loaded: the champion's predictions never wait on MLflow.

use std::time::Duration;

use heart_mlflow::registered::{self, ModelUri};
use heart_mlflow::{Client, MlflowError};
use heart_model::Model;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::model_store::ModelStore;

/// Follows `uri` until `token` is cancelled. Blocking: call from a thread of its own.
pub fn run(
    uri: &ModelUri,
    client: &Client,
    refresh: Duration,
    store: &ModelStore,
    metrics: &Metrics,
    token: &CancellationToken,
) {
    let mut loaded: Option<String> = None;
    loop {
        if let Err(error) = refresh_once(uri, client, store, &mut loaded) {
            metrics.shadow_refresh_failures.inc();
            tracing::warn!(
                registered_model = %uri.name,
                alias = %uri.alias,
                error = %heart_kafka::telemetry::chain(&error),
                next_try_ms = refresh.as_millis() as u64,
                "cannot refresh the shadow model from MLflow; the loaded shadow (if any) stays"
            );
        }
        if !crate::consume::sleep_unless_cancelled(refresh, token) {
            return;
        }
    }
}

/// Why a lookup did not change the shadow.
#[derive(Debug, thiserror::Error)]
enum RefreshError {
    #[error("MLflow")]
    Mlflow(#[from] MlflowError),
    #[error("registered version {version} does not verify")]
    Rejected {
        version: String,
        #[source]
        source: heart_model::ModelLoadError,
    },
    #[error("registered version {0:?} is not a number")]
    Version(String),
}

/// One lookup: `loaded` is the registry version in the shadow slot.
fn refresh_once(
    uri: &ModelUri,
    client: &Client,
    store: &ModelStore,
    loaded: &mut Option<String>,
) -> Result<(), RefreshError> {
    let info = match client.model_version_by_alias(&uri.name, &uri.alias) {
        Ok(info) => info,
        Err(e) if e.is_missing_alias() => {
            if loaded.take().is_some() {
                store.set_shadow(None);
                tracing::info!(registered_model = %uri.name, alias = %uri.alias, "the alias is gone; shadow model unloaded");
            }
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    if loaded.as_deref() == Some(info.version.as_str()) {
        return Ok(());
    }
    let reference = format!("models:/{}@{}", uri.name, uri.alias);
    let registered = registered::fetch(client, &reference)?;
    let number: i64 = registered
        .info
        .version
        .parse()
        .map_err(|_| RefreshError::Version(registered.info.version.clone()))?;
    // Not on the models topic, so no topic version: the predictions name the registry's.
    let version = heart_schemas::ModelVersion {
        version: number,
        ..registered.version
    };
    let model = Model::load(version).map_err(|source| RefreshError::Rejected {
        version: registered.info.version.clone(),
        source,
    })?;
    store.set_shadow(Some(model));
    tracing::info!(
        registered_model = %uri.name,
        alias = %uri.alias,
        model_version = number,
        run_id = %registered.info.run_id,
        "shadow model loaded from MLflow"
    );
    *loaded = Some(registered.info.version);
    Ok(())
}
