//! HTTP sidecar tests, in process (no broker): every route, every error shape, the metrics the
//! middleware records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/fixtures.rs"]
mod support;

mod score_file;
mod security;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use heart_scorer::http::{ROUTES, app};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::{TestApp, patient};
use tower::ServiceExt;

async fn call(t: &TestApp, req: Request<Body>) -> (StatusCode, Value, String) {
    let resp = app(t.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json, text)
}

fn post_json(uri: &str, body: &Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn healthz_is_ok_even_without_a_model() {
    let t = TestApp::new(false);
    let (status, body, _) = call(&t, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_waits_for_a_model() {
    let t = TestApp::new(false);
    let (status, body, _) = call(&t, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "not_ready");
    let t = TestApp::new(true);
    let (status, body, _) = call(&t, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["model_version"], 7);
}

#[tokio::test]
async fn readyz_in_kafka_mode_also_needs_the_consumer() {
    let mut t = TestApp::new(true);
    t.state.kafka = true;
    let (status, body, _) = call(&t, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("consumer")
    );
}

#[tokio::test]
async fn predict_scores_with_the_active_model() {
    let t = TestApp::new(true);
    let rec = patient(66);
    let (status, body, _) = call(
        &t,
        post_json("/predict", &serde_json::to_value(&rec).unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = t.model().predict(&rec).probability;
    assert!((body["probability"].as_f64().unwrap() - expected).abs() < 1e-12);
    assert_eq!(body["model_version"], 7);
    assert_eq!(body["model_name"], "heart-disease");
    assert_eq!(body["patient_id"], "p-66");
    assert_eq!(body["label"], i32::from(expected >= 0.5));
    assert!(["LOW", "MEDIUM", "HIGH"].contains(&body["risk_level"].as_str().unwrap()));
}

#[tokio::test]
async fn predict_without_model_is_503() {
    let t = TestApp::new(false);
    let rec = serde_json::to_value(patient(50)).unwrap();
    let (status, body, _) = call(&t, post_json("/predict", &rec)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "no_model");
}

#[tokio::test]
async fn missing_fields_are_imputed_and_named_or_422_beyond_the_policy() {
    let t = TestApp::new(true);
    let mut rec = serde_json::to_value(patient(50)).unwrap();
    let object = rec.as_object_mut().unwrap();
    for field in ["slope", "ca", "thal"] {
        object.remove(field);
    }
    object.insert("chol".into(), json!(0)); // "not measured", by the contract
    object.insert("fbs".into(), json!(null));
    let (status, body, _) = call(&t, post_json("/predict", &rec)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["imputed_fields"],
        json!(["chol", "fbs", "slope", "ca", "thal"])
    );
    let complete = serde_json::to_value(patient(50)).unwrap();
    let (_, body, _) = call(&t, post_json("/predict", &complete)).await;
    assert_eq!(body["imputed_fields"], json!([]));

    // Without age (never imputed by default) or with seven missing: 422 too_many_missing.
    rec.as_object_mut().unwrap().remove("age");
    let (status, body, _) = call(&t, post_json("/predict", &rec)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "too_many_missing");
    assert_eq!(
        body["error"]["message"],
        "missing age, chol, fbs, slope, ca, thal (6 of 13); age may never be imputed"
    );
    let batch = json!([complete, rec]);
    let (status, body, _) = call(&t, post_json("/predict/batch", &batch)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("[1] missing age"),
        "{body}"
    );
    let (_, _, metrics) = call(&t, get("/metrics")).await;
    assert!(
        metrics.contains(r#"scorer_imputed_fields_total{field="chol"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"scorer_imputed_fields_total{field="age"} 0"#));
}

/// `base + Σ listed + other` against `output`, and `output` against the probability.
fn assert_adds_up(explanation: &Value, probability: f64) {
    let f = |v: &Value| v.as_f64().unwrap();
    let listed: f64 = explanation["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| f(&c["contribution"]))
        .sum();
    let output = f(&explanation["output"]);
    let sum = f(&explanation["base"]) + listed + f(&explanation["other"]);
    assert!((sum - output).abs() < 1e-9, "{explanation}");
    assert_eq!(explanation["space"], "log_odds");
    let logit = (probability / (1.0 - probability)).ln();
    assert!(
        (output - logit).abs() < 1e-9,
        "{explanation} vs p = {probability}"
    );
}

#[tokio::test]
async fn predict_explains_when_asked_and_only_then() {
    let t = TestApp::new(true);
    let mut rec = serde_json::to_value(patient(70)).unwrap();
    rec["chol"] = Value::Null;
    let (status, plain, _) = call(&t, post_json("/predict", &rec)).await;
    assert_eq!(status, StatusCode::OK, "{plain}");
    assert!(plain.get("explanation").is_none(), "{plain}");

    let (status, body, _) = call(&t, post_json("/predict?explain=true", &rec)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["probability"], plain["probability"]);
    let e = &body["explanation"];
    // Only age carries weight (1.5): trained on ages 40..70 (mean 55, std √125), age 70
    // contributes 1.5 × 15/√125 and is listed first; the base is the intercept, 0.
    let top = &e["contributions"][0];
    assert_eq!(top["field"], "age");
    assert_eq!(top["value"], 70.0);
    let age = 1.5 * 15.0 / 125f64.sqrt();
    assert!(
        (top["contribution"].as_f64().unwrap() - age).abs() < 1e-12,
        "{e}"
    );
    assert_eq!(
        e["contributions"].as_array().unwrap().len(),
        5,
        "--explain-top-k 5"
    );
    assert_eq!(e["base"], 0.0);
    assert_adds_up(e, body["probability"].as_f64().unwrap());
    // The imputed cholesterol is listed with the value the model used: the training median.
    let chol = e["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "chol")
        .unwrap();
    assert_eq!(chol["value"], 250.0);
    assert_eq!(body["imputed_fields"], json!(["chol"]));

    let batch = json!([serde_json::to_value(patient(45)).unwrap(), rec]);
    let (status, body, _) = call(&t, post_json("/predict/batch?explain=1", &batch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for p in body["predictions"].as_array().unwrap() {
        assert_adds_up(&p["explanation"], p["probability"].as_f64().unwrap());
    }

    // Three predictions explained; every field's |contribution| is summed, listed or not.
    let (_, _, metrics) = call(&t, get("/metrics")).await;
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
    };
    assert_eq!(value("scorer_explanations_total "), 3.0);
    let expected = 2.0 * age + 1.5 * 10.0 / 125f64.sqrt();
    let summed = value(r#"scorer_explanation_abs_contribution_total{field="age"} "#);
    assert!((summed - expected).abs() < 1e-12, "{summed} vs {expected}");
    assert_eq!(
        value(r#"scorer_explanation_abs_contribution_total{field="sex"} "#),
        0.0
    );
}

#[tokio::test]
async fn explain_query_errors_are_400_and_an_old_model_is_409() {
    let t = TestApp::new(true);
    let rec = serde_json::to_value(patient(60)).unwrap();
    for (uri, says) in [
        (
            "/predict?explain=maybe",
            "explain=\"maybe\": use explain=true",
        ),
        ("/predict?top=3", "unknown query parameter \"top\""),
    ] {
        let (status, body, _) = call(&t, post_json(uri, &rec)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["code"], "bad_query");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
    let (status, _, _) = call(&t, post_json("/predict?explain=false", &rec)).await;
    assert_eq!(status, StatusCode::OK);

    t.state
        .store
        .offer(support::model_version_without_profile(8, 1.0));
    let (status, body, _) = call(&t, post_json("/predict?explain=true", &rec)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "not_explainable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("version 8") && message.contains("train and publish it again"),
        "{message}"
    );
    let (status, body, _) = call(&t, post_json("/predict", &rec)).await;
    assert_eq!(status, StatusCode::OK, "it still scores: {body}");
}

#[tokio::test]
async fn a_traceparent_is_continued_on_the_response() {
    let t = TestApp::new(true);
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let body = serde_json::to_value(patient(60)).unwrap();
    let mut req = post_json("/predict", &body);
    req.headers_mut()
        .insert("traceparent", incoming.parse().unwrap());
    let resp = app(t.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let out = resp.headers()["traceparent"].to_str().unwrap().to_owned();
    let (trace, parent) = (&out[3..35], &out[36..52]);
    assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736", "{out}");
    assert_ne!(parent, "00f067aa0ba902b7", "this hop's own span: {out}");
    assert!(out.ends_with("-01"), "{out}");

    // An invalid one is ignored, as the W3C specification says; none is made up.
    let mut req = post_json("/predict", &body);
    req.headers_mut()
        .insert("traceparent", "00-nonsense".parse().unwrap());
    let resp = app(t.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("traceparent").is_none());
}

#[tokio::test]
async fn invalid_fields_are_422_naming_each_field() {
    let t = TestApp::new(true);
    let mut rec = serde_json::to_value(patient(50)).unwrap();
    rec["age"] = json!(300);
    rec["cp"] = json!("four");
    let (status, body, _) = call(&t, post_json("/predict", &rec)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "validation_failed");
    let fields: Vec<_> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["field"].as_str().unwrap(), d["problem"].as_str().unwrap()))
        .collect();
    assert_eq!(fields, [("age", "out_of_range"), ("cp", "wrong_type")]);
    assert_eq!(body["error"]["details"][0]["max"], 120.0);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let t = TestApp::new(true);
    let req = Request::post("/predict")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    let (status, body, _) = call(&t, req).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"]["code"], "unsupported_media_type");
}

#[tokio::test]
async fn oversize_body_is_413() {
    let t = TestApp::new(true);
    let big = json!({ "padding": "x".repeat(10_000) });
    let (status, body, _) = call(&t, post_json("/predict", &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(body["error"]["message"].as_str().unwrap().contains("4096"));
}

#[tokio::test]
async fn malformed_json_is_400() {
    let t = TestApp::new(true);
    let req = Request::post("/predict")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"age\": "))
        .unwrap();
    let (status, body, _) = call(&t, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "malformed_json");
}

#[tokio::test]
async fn unknown_route_is_404_json_and_wrong_method_405_json() {
    let t = TestApp::new(true);
    let (status, body, _) = call(&t, get("/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body, _) = call(&t, get("/predict")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn batch_scores_in_order_and_reports_bad_items_by_index() {
    let t = TestApp::new(true);
    let items = json!([patient(45), patient(70)]);
    let (status, body, _) = call(&t, post_json("/predict/batch", &items)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let preds = body["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 2);
    assert_eq!(preds[0]["patient_id"], "p-45");
    assert!(preds[0]["probability"].as_f64() < preds[1]["probability"].as_f64());

    let mut bad = serde_json::to_value(patient(50)).unwrap();
    bad["thal"] = json!(5);
    let (status, body, _) = call(&t, post_json("/predict/batch", &json!([patient(45), bad]))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["index"], 1);
    assert_eq!(body["error"]["details"][0]["field"], "thal");
}

#[tokio::test]
async fn batch_over_the_limit_is_rejected() {
    let t = TestApp::new(true);
    let items = json!([patient(41), patient(42), patient(43), patient(44)]);
    let (status, body, _) = call(&t, post_json("/predict/batch", &items)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "batch_too_large");
    let (status, body, _) = call(&t, post_json("/predict/batch", &json!({"a": 1}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "wrong_shape");
}

#[tokio::test]
async fn model_route_shows_version_and_metrics() {
    let t = TestApp::new(true);
    let (status, body, _) = call(&t, get("/model")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], 7);
    assert_eq!(body["algorithm"], "logistic_regression");
    assert_eq!(body["metrics"]["cv.roc_auc.mean"], 0.9);
    assert_eq!(body["feature_spec"].as_array().unwrap().len(), 13);
    // MLflow lineage: null for a version not published from the MLflow registry.
    assert_eq!(body.get("mlflow_run_id"), Some(&Value::Null));
    assert_eq!(body.get("mlflow_model_version"), Some(&Value::Null));
}

#[tokio::test]
async fn metrics_count_requests_by_matched_route_and_status() {
    let t = TestApp::new(true);
    call(&t, get("/healthz")).await;
    call(&t, get("/does/not/exist/12345")).await;
    let (status, _, text) = call(&t, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains(
        "scorer_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
    ));
    assert!(text.contains("route=\"unmatched\",status=\"404\""));
    assert!(!text.contains("12345"), "raw paths never become labels");
    assert!(text.contains("scorer_model_info{name=\"heart-disease\",version=\"7\"} 1"));
    assert!(text.contains("scorer_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let t = TestApp::new(true);
    let (status, doc, _) = call(&t, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    for (method, path) in ROUTES {
        assert!(
            doc["paths"][path][method.to_lowercase()].is_object(),
            "{method} {path} missing from openapi.json"
        );
    }
    assert_eq!(doc["paths"].as_object().unwrap().len(), ROUTES.len());
}

// Open Inference Protocol v2 (`/v2/...`).

fn row(age: i32) -> Vec<Value> {
    patient(age).features().iter().map(|v| json!(v)).collect()
}

fn matrix(ages: &[i32], datatype: &str) -> Value {
    let data: Vec<Value> = ages.iter().flat_map(|&a| row(a)).collect();
    json!({
        "id": "req-1",
        "inputs": [{ "name": "patients", "shape": [ages.len(), 13], "datatype": datatype, "data": data }],
    })
}

fn columns(ages: &[i32]) -> Value {
    let inputs: Vec<Value> = heart_schemas::FIELDS
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let datatype = if f.integer { "INT64" } else { "FP64" };
            let data: Vec<Value> = ages
                .iter()
                .map(|&a| match patient(a).features()[i] {
                    #[allow(clippy::cast_possible_truncation)] // whole codes, shown as integers
                    Some(x) if f.integer => json!(x as i64),
                    other => json!(other),
                })
                .collect();
            json!({ "name": f.name, "shape": [ages.len(), 1], "datatype": datatype, "data": data })
        })
        .collect();
    json!({ "inputs": inputs })
}

fn output<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {body}"))
}

async fn predicted(t: &TestApp, age: i32) -> Value {
    let rec = serde_json::to_value(patient(age)).unwrap();
    let (status, body, _) = call(t, post_json("/predict", &rec)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn oip_server_metadata_and_liveness() {
    let t = TestApp::new(false);
    let (status, body, _) = call(&t, get("/v2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "heart-risk-scorer");
    assert!(body["version"].is_string() && body["extensions"].is_array());
    let (status, body, _) = call(&t, get("/v2/health/live")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "live": true }));
}

#[tokio::test]
async fn oip_readiness_mirrors_readyz_with_the_oip_error_shape() {
    let t = TestApp::new(false);
    let (status, body, _) = call(&t, get("/v2/health/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "not ready: no model is active yet");
    let (status, body, _) = call(&t, get("/v2/models/heart-disease/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].is_string(), "{body}");

    let mut t = TestApp::new(true);
    let (status, body, _) = call(&t, get("/v2/health/ready")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "ready": true }));
    t.state.kafka = true;
    let (status, body, _) = call(&t, get("/v2/health/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].as_str().unwrap().contains("consumer"));
}

#[tokio::test]
async fn oip_model_metadata_and_readiness_by_name_and_version() {
    let t = TestApp::new(true);
    for uri in [
        "/v2/models/heart-disease",
        "/v2/models/heart-disease/versions/7",
    ] {
        let (status, body, _) = call(&t, get(uri)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(body["name"], "heart-disease");
        assert_eq!(body["versions"], json!(["7"]));
        assert_eq!(body["platform"], "heart-model/logistic_regression");
        assert_eq!(
            body["inputs"],
            json!([{ "name": "patients", "datatype": "FP64", "shape": [-1, 13] }])
        );
        let outputs: Vec<_> = body["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["name"].as_str().unwrap(), o["datatype"].as_str().unwrap()))
            .collect();
        assert_eq!(
            outputs,
            [
                ("probability", "FP64"),
                ("label", "INT64"),
                ("risk_level", "BYTES"),
                ("explanation", "BYTES")
            ]
        );
    }
    for uri in [
        "/v2/models/heart-disease/ready",
        "/v2/models/heart-disease/versions/7/ready",
    ] {
        let (status, body, _) = call(&t, get(uri)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(body["ready"], true);
    }
}

#[tokio::test]
async fn oip_unknown_model_or_version_is_404_in_the_oip_shape() {
    let t = TestApp::new(true);
    for uri in [
        "/v2/models/other",
        "/v2/models/other/ready",
        "/v2/models/heart-disease/versions/6",
        "/v2/models/heart-disease/versions/6/ready",
    ] {
        let (status, body, _) = call(&t, get(uri)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains("heart-disease version 7"), "{message}");
    }
    let (status, body, _) = call(
        &t,
        post_json("/v2/models/other/infer", &matrix(&[50], "FP64")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"],
        "model \"other\" is not served here; this replica serves heart-disease version 7"
    );
    let (status, body, _) = call(&t, get("/v2/models/heart-disease/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"].is_string(),
        "unmatched /v2 paths answer in OIP's shape"
    );
    let (status, body, _) = call(&t, get("/v2/models/heart-disease/infer")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn oip_infer_fp64_matrix_agrees_with_predict() {
    let t = TestApp::new(true);
    let (status, body, _) = call(
        &t,
        post_json("/v2/models/heart-disease/infer", &matrix(&[45, 66], "FP64")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model_name"], "heart-disease");
    assert_eq!(body["model_version"], "7");
    assert_eq!(body["id"], "req-1");
    let names: Vec<_> = body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["probability", "label", "risk_level"]);
    let probability = output(&body, "probability");
    assert_eq!(probability["datatype"], "FP64");
    assert_eq!(probability["shape"], json!([2]));
    assert_eq!(output(&body, "label")["datatype"], "INT64");
    assert_eq!(output(&body, "risk_level")["datatype"], "BYTES");
    for (i, age) in [45, 66].into_iter().enumerate() {
        let native = predicted(&t, age).await;
        let p = probability["data"][i].as_f64().unwrap();
        assert!((p - native["probability"].as_f64().unwrap()).abs() < 1e-12);
        assert_eq!(output(&body, "label")["data"][i], native["label"]);
        assert_eq!(output(&body, "risk_level")["data"][i], native["risk_level"]);
    }
}

#[tokio::test]
async fn oip_infer_fp32_nested_without_content_type_on_the_version_route() {
    let t = TestApp::new(true);
    let mut req = matrix(&[45, 66], "FP32");
    req["inputs"][0]["data"] = json!([row(45), row(66)]);
    // tritonclient sends no Content-Type.
    let untyped = Request::post("/v2/models/heart-disease/versions/7/infer")
        .body(Body::from(req.to_string()))
        .unwrap();
    let (status, body, _) = call(&t, untyped).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let native = predicted(&t, 66).await;
    let p = output(&body, "probability")["data"][1].as_f64().unwrap();
    assert!((p - native["probability"].as_f64().unwrap()).abs() < 1e-12);

    let typed_wrong = Request::post("/v2/models/heart-disease/infer")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(req.to_string()))
        .unwrap();
    let (status, body, _) = call(&t, typed_wrong).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn oip_infer_per_field_inputs_give_the_matrix_answer() {
    let t = TestApp::new(true);
    let uri = "/v2/models/heart-disease/infer";
    let (status, by_column, _) = call(&t, post_json(uri, &columns(&[45, 66]))).await;
    assert_eq!(status, StatusCode::OK, "{by_column}");
    let (_, by_matrix, _) = call(&t, post_json(uri, &matrix(&[45, 66], "FP64"))).await;
    assert_eq!(by_column["outputs"], by_matrix["outputs"]);
    assert!(by_column.get("id").is_none());
}

#[tokio::test]
async fn oip_infer_returns_only_the_requested_outputs() {
    let t = TestApp::new(true);
    let mut req = matrix(&[50], "FP64");
    req["outputs"] = json!([{ "name": "risk_level", "parameters": { "binary_data": false } }]);
    req["parameters"] = json!({ "binary_data_output": true });
    let (status, body, _) = call(&t, post_json("/v2/models/heart-disease/infer", &req)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(body["outputs"][0]["name"], "risk_level");
}

#[tokio::test]
async fn oip_infer_returns_explanations_as_an_extra_output() {
    let t = TestApp::new(true);
    let mut req = matrix(&[45, 66], "FP64");
    req["outputs"] = json!([{ "name": "probability" }, { "name": "explanation" }]);
    let (status, body, _) = call(&t, post_json("/v2/models/heart-disease/infer", &req)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let explanation = output(&body, "explanation");
    assert_eq!(explanation["datatype"], "BYTES");
    assert_eq!(explanation["shape"], json!([2]));
    for (i, age) in [45, 66].into_iter().enumerate() {
        let e: Value = serde_json::from_str(explanation["data"][i].as_str().unwrap()).unwrap();
        assert_eq!(e["contributions"][0]["field"], "age");
        assert_eq!(e["contributions"][0]["value"], f64::from(age));
        assert_adds_up(
            &e,
            output(&body, "probability")["data"][i].as_f64().unwrap(),
        );
    }
}

#[tokio::test]
async fn oip_infer_bad_shape_is_named() {
    let t = TestApp::new(true);
    let mut req = matrix(&[45, 66], "FP64");
    req["inputs"][0]["shape"] = json!([2, 12]);
    let (status, body, _) = call(&t, post_json("/v2/models/heart-disease/infer", &req)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"],
        "input \"patients\": expected shape [N,13], got [2,12]"
    );
}

#[tokio::test]
async fn oip_infer_bad_value_has_the_message_predict_gives() {
    let t = TestApp::new(true);
    let mut rec = serde_json::to_value(patient(50)).unwrap();
    rec["age"] = json!(300);
    let (_, native, _) = call(&t, post_json("/predict", &rec)).await;
    let native = native["error"]["message"].as_str().unwrap().to_owned();
    assert_eq!(
        native,
        "1 invalid field(s): age = 300 is outside the allowed range 1..=120"
    );
    let mut req = matrix(&[50, 50], "FP64");
    req["inputs"][0]["data"][13] = json!(300);
    let (status, body, _) = call(&t, post_json("/v2/models/heart-disease/infer", &req)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"],
        "1 invalid field(s): [1] age = 300 is outside the allowed range 1..=120"
    );
}

#[tokio::test]
async fn oip_infer_refuses_more_rows_than_the_batch_limit_and_binary_data() {
    let t = TestApp::new(true);
    let uri = "/v2/models/heart-disease/infer";
    let (status, body, _) = call(&t, post_json(uri, &matrix(&[41, 42, 43, 44], "FP64"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"],
        "batch of 4 patients exceeds the maximum of 3"
    );
    let json = matrix(&[50], "FP64").to_string();
    let binary = Request::post(uri)
        .header("inference-header-content-length", json.len())
        .header(header::CONTENT_LENGTH, json.len() + 8)
        .body(Body::from(format!("{json}\0\0\0\0\0\0\0\0")))
        .unwrap();
    let (status, body, _) = call(&t, binary).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("binary_data=False")
    );
}

#[tokio::test]
async fn oip_infer_without_a_model_is_503() {
    let t = TestApp::new(false);
    let (status, body, _) = call(
        &t,
        post_json("/v2/models/heart-disease/infer", &matrix(&[50], "FP64")),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].as_str().unwrap().contains("no model"));
}

#[tokio::test]
async fn oip_requests_are_counted_by_route_pattern() {
    let t = TestApp::new(true);
    call(&t, get("/v2/models/heart-disease/versions/7")).await;
    let (_, _, text) = call(&t, get("/metrics")).await;
    assert!(text.contains("route=\"/v2/models/{name}/versions/{version}\",status=\"200\"} 1"));
}
