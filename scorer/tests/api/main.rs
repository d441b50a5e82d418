//! HTTP sidecar tests, in process (no broker): every route, every error shape, the metrics the
//! middleware records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/fixtures.rs"]
mod support;

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
async fn invalid_fields_are_422_naming_each_field() {
    let t = TestApp::new(true);
    let mut rec = serde_json::to_value(patient(50)).unwrap();
    rec["age"] = json!(300);
    rec["cp"] = json!("four");
    rec.as_object_mut().unwrap().remove("chol");
    let (status, body, _) = call(&t, post_json("/predict", &rec)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "validation_failed");
    let fields: Vec<_> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["field"].as_str().unwrap(), d["problem"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [
            ("age", "out_of_range"),
            ("cp", "wrong_type"),
            ("chol", "missing")
        ]
    );
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
