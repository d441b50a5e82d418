//! Open Inference Protocol v2 (the KServe / Triton REST protocol): server and model metadata,
//! health, and `infer`, over the same validation and scoring as `/predict`.
//!
//! `infer` takes either one tensor `patients` of shape `[N,13]` (columns in
//! [`heart_schemas::FIELDS`] order) or one tensor per field, named after it, of shape `[N]` or
//! `[N,1]`. Each row becomes the JSON object `/predict` would get, so a bad value gets the same
//! message. Errors keep the native status and take OIP's body, `{"error": message}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Path, Request, State};
use heart_model::Model;
use heart_schemas::{FIELDS, N_FIELDS, PatientRecord, now_ms};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, OipError};
use super::health::readiness;
use super::predict::{parse, read_json, score_all};

/// The server name in `GET /v2`.
pub const SERVER_NAME: &str = "heart-risk-scorer";
/// The single-tensor input: `[N,13]`, columns in field order.
pub const MATRIX_INPUT: &str = "patients";
/// The outputs, in the order they are returned when the request selects none.
pub const OUTPUTS: [&str; 4] = ["probability", "label", "risk_level", "explanation"];

/// The outputs of a request that names none; `explanation` (a JSON document per row, BYTES) is
/// returned only when asked for.
const DEFAULT_OUTPUTS: [&str; 3] = ["probability", "label", "risk_level"];

/// Tritonclient's header for the binary tensor extension: the JSON part's length.
const INFERENCE_HEADER_LENGTH: &str = "inference-header-content-length";

type OipResult<T> = Result<Json<T>, OipError>;

/// `GET /v2`: server metadata. No protocol extensions are implemented.
pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": SERVER_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [],
    }))
}

/// `GET /v2/health/live`.
pub async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

/// `GET /v2/health/ready`: the same rule as `/readyz` (503 when not ready).
pub async fn ready(State(state): State<AppState>) -> OipResult<Value> {
    readiness(&state)?;
    Ok(Json(json!({ "ready": true })))
}

/// `GET /v2/models/{name}`.
pub async fn model_metadata(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> OipResult<Value> {
    let model = resolve(&state, &name, None)?;
    Ok(Json(metadata(&model)))
}

/// `GET /v2/models/{name}/versions/{version}`.
pub async fn version_metadata(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> OipResult<Value> {
    let model = resolve(&state, &name, Some(&version))?;
    Ok(Json(metadata(&model)))
}

/// `GET /v2/models/{name}/ready`: the model is the active one (503 while none is).
pub async fn model_ready(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> OipResult<Value> {
    let model = resolve(&state, &name, None)?;
    Ok(Json(json!({ "name": model.name(), "ready": true })))
}

/// `GET /v2/models/{name}/versions/{version}/ready`.
pub async fn version_ready(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> OipResult<Value> {
    let model = resolve(&state, &name, Some(&version))?;
    Ok(Json(json!({ "name": model.name(), "ready": true })))
}

/// `POST /v2/models/{name}/infer`.
pub async fn infer(
    State(state): State<AppState>,
    Path(name): Path<String>,
    OipBody(body): OipBody,
) -> OipResult<Value> {
    run_infer(&state, &name, None, body)
}

/// `POST /v2/models/{name}/versions/{version}/infer`.
pub async fn version_infer(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    OipBody(body): OipBody,
) -> OipResult<Value> {
    run_infer(&state, &name, Some(&version), body)
}

/// An inference request body: JSON, with or without a Content-Type, and never the binary
/// extension (its header says the JSON part is shorter than the body).
#[derive(Debug)]
pub struct OipBody(pub Value);

impl FromRequest<AppState> for OipBody {
    type Rejection = OipError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json_length = req
            .headers()
            .get(INFERENCE_HEADER_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body_length = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let (Some(json), Some(body)) = (json_length, body_length)
            && json < body
        {
            return Err(ApiError::WrongShape(
                "binary tensor data is not supported; send tensors as JSON (binary_data=False)"
                    .into(),
            )
            .into());
        }
        Ok(Self(read_json(req, state, true).await?))
    }
}

/// The active model if it is the one asked for; 503 while none is active.
fn resolve(state: &AppState, name: &str, version: Option<&str>) -> Result<Arc<Model>, ApiError> {
    let model = state.store.current().ok_or(ApiError::NoModel)?;
    let serving = || format!("{} version {}", model.name(), model.version_number());
    if name != model.name() {
        return Err(ApiError::UnknownModel {
            requested: clip(name),
            serving: serving(),
        });
    }
    if let Some(v) = version
        && v != model.version_number().to_string()
    {
        return Err(ApiError::UnknownModel {
            requested: format!("{} version {}", clip(name), clip(v)),
            serving: serving(),
        });
    }
    Ok(model)
}

/// Caller-supplied text in a message is bounded, as `/predict` bounds echoed values.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn metadata(model: &Model) -> Value {
    let outputs: Vec<Value> = OUTPUTS
        .iter()
        .map(|&name| json!({ "name": name, "datatype": output_datatype(name), "shape": [-1] }))
        .collect();
    json!({
        "name": model.name(),
        "versions": [model.version_number().to_string()],
        "platform": format!("heart-model/{}", model.version.algorithm),
        "inputs": [{ "name": MATRIX_INPUT, "datatype": "FP64", "shape": [-1, N_FIELDS] }],
        "outputs": outputs,
    })
}

fn output_datatype(name: &str) -> &'static str {
    match name {
        "probability" => "FP64",
        "label" => "INT64",
        _ => "BYTES",
    }
}

#[derive(Debug, Deserialize)]
struct InferRequest {
    id: Option<String>,
    inputs: Vec<Tensor>,
    outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Deserialize)]
struct Tensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Value,
}

