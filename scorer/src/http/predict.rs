//! Synchronous scoring: `POST /predict` and `POST /predict/batch`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, Uri, header};
use heart_model::Model;
use heart_schemas::{PatientRecord, Prediction, Problem, Violation};
use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::Arc;

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
    let (object, time_error) = match event_time(object) {
        Ok(None) => (Cow::Borrowed(object), None),
        Ok(Some(ms)) => (with_event_time(object, Value::from(ms)), None),
        // Parsed as absent, so the other fields are still checked and reported together.
        Err(v) => (with_event_time(object, Value::Null), Some(v)),
    };
    let mut errors: Vec<FieldError> = time_error
        .into_iter()
        .map(|v| FieldError::new(index, v))
        .collect();
    match PatientRecord::from_json(&object, now) {
        Ok(record) if errors.is_empty() => Ok(record),
        Ok(_) => Err(errors),
        Err(invalid) => {
            errors.extend(
                invalid
                    .violations
                    .into_iter()
                    .map(|v| FieldError::new(index, v)),
            );
            Err(errors)
        }
    }
}

/// Largest integer every JSON implementation reads exactly (I-JSON, RFC 7493): 2^53 - 1.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// `event_time` beyond what `from_json` checks, so that the OpenAPI document can state the rule:
/// a whole float (`1700000000000.0`) is an integer, as JSON Schema counts it and as `from_json`
/// counts the clinical codes; and it must be within +-(2^53 - 1), since beyond that a float
/// literal is not the integer written (ms since the epoch reach 2^53 in about 285,000 years).
/// `Ok(Some)` is the value to use, `Ok(None)` leaves the field to `from_json`.
fn event_time(object: &Map<String, Value>) -> Result<Option<i64>, Violation> {
    let Some(v @ Value::Number(n)) = object.get("event_time") else {
        return Ok(None);
    };
    #[allow(clippy::cast_precision_loss)] // 2^53 - 1 is exact in f64
    let safe = MAX_SAFE_INTEGER as f64;
    let out_of_range = || Violation {
        field: "event_time",
        value: truncate_json(v),
        problem: Problem::OutOfRange {
            min: -safe,
            max: safe,
        },
    };
    if let Some(ms) = n.as_i64() {
        return if ms.abs() <= MAX_SAFE_INTEGER {
            Ok(None)
        } else {
            Err(out_of_range())
        };
    }
    match n.as_f64() {
        #[allow(clippy::cast_possible_truncation)] // whole and within +-2^53: exact
        Some(x) if x.fract() == 0.0 && x.abs() <= safe => Ok(Some(x as i64)),
        Some(x) if x.fract() == 0.0 => Err(out_of_range()),
        _ => Ok(None),
    }
}

fn with_event_time(object: &Map<String, Value>, value: Value) -> Cow<'_, Map<String, Value>> {
    let mut copy = object.clone();
    copy.insert("event_time".into(), value);
    Cow::Owned(copy)
}

fn truncate_json(v: &Value) -> String {
    let s = v.to_string();
    s.chars().take(32).collect()
}

/// Whether a request asks for explanations: `?explain=true` (or `1`); `false`, `0` or no
/// query: no.
///
/// # Errors
/// [`ApiError::BadQuery`] for another parameter or value, naming what is accepted.
pub(super) fn wants_explanation(uri: &Uri) -> Result<bool, ApiError> {
    let mut explain = false;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        explain = match (key, value) {
            ("explain", "true" | "1") => true,
            ("explain", "false" | "0") => false,
            ("explain", other) => {
                return Err(ApiError::BadQuery(format!(
                    "explain={other:?}: use explain=true or explain=false"
                )));
            }
            (other, _) => {
                return Err(ApiError::BadQuery(format!(
                    "unknown query parameter {other:?}; this route takes explain=true|false"
                )));
            }
        };
    }
    Ok(explain)
}

/// The active model, and whether to explain with it: [`ApiError::NotExplainable`] if asked of a
/// model that cannot.
fn model_for(state: &AppState, uri: &Uri) -> Result<(Arc<Model>, bool), ApiError> {
    let explain = wants_explanation(uri)?;
    let model = state.store.current().ok_or(ApiError::NoModel)?;
    if explain {
        // Asked for and impossible: say so rather than answer without it.
        model.explainable()?;
    }
    Ok((model, explain))
}

