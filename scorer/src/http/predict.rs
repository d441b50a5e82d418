//! Synchronous scoring: `POST /predict` and `POST /predict/batch`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use heart_model::Model;
use heart_schemas::{PatientRecord, Prediction};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::error::{ApiError, FieldError};
use crate::score::score_record;
use heart_schemas::now_ms;

/// A JSON body, with content type, size and syntax errors mapped to [`ApiError`]s.
#[derive(Debug)]
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        read_json(req, state, false).await.map(JsonBody)
    }
}

/// Reads a JSON body. `untyped_ok` also accepts a request without a Content-Type: OIP clients
/// (tritonclient among them) send none, while a wrong type is still refused.
pub(super) async fn read_json(
    req: Request,
    state: &AppState,
    untyped_ok: bool,
) -> Result<Value, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let json = essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json");
    if !(json || untyped_ok && essence.is_empty()) {
        return Err(ApiError::UnsupportedMediaType {
            found: content_type,
        });
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: state.max_body_bytes,
            }
        } else {
            ApiError::MalformedJson {
                detail: rejection.body_text(),
            }
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::MalformedJson {
        detail: e.to_string(),
    })
}

/// One prediction as returned over HTTP.
#[derive(Debug, Serialize)]
pub struct PredictResponse {
    /// The prediction.
    #[serde(flatten)]
    pub prediction: Prediction,
    /// One-hot fields whose category was unseen in training (encoded as all zeros).
    pub unseen_categories: u32,
}

/// Response of `/predict/batch`.
#[derive(Debug, Serialize)]
pub struct BatchResponse {
    /// Predictions in request order.
    pub predictions: Vec<PredictResponse>,
}

/// Parses and validates one patient object; the one validation every HTTP route uses.
pub(super) fn parse(
    value: &Value,
    index: Option<usize>,
    now: i64,
) -> Result<PatientRecord, Vec<FieldError>> {
    let Value::Object(object) = value else {
        return Err(vec![FieldError::new(
            index,
            heart_schemas::Violation {
                field: "patient",
                value: truncate_json(value),
                problem: heart_schemas::Problem::WrongType {
                    expected: "a JSON object",
                },
            },
        )]);
    };
    PatientRecord::from_json(object, now).map_err(|invalid| {
        invalid
            .violations
            .into_iter()
            .map(|v| FieldError::new(index, v))
            .collect()
    })
}

fn truncate_json(v: &Value) -> String {
    let s = v.to_string();
    s.chars().take(32).collect()
}

/// `POST /predict`: one patient as a JSON object with the UCI field names.
pub async fn predict(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<PredictResponse>, ApiError> {
    let model = state.store.current().ok_or(ApiError::NoModel)?;
    let now = now_ms();
    let record = parse(&body, None, now).map_err(ApiError::Validation)?;
    let scored = score_record(&model, &state.thresholds, record, now);
    state
        .metrics
        .unseen_categories
        .inc_by(u64::from(scored.unseen_categories));
    Ok(Json(PredictResponse {
        prediction: scored.prediction,
        unseen_categories: scored.unseen_categories,
    }))
}

/// `POST /predict/batch`: a JSON array of patients; all are validated before any is scored.
pub async fn predict_batch(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<BatchResponse>, ApiError> {
    let Value::Array(items) = body else {
        return Err(ApiError::WrongShape(
            "body must be a JSON array of patient objects".into(),
        ));
    };
    if items.len() > state.predict_batch_max {
        return Err(ApiError::BatchTooLarge {
            count: items.len(),
            max: state.predict_batch_max,
        });
    }
    let model = state.store.current().ok_or(ApiError::NoModel)?;
    let now = now_ms();
    let mut records = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match parse(item, Some(i), now) {
            Ok(r) => records.push(r),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let predictions = score_all(&state, &model, records, now);
    Ok(Json(BatchResponse { predictions }))
}

/// Scores validated records in order and counts unseen categories (batch and OIP infer).
pub(super) fn score_all(
    state: &AppState,
    model: &Model,
    records: Vec<PatientRecord>,
    now: i64,
) -> Vec<PredictResponse> {
    records
        .into_iter()
        .map(|r| {
            let scored = score_record(model, &state.thresholds, r, now);
            state
                .metrics
                .unseen_categories
                .inc_by(u64::from(scored.unseen_categories));
            PredictResponse {
                prediction: scored.prediction,
                unseen_categories: scored.unseen_categories,
            }
        })
        .collect()
}