#[derive(Debug, Deserialize)]
struct RequestedOutput {
    name: String,
}

fn bad(message: String) -> ApiError {
    ApiError::WrongShape(message.into())
}

fn run_infer(state: &AppState, name: &str, version: Option<&str>, body: Value) -> OipResult<Value> {
    let model = resolve(state, name, version)?;
    let request: InferRequest =
        serde_json::from_value(body).map_err(|e| bad(format!("not an inference request: {e}")))?;
    let outputs = selected_outputs(request.outputs.as_deref())?;
    let rows = rows(&request.inputs, state.predict_batch_max)?;
    let now = now_ms();
    let mut records: Vec<PatientRecord> = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        match parse(&Value::Object(row), Some(i), now) {
            Ok(r) => records.push(r),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors).into());
    }
    let explain = outputs.contains(&"explanation");
    if explain {
        model.explainable().map_err(ApiError::from)?;
    }
    let scored = score_all(state, &model, records, now, explain)?;
    let n = scored.len();
    let tensors: Vec<Value> = outputs
        .iter()
        .map(|&out| {
            let data: Vec<Value> = scored
                .iter()
                .map(|s| match out {
                    "probability" => json!(s.prediction.probability),
                    "label" => json!(s.prediction.label),
                    "explanation" => {
                        json!(serde_json::to_string(&s.prediction.explanation).unwrap_or_default())
                    }
                    _ => json!(s.prediction.risk_level.as_str()),
                })
                .collect();
            json!({ "name": out, "datatype": output_datatype(out), "shape": [n], "data": data })
        })
        .collect();
    let mut response = json!({
        "model_name": model.name(),
        "model_version": model.version_number().to_string(),
        "outputs": tensors,
    });
    if let Some(id) = request.id {
        response["id"] = Value::String(id);
    }
    Ok(Json(response))
}

fn selected_outputs(requested: Option<&[RequestedOutput]>) -> Result<Vec<&'static str>, ApiError> {
    let Some(requested) = requested else {
        return Ok(DEFAULT_OUTPUTS.to_vec());
    };
    let mut selected = Vec::with_capacity(requested.len());
    for r in requested {
        let Some(&known) = OUTPUTS.iter().find(|&&o| o == r.name) else {
            return Err(bad(format!(
                "unknown output {:?}; outputs are {}",
                clip(&r.name),
                OUTPUTS.join(", ")
            )));
        };
        if !selected.contains(&known) {
            selected.push(known);
        }
    }
    Ok(selected)
}

/// Turns the inputs into one JSON object per row, keyed by field name, as `/predict` takes them.
fn rows(inputs: &[Tensor], max: usize) -> Result<Vec<Map<String, Value>>, ApiError> {
    let mut seen = BTreeMap::new();
    for t in inputs {
        if t.name != MATRIX_INPUT && !FIELDS.iter().any(|f| f.name == t.name) {
            return Err(bad(format!(
                "unknown input {:?}; send one input {MATRIX_INPUT:?} of shape [N,{N_FIELDS}] or one input per field ({})",
                clip(&t.name),
                field_names()
            )));
        }
        if seen.insert(t.name.as_str(), t).is_some() {
            return Err(bad(format!("input {:?} appears more than once", t.name)));
        }
    }
    match (seen.get(MATRIX_INPUT), seen.len()) {
        (Some(matrix), 1) => matrix_rows(matrix, max),
        (Some(_), _) => Err(bad(format!(
            "input {MATRIX_INPUT:?} cannot be combined with per-field inputs"
        ))),
        (None, 0) => Err(bad(format!(
            "no inputs; send one input {MATRIX_INPUT:?} of shape [N,{N_FIELDS}] or one input per field ({})",
            field_names()
        ))),
        (None, _) => column_rows(&seen, max),
    }
}