/// `POST /predict`: one patient as a JSON object with the UCI field names; `?explain=true` adds
/// the prediction's explanation.
pub async fn predict(
    State(state): State<AppState>,
    uri: Uri,
    JsonBody(body): JsonBody,
) -> Result<Json<PredictResponse>, ApiError> {
    let (model, explain) = model_for(&state, &uri)?;
    let now = now_ms();
    let record = parse(&body, None, now).map_err(ApiError::Validation)?;
    let mut scored = score_all(&state, &model, vec![record], now, explain)?;
    Ok(Json(scored.remove(0)))
}

/// `POST /predict/batch`: a JSON array of patients; all are validated before any is scored.
/// `?explain=true` explains each.
pub async fn predict_batch(
    State(state): State<AppState>,
    uri: Uri,
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
    let (model, explain) = model_for(&state, &uri)?;
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
    let predictions = score_all(&state, &model, records, now, explain)?;
    Ok(Json(BatchResponse { predictions }))
}

/// Checks validated records against the imputation policy, then scores them in order (with
/// their explanations if `explain`) and counts unseen categories and imputed fields (every
/// HTTP route).
///
/// # Errors
/// [`ApiError::TooManyMissing`] naming every record the policy refuses; none is then scored.
pub(super) fn score_all(
    state: &AppState,
    model: &Model,
    records: Vec<PatientRecord>,
    now: i64,
    explain: bool,
) -> Result<Vec<PredictResponse>, ApiError> {
    let single = records.len() == 1;
    let mut admitted = Vec::with_capacity(records.len());
    let mut refused = Vec::new();
    for (i, record) in records.into_iter().enumerate() {
        match state.rules.imputation.check(&record.features()) {
            Ok(imputed) => admitted.push((record, imputed)),
            Err(e) => refused.push(((!single).then_some(i), e)),
        }
    }
    if !refused.is_empty() {
        return Err(ApiError::TooManyMissing(refused));
    }
    let mut imputed_counts = [0u64; heart_schemas::N_FIELDS];
    let mut explanations = crate::metrics::ExplanationSums::default();
    let out = admitted
        .into_iter()
        .map(|(r, imputed)| {
            let scored = score_record(model, &state.rules, r, imputed, now, explain);
            state
                .metrics
                .unseen_categories
                .inc_by(u64::from(scored.unseen_categories));
            for f in imputed.indices() {
                imputed_counts[f] += 1;
            }
            explanations.add(scored.abs_contributions.as_ref());
            PredictResponse {
                prediction: scored.prediction,
                unseen_categories: scored.unseen_categories,
            }
        })
        .collect();
    state.metrics.count_imputed(&imputed_counts);
    state.metrics.count_explanations(&explanations);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn time_of(v: Value) -> Result<Option<i64>, String> {
        event_time(v.as_object().unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_whole_float_event_time_counts_as_an_integer() {
        assert_eq!(time_of(json!({"event_time": 1934.0})), Ok(Some(1934)));
        assert_eq!(time_of(json!({"event_time": 1934})), Ok(None));
        assert_eq!(time_of(json!({"event_time": 1.5})), Ok(None));
        assert_eq!(time_of(json!({"event_time": null})), Ok(None));
        assert_eq!(time_of(json!({})), Ok(None));
    }

    #[test]
    fn an_event_time_beyond_2_pow_53_is_out_of_range() {
        let max = "9007199254740991";
        for beyond in [json!(9_007_199_254_740_992_i64), json!(1e19), json!(-1e300)] {
            let message = time_of(json!({ "event_time": beyond })).unwrap_err();
            assert!(message.contains(max), "{message}");
        }
        let lowest = -MAX_SAFE_INTEGER;
        assert_eq!(time_of(json!({ "event_time": lowest })), Ok(None));
    }

    #[test]
    fn a_bad_event_time_is_reported_with_the_other_fields() {
        let errors = parse(&json!({"event_time": 1e19, "age": 300}), Some(0), 0).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.violation.field).collect();
        assert_eq!(fields[..2], ["event_time", "age"]);
    }
}
