//! The scorer: consumes Avro patient records, scores them with the newest verified model and
//! produces predictions (or dead letters), exactly once; an axum sidecar in the same process
//! serves health, readiness, synchronous predict and metrics.
//!
//! ```text
//!            ┌──────────── model_updates (thread) ◀── [models, compacted]
//!            ▼
//!        ModelStore ──▶ http (axum: /predict, /readyz, /metrics …)
//!            │
//! [patients] ──▶ consume: fetch → route → handoff → output (+ offsets in one transaction)
//!                                                        ├──▶ [predictions]
//!                                                        └──▶ [dead-letters]
//! ```
//!
//! # Layout
//! - [`config`]: flags and env vars, validated once (Kafka clients are built by `heart-kafka`).
//! - [`score`]: pure scoring of bytes or records; [`dead_letter`]: building dead letters.
//! - [`score_file`]: `scorer score-file`, the same validation and scoring over a UCI, CSV or
//!   JSONL file, without Kafka.
//! - [`model_store`]: the active model and atomic swaps; [`model_updates`]: following the models
//!   topic; [`shadow_registry`]: a challenger followed in the MLflow registry.
//! - [`consume`]: the pipeline, one stage a file (fetch, route, handoff, output, txn).
//! - [`status`]: what the pipeline tells `/readyz`.
//! - `writer_schemas`: decoding patient records in either framing, with writer schemas from the
//!   Schema Registry.
//! - [`http`]: the sidecar; [`metrics`]: every Prometheus metric; [`healthcheck`]: the
//!   container probe. Signals and logging come from `heart-kafka`.

pub mod config;
pub mod consume;
pub mod dead_letter;
pub mod drift;
pub mod error;
pub mod healthcheck;
pub mod http;
pub mod metrics;
pub mod model_store;
pub mod model_updates;
pub mod score;
pub mod score_file;
pub mod shadow_registry;
pub mod status;
pub(crate) mod writer_schemas;

use std::sync::Arc;

use heart_schemas::{AvroRecord, ModelVersion};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use error::RunError;

use http::AppState;
use metrics::Metrics;
use model_store::{ModelStore, Offer};
use status::PipelineStatus;

/// Runs the scorer until `shutdown` is cancelled (or a task fails), then drains within
/// `--drain-timeout-ms`.
///
/// # Errors
/// [`RunError`] for invalid configuration, an unusable model file, a failed Kafka pipeline or a
/// drain that overran its bound.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let rules = config.validate()?;
    tracing::info!(config = %config.redacted_summary(), "scorer starting");
    let metrics = Metrics::new()?;
    let store = Arc::new(
        ModelStore::new(
            config.model_name.clone(),
            config.pin_model_version,
            metrics.clone(),
        )
        .with_shadow(config.shadow_model_version),
    );
    let status = Arc::new(PipelineStatus::default());
    let state = AppState {
        store: Arc::clone(&store),
        metrics: metrics.clone(),
        rules,
        status: Arc::clone(&status),
        kafka: config.model_file.is_none(),
        max_body_bytes: config.max_body_bytes,
        predict_batch_max: config.predict_batch_max,
    };
    if let Some(path) = &config.model_file {
        load_model_file(path, &store)?;
    }

    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .map_err(|source| RunError::Bind {
            addr: config.http_addr,
            source,
        })?;
    let local = listener.local_addr().map_err(RunError::Http)?;
    tracing::info!(addr = %local, "http listening");
    let sidecar = http::Sidecar::load(&config, &metrics)?;
    let http = tokio::spawn(sidecar.serve(listener, state, shutdown.clone()));

    let result = if config.model_file.is_some() {
        shutdown.cancelled().await;
        Ok(())
    } else {
        run_pipeline(&config, rules, &store, &metrics, &status, &shutdown).await
    };
    shutdown.cancel();
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(RunError::Http(e)),
        Err(_) => return Err(RunError::Panicked { task: "http" }),
    }
    if result.is_ok() {
        tracing::info!("scorer stopped");
    }
    result
}

fn load_model_file(path: &std::path::Path, store: &ModelStore) -> Result<(), RunError> {
    let fail = |detail: String| RunError::ModelFile {
        path: path.to_owned(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let version = ModelVersion::decode(&bytes).map_err(|e| fail(e.to_string()))?;
    match store.offer(version) {
        Offer::Activated { version } => {
            tracing::info!(model_version = version, path = %path.display(), "model activated from file");
            Ok(())
        }
        Offer::Ignored { why } => Err(fail(format!("not used: {why} (check --model-name)"))),
        Offer::Shadowed { .. } => Err(fail(
            "it is the --shadow-model-version; a model file is served, not shadowed".into(),
        )),
        Offer::Rejected(e) => Err(fail(heart_kafka::telemetry::chain(&e))),
    }
}

async fn run_pipeline(
    config: &Config,
    rules: crate::score::Rules,
    store: &Arc<ModelStore>,
    metrics: &Metrics,
    status: &Arc<PipelineStatus>,
    shutdown: &CancellationToken,
) -> Result<(), RunError> {
    let updates: JoinHandle<Result<(), RunError>> = {
        let (config, store, metrics, watch, token) = (
            config.clone(),
            Arc::clone(store),
            metrics.clone(),
            status.connection().clone(),
            shutdown.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let r = model_updates::run(&config, &store, &metrics, &watch, &token);
            if r.is_err() {
                token.cancel();
            }
            r.map_err(RunError::from)
        })
    };
    if let (Some(uri), Some(client)) = (&config.shadow_from_mlflow, config.mlflow.client()) {
        let uri = heart_mlflow::ModelUri::parse(uri)
            .map_err(|e| RunError::Config(config::ConfigError::ShadowFromMlflow(e)))?;
        let (refresh, store, metrics, token) = (
            std::time::Duration::from_millis(config.shadow_refresh_ms),
            Arc::clone(store),
            metrics.clone(),
            shutdown.clone(),
        );
        // Not joined on shutdown: it writes nothing, and an MLflow call in flight (bounded by
        // --mlflow-timeout-ms) must not hold the drain.
        std::thread::Builder::new()
            .name("shadow-registry".into())
            .spawn(move || shadow_registry::run(&uri, &client, refresh, &store, &metrics, &token))
            .map_err(RunError::Thread)?;
    }
    let consume: JoinHandle<Result<(), RunError>> = {
        let (config, store, metrics, status, token) = (
            config.clone(),
            Arc::clone(store),
            metrics.clone(),
            Arc::clone(status),
            shutdown.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let r = consume::run(&config, rules, &store, &metrics, &status, &token);
            if r.is_err() {
                token.cancel();
            }
            r.map_err(RunError::from)
        })
    };
    shutdown.cancelled().await;
    let drain = async {
        let consumed = consume.await;
        let updated = updates.await;
        (consumed, updated)
    };
    let (consumed, updated) = tokio::time::timeout(config.drain_timeout(), drain)
        .await
        .map_err(|_| RunError::DrainTimeout {
            ms: config.drain_timeout_ms,
        })?;
    consumed.map_err(|_| RunError::Panicked { task: "consume" })??;
    updated.map_err(|_| RunError::Panicked {
        task: "model_updates",
    })??;
    Ok(())
}
