//! The axum sidecar: health, readiness, synchronous predict, model metadata, metrics, OpenAPI,
//! and the same scoring over the Open Inference Protocol v2 (`/v2/...`, see [`oip`]).
//! It serves from the model store alone, so it keeps answering while the broker is unreachable.
//!
//! Protection, all optional and off by default ([`server::Sidecar`], docs/sidecar-security.md):
//! TLS ([`tls`]), bearer tokens ([`auth`]) and a per-client rate limit ([`rate_limit`]), with
//! the files re-read when they change ([`reload`]).

pub mod auth;
pub mod error;
pub mod health;
pub mod oip;
pub mod predict;
pub mod rate_limit;
pub(crate) mod reload;
pub mod server;
pub mod tls;

use std::sync::Arc;
use std::time::Instant;

use crate::score::Rules;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use heart_schemas::{SpanIds, TraceParent};
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::model_store::ModelStore;
use crate::status::PipelineStatus;
use auth::Auth;
use error::{ApiError, OipError};
use rate_limit::RateLimit;

pub use server::Sidecar;

/// Everything the handlers need; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The active model.
    pub store: Arc<ModelStore>,
    /// Metrics.
    pub metrics: Metrics,
    /// Risk thresholds.
    pub rules: Rules,
    /// Whether the pipeline runs, and why it is stuck if it is.
    pub status: Arc<PipelineStatus>,
    /// Whether readiness requires the Kafka consumer (false with --model-file).
    pub kafka: bool,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Most patients per batch request.
    pub predict_batch_max: usize,
}

/// Every route, for the router and for the test that checks the OpenAPI document.
pub const ROUTES: [(&str, &str); 16] = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/model"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/predict"),
    ("POST", "/predict/batch"),
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/{name}"),
    ("GET", "/v2/models/{name}/versions/{version}"),
    ("GET", "/v2/models/{name}/ready"),
    ("GET", "/v2/models/{name}/versions/{version}/ready"),
    ("POST", "/v2/models/{name}/infer"),
    ("POST", "/v2/models/{name}/versions/{version}/infer"),
];

/// Builds the router with nothing guarded (the protection is [`Sidecar::app`]'s).
pub fn app(state: AppState) -> Router {
    guarded(state, None, None)
}

/// Builds the router: every route behind `auth` if given, and all but the probes and the
/// scrape behind `rate_limit` (so that one busy client cannot get the pod restarted). The rate
/// limit comes first, so that guessing tokens is limited too.
pub(crate) fn guarded(
    state: AppState,
    auth: Option<&Arc<Auth>>,
    rate_limit: Option<&RateLimit>,
) -> Router {
    let guard = |router: Router<AppState>, limited: bool| {
        let router = match auth {
            Some(auth) => router.layer(middleware::from_fn_with_state(
                Arc::clone(auth),
                auth::require_token,
            )),
            None => router,
        };
        match rate_limit {
            Some(limit) if limited => limit.wrap(router),
            _ => router,
        }
    };
    let probes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .method_not_allowed_fallback(method_not_allowed);
    let api = Router::new()
        .route("/model", get(health::model))
        .route("/openapi.json", get(health::openapi))
        .route("/predict", post(predict::predict))
        .route("/predict/batch", post(predict::predict_batch))
        .route("/v2", get(oip::server_metadata))
        .route("/v2/health/live", get(oip::live))
        .route("/v2/health/ready", get(oip::ready))
        .route("/v2/models/{name}", get(oip::model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(oip::version_metadata),
        )
        .route("/v2/models/{name}/ready", get(oip::model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(oip::version_ready),
        )
        .route("/v2/models/{name}/infer", post(oip::infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(oip::version_infer),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    guard(probes, false)
        .merge(guard(api, true))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

async fn not_found(uri: Uri) -> Response {
    let error = ApiError::NotFound {
        path: uri.path().chars().take(200).collect(),
    };
    in_protocol_shape(&uri, error)
}

async fn method_not_allowed(uri: Uri) -> Response {
    in_protocol_shape(&uri, ApiError::MethodNotAllowed)
}

/// OIP clients parse `{"error": message}` on every `/v2` path, including unmatched ones.
pub(crate) fn in_protocol_shape(uri: &Uri, error: ApiError) -> Response {
    let path = uri.path();
    if path == "/v2" || path.starts_with("/v2/") {
        OipError(error).into_response()
    } else {
        error.into_response()
    }
}

/// Counts and times every request; the route label is the matched pattern, never the raw path.
/// A request with a valid W3C `traceparent` gets the trace continued: its events carry the
/// trace id, and the response's `traceparent` names this hop's span.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let trace = req
        .headers()
        .get(heart_schemas::trace::HEADER)
        .and_then(|v| TraceParent::parse(v.as_bytes()))
        .map(|t| t.child(SpanIds::process().next()));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let m = &state.metrics;
    m.http_in_flight.inc();
    let started = Instant::now();
    let mut response = match trace {
        Some(t) => {
            let span = tracing::debug_span!("request", trace_id = %t.trace_id_hex());
            next.run(req).instrument(span).await
        }
        None => next.run(req).await,
    };
    if let Some(value) = trace.and_then(|t| HeaderValue::from_str(&t.to_string()).ok()) {
        response
            .headers_mut()
            .insert(heart_schemas::trace::HEADER, value);
    }
    m.http_in_flight.dec();
    m.http_duration
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .with_label_values(&[&method, &route, response.status().as_str()])
        .inc();
    response
}
