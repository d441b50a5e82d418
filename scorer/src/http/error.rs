//! The one HTTP error type: every native error response is `{"error":{"code","message"}}`, plus
//! `details` for validation errors; the Open Inference Protocol routes answer the same errors,
//! with the same statuses, as `{"error": message}` ([`OipError`]).

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use heart_schemas::Violation;
use serde::Serialize;
use thiserror::Error;

/// A validation problem, with the batch index when it came from `/predict/batch`.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    /// Position in the batch, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// What is wrong.
    #[serde(flatten)]
    pub violation: Violation,
    /// The same as a sentence.
    pub message: String,
}

impl FieldError {
    /// The message, prefixed with the batch index or tensor row when there is one.
    fn located(&self) -> Cow<'_, str> {
        match self.index {
            Some(i) => Cow::Owned(format!("[{i}] {}", self.message)),
            None => Cow::Borrowed(&self.message),
        }
    }

    /// Wraps a violation.
    pub fn new(index: Option<usize>, violation: Violation) -> Self {
        let message = violation.to_string();
        Self {
            index,
            violation,
            message,
        }
    }
}

/// Every way an HTTP request can fail.
#[derive(Debug, Error)]
pub enum ApiError {
    /// No route for this path.
    #[error("no route for {path}; see /openapi.json")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// The route exists but not for this method.
    #[error("method not allowed for this route; see /openapi.json")]
    MethodNotAllowed,
    /// The body is not JSON.
    #[error("content type must be application/json, got {found:?}")]
    UnsupportedMediaType {
        /// The Content-Type sent.
        found: String,
    },
    /// The body exceeds the limit.
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body is not valid JSON.
    #[error("malformed JSON: {detail}")]
    MalformedJson {
        /// Parser message.
        detail: String,
    },
    /// The JSON has the wrong shape (for OIP: an inference request whose tensors do not fit).
    #[error("{0}")]
    WrongShape(Cow<'static, str>),
    /// Fields failed validation.
    #[error("{} invalid field(s): {}", .0.len(), .0.iter().map(FieldError::located).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    /// Records missing more attributes than the imputation policy fills in (by batch index).
    #[error("{}", .0.iter().map(|(i, e)| match i { Some(i) => format!("[{i}] {e}"), None => e.to_string() }).collect::<Vec<_>>().join("; "))]
    TooManyMissing(Vec<(Option<usize>, heart_schemas::TooManyMissing)>),
    /// An OIP request named a model, or a version of it, that this replica does not serve.
    #[error("model {requested:?} is not served here; this replica serves {serving}")]
    UnknownModel {
        /// The model (and version) asked for.
        requested: String,
        /// The active model and version.
        serving: String,
    },
    /// Too many records in a batch.
    #[error("batch of {count} patients exceeds the maximum of {max}")]
    BatchTooLarge {
        /// Records sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A query parameter this route does not take, or a value it cannot read.
    #[error("{0}")]
    BadQuery(String),
    /// An explanation was asked of a model that cannot give one.
    #[error(transparent)]
    NotExplainable(#[from] heart_model::ExplainError),
    /// No bearer token, or an `Authorization` header that is not `Bearer <token>`.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A bearer token that is not accepted.
    #[error("the bearer token is not accepted; ask for a current one")]
    Forbidden,
    /// This client sent more requests than the rate limit allows.
    #[error(
        "rate limit exceeded: at most {per_s} requests/s from one client (bursts of {burst}); retry after {retry_after_s} s"
    )]
    RateLimited {
        /// --http-rate-limit-per-s.
        per_s: u32,
        /// --http-rate-limit-burst.
        burst: u32,
        /// Seconds until a request will be let through.
        retry_after_s: u64,
    },
    /// No model is active yet.
    #[error("no model is active yet; publish one with `trainer train --publish`")]
    NoModel,
    /// Not ready to serve (readiness probe).
    #[error("not ready: {0}")]
    NotReady(String),
    /// Anything else; logged, answered generically.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound { .. } | Self::UnknownModel { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MalformedJson { .. } | Self::BadQuery(_) => StatusCode::BAD_REQUEST,
            Self::NotExplainable(_) => StatusCode::CONFLICT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::WrongShape(_)
            | Self::Validation(_)
            | Self::TooManyMissing(_)
            | Self::BatchTooLarge { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NoModel | Self::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::UnknownModel { .. } => "unknown_model",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::MalformedJson { .. } => "malformed_json",
            Self::WrongShape(_) => "wrong_shape",
            Self::BadQuery(_) => "bad_query",
            Self::NotExplainable(_) => "not_explainable",
            Self::Validation(_) => "validation_failed",
            Self::TooManyMissing(_) => "too_many_missing",
            Self::BatchTooLarge { .. } => "batch_too_large",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::NoModel => "no_model",
            Self::NotReady(_) => "not_ready",
            Self::Internal(_) => "internal",
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a [FieldError]>,
}

/// The `WWW-Authenticate` challenge of a 401 (RFC 6750).
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"heart-risk\"";

impl ApiError {
    /// Headers the status calls for: the challenge of a 401, the `Retry-After` of a 429.
    fn headers(&self) -> Option<(HeaderName, HeaderValue)> {
        match self {
            Self::Unauthorized(_) => Some((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BEARER_CHALLENGE),
            )),
            Self::RateLimited { retry_after_s, .. } => {
                Some((header::RETRY_AFTER, HeaderValue::from(*retry_after_s)))
            }
            _ => None,
        }
    }

    /// A 5xx is logged here, once, whichever shape answers it.
    fn log_if_internal(&self) {
        if let Self::Internal(detail) = self {
            tracing::error!(error = %detail, "request failed");
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_if_internal();
        let details = match &self {
            Self::Validation(errors) => Some(errors.as_slice()),
            _ => None,
        };
        let body = Body {
            error: Inner {
                code: self.code(),
                message: self.to_string(),
                details,
            },
        };
        let mut response = (self.status_code(), Json(body)).into_response();
        response.headers_mut().extend(self.headers());
        response
    }
}

/// An [`ApiError`] on an Open Inference Protocol route: the protocol's body `{"error": message}`
/// (what tritonclient and KServe clients parse), with the same status and message as natively.
#[derive(Debug)]
pub struct OipError(pub ApiError);

impl From<ApiError> for OipError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

#[derive(Serialize)]
struct OipBody {
    error: String,
}

impl IntoResponse for OipError {
    fn into_response(self) -> Response {
        self.0.log_if_internal();
        let body = OipBody {
            error: self.0.to_string(),
        };
        let mut response = (self.0.status_code(), Json(body)).into_response();
        response.headers_mut().extend(self.0.headers());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heart_schemas::Problem;

    fn violation() -> Violation {
        Violation {
            field: "age",
            value: "300".into(),
            problem: Problem::OutOfRange {
                min: 1.0,
                max: 120.0,
            },
        }
    }

    #[test]
    fn validation_messages_name_the_row_only_when_there_is_one() {
        let single = ApiError::Validation(vec![FieldError::new(None, violation())]);
        assert_eq!(
            single.to_string(),
            "1 invalid field(s): age = 300 is outside the allowed range 1..=120"
        );
        let batch = ApiError::Validation(vec![FieldError::new(Some(2), violation())]);
        assert_eq!(
            batch.to_string(),
            "1 invalid field(s): [2] age = 300 is outside the allowed range 1..=120"
        );
    }

    #[test]
    fn oip_errors_keep_the_status_and_flatten_the_body() {
        let e = OipError(ApiError::UnknownModel {
            requested: "other".into(),
            serving: "heart-disease version 7".into(),
        });
        assert_eq!(e.0.status_code(), StatusCode::NOT_FOUND);
        assert_eq!(e.into_response().status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_401_challenges_and_a_429_says_when_to_retry_in_both_shapes() {
        let limited = || ApiError::RateLimited {
            per_s: 5,
            burst: 10,
            retry_after_s: 2,
        };
        for response in [
            ApiError::Unauthorized("no token").into_response(),
            OipError(ApiError::Unauthorized("no token")).into_response(),
        ] {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                response.headers()[header::WWW_AUTHENTICATE],
                "Bearer realm=\"heart-risk\""
            );
        }
        for response in [
            limited().into_response(),
            OipError(limited()).into_response(),
        ] {
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        }
        assert!(
            ApiError::Forbidden
                .into_response()
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .is_none()
        );
    }
}
