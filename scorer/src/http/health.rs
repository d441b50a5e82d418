//! Liveness, readiness, model metadata, metrics and the OpenAPI document.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use heart_model::Model;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;

/// The OpenAPI 3.1 description of the sidecar.
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: a model is active and, unless running from a model file, the consumer runs.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let model = readiness(&state)?;
    Ok(Json(json!({
        "status": "ready",
        "model_name": model.name(),
        "model_version": model.version_number(),
    })))
}

/// The one readiness rule, for `/readyz` and OIP's `/v2/health/ready`: the active model, or why
/// this replica should not get traffic.
pub(super) fn readiness(state: &AppState) -> Result<Arc<Model>, ApiError> {
    // A stage's problem first: it says why (a refused login is why no model arrives), "no
    // model" and "not running" only that.
    if let Some(problem) = state.status.problem() {
        return Err(ApiError::NotReady(problem));
    }
    let Some(model) = state.store.current() else {
        return Err(ApiError::NotReady("no model is active yet".into()));
    };
    if state.kafka && !state.status.running() {
        return Err(ApiError::NotReady(
            "the Kafka consumer is not running".into(),
        ));
    }
    Ok(model)
}

/// `GET /model`: the active model's metadata and cross-validation metrics.
pub async fn model(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let model = state.store.current().ok_or(ApiError::NoModel)?;
    let v = &model.version;
    let a = &model.artifact;
    Ok(Json(json!({
        "name": v.name,
        "version": v.version,
        "algorithm": v.algorithm,
        "created_at": v.created_at,
        "code_version": v.code_version,
        "checksum": v.checksum,
        "mlflow_run_id": v.mlflow_run_id,
        "mlflow_model_version": v.mlflow_model_version,
        "payload_format": v.payload_format,
        "metrics": v.metrics,
        "feature_spec": v.feature_spec,
        "hyperparameters": a.hyperparameters,
        "training_data_sha256": a.training_data_sha256,
        "encoded_features": a.preprocessor.column_names(),
        "golden_vectors": a.golden.len(),
    })))
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// `GET /openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