fn field_names() -> String {
    FIELDS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

fn matrix_rows(t: &Tensor, max: usize) -> Result<Vec<Map<String, Value>>, ApiError> {
    if !matches!(t.datatype.as_str(), "FP32" | "FP64") {
        return Err(bad(format!(
            "input {MATRIX_INPUT:?} has datatype {}; expected FP32 or FP64",
            clip(&t.datatype)
        )));
    }
    let n = match t.shape.as_slice() {
        &[n, cols] if n >= 0 && cols == N_FIELDS as i64 => n,
        _ => {
            return Err(bad(format!(
                "input {MATRIX_INPUT:?}: expected shape [N,{N_FIELDS}], got {}",
                shape_text(&t.shape)
            )));
        }
    };
    let n = within_limit(n, max)?;
    let values = flat_data(t, n * N_FIELDS)?;
    Ok(values
        .chunks(N_FIELDS)
        .map(|row| {
            FIELDS
                .iter()
                .zip(row)
                .map(|(f, v)| (f.name.to_owned(), (*v).clone()))
                .collect()
        })
        .collect())
}

fn column_rows(
    columns: &BTreeMap<&str, &Tensor>,
    max: usize,
) -> Result<Vec<Map<String, Value>>, ApiError> {
    // An input left out is missing in every row; the imputation policy decides the rest.
    let mut rows: Option<Vec<Map<String, Value>>> = None;
    let mut first = "";
    for spec in &FIELDS {
        let Some(t) = columns.get(spec.name) else {
            continue;
        };
        if !matches!(t.datatype.as_str(), "FP32" | "FP64" | "INT32" | "INT64") {
            return Err(bad(format!(
                "input {:?} has datatype {}; expected FP32, FP64, INT32 or INT64",
                t.name,
                clip(&t.datatype)
            )));
        }
        let n = match t.shape.as_slice() {
            &[n] | &[n, 1] if n >= 0 => n,
            _ => {
                return Err(bad(format!(
                    "input {:?}: expected shape [N] or [N,1], got {}",
                    t.name,
                    shape_text(&t.shape)
                )));
            }
        };
        let n = within_limit(n, max)?;
        let values = flat_data(t, n)?;
        if t.datatype.starts_with("INT")
            && let Some(v) = values
                .iter()
                .find(|v| v.as_f64().is_some_and(|x| x.fract() != 0.0))
        {
            return Err(bad(format!(
                "input {:?} has datatype {} but holds {}",
                t.name,
                t.datatype,
                clip(&v.to_string())
            )));
        }
        let rows = rows.get_or_insert_with(|| {
            first = spec.name;
            vec![Map::new(); n]
        });
        if rows.len() != n {
            return Err(bad(format!(
                "input {:?} has {n} rows but {first:?} has {}",
                t.name,
                rows.len()
            )));
        }
        for (row, v) in rows.iter_mut().zip(values) {
            row.insert(spec.name.to_owned(), v.clone());
        }
    }
    Ok(rows.unwrap_or_default())
}

/// Rows above `--predict-batch-max` are refused as `/predict/batch` refuses them.
fn within_limit(n: i64, max: usize) -> Result<usize, ApiError> {
    let count = usize::try_from(n).unwrap_or(usize::MAX);
    if count > max {
        return Err(ApiError::BatchTooLarge { count, max });
    }
    Ok(count)
}

/// The tensor's elements in row-major order, flat or nested, checked against the shape.
fn flat_data(t: &Tensor, expected: usize) -> Result<Vec<&Value>, ApiError> {
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>, limit: usize) {
        match v {
            // A runaway body stops being walked once it is already too long.
            Value::Array(items) if out.len() <= limit => {
                for item in items {
                    walk(item, out, limit);
                }
            }
            Value::Array(_) => {}
            other => out.push(other),
        }
    }
    if !t.data.is_array() {
        return Err(bad(format!("input {:?}: data must be an array", t.name)));
    }
    let mut values = Vec::with_capacity(expected);
    walk(&t.data, &mut values, expected);
    if values.len() != expected {
        return Err(bad(format!(
            "input {:?}: shape {} needs {expected} values, data has {}",
            t.name,
            shape_text(&t.shape),
            values.len()
        )));
    }
    Ok(values)
}

fn shape_text(shape: &[i64]) -> String {
    let dims: Vec<String> = shape.iter().map(i64::to_string).collect();
    format!("[{}]", dims.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, shape: &[i64], datatype: &str, data: Value) -> Tensor {
        Tensor {
            name: name.into(),
            shape: shape.to_vec(),
            datatype: datatype.into(),
            data,
        }
    }

    fn row() -> Vec<f64> {
        vec![
            63.0, 1.0, 1.0, 145.0, 233.0, 1.0, 2.0, 150.0, 0.0, 2.3, 3.0, 0.0, 6.0,
        ]
    }

    #[test]
    fn a_matrix_becomes_one_object_per_row_in_field_order() {
        let data = json!([row(), row()]);
        let rows = rows(&[tensor("patients", &[2, 13], "FP64", data)], 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["age"], json!(63.0));
        assert_eq!(rows[1]["thal"], json!(6.0));
    }

    #[test]
    fn a_wrong_matrix_shape_is_named() {
        let err = rows(&[tensor("patients", &[2, 12], "FP64", json!([]))], 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input \"patients\": expected shape [N,13], got [2,12]"
        );
    }

    #[test]
    fn data_must_fill_the_shape() {
        let err = rows(&[tensor("patients", &[2, 13], "FP32", json!(row()))], 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input \"patients\": shape [2,13] needs 26 values, data has 13"
        );
    }

    #[test]
    fn columns_left_out_are_missing_and_columns_agree_on_rows() {
        let one = |name: &str, n: usize| tensor(name, &[n as i64], "INT64", json!(vec![1; n]));
        // The policy, not the protocol, decides whether a left-out input can be imputed.
        let only_age = rows(&[one("age", 1)], 10).unwrap();
        assert_eq!(only_age.len(), 1);
        assert_eq!(only_age[0].len(), 1);
        let mut all: Vec<Tensor> = FIELDS.iter().map(|f| one(f.name, 2)).collect();
        all[3] = one("trestbps", 3);
        let err = rows(&all, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input \"trestbps\" has 3 rows but \"age\" has 2"
        );
    }

    #[test]
    fn integer_columns_refuse_fractions() {
        let mut all: Vec<Tensor> = FIELDS
            .iter()
            .map(|f| tensor(f.name, &[1, 1], "FP64", json!([[1]])))
            .collect();
        all[0] = tensor("age", &[1], "INT32", json!([1.5]));
        let err = rows(&all, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input \"age\" has datatype INT32 but holds 1.5"
        );
    }

    #[test]
    fn mixed_duplicate_and_unknown_inputs_are_refused() {
        let m = || tensor("patients", &[0, 13], "FP64", json!([]));
        let c = || tensor("age", &[0], "FP64", json!([]));
        let mixed = rows(&[m(), c()], 10).unwrap_err().to_string();
        assert!(mixed.contains("cannot be combined"), "{mixed}");
        let twice = rows(&[c(), c()], 10).unwrap_err().to_string();
        assert!(twice.contains("more than once"), "{twice}");
        let unknown = rows(&[tensor("x", &[0], "FP64", json!([]))], 10)
            .unwrap_err()
            .to_string();
        assert!(unknown.starts_with("unknown input \"x\""), "{unknown}");
    }

    #[test]
    fn more_rows_than_the_batch_limit_is_refused_before_reading_data() {
        let err = rows(&[tensor("patients", &[11, 13], "FP64", json!([]))], 10).unwrap_err();
        assert!(matches!(
            err,
            ApiError::BatchTooLarge { count: 11, max: 10 }
        ));
    }

    #[test]
    fn outputs_can_be_selected_and_unknown_ones_are_named() {
        let pick = |names: &[&str]| {
            let r: Vec<RequestedOutput> = names
                .iter()
                .map(|n| RequestedOutput { name: (*n).into() })
                .collect();
            selected_outputs(Some(&r))
        };
        assert_eq!(pick(&["label"]).unwrap(), ["label"]);
        assert_eq!(selected_outputs(None).unwrap(), DEFAULT_OUTPUTS);
        assert_eq!(
            pick(&["explanation", "label"]).unwrap(),
            ["explanation", "label"]
        );
        assert!(
            pick(&["logits"])
                .unwrap_err()
                .to_string()
                .contains("logits")
        );
    }
}
