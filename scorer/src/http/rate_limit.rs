//! The per-client rate limit: tower_governor's layer (a GCRA token bucket per peer IP address),
//! answering 429 with `Retry-After` in the route's error shape.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use governor::middleware::NoOpMiddleware;
use tokio_util::sync::CancellationToken;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::PeerIpKeyExtractor;

use super::error::ApiError;
use super::{AppState, in_protocol_shape};
use crate::metrics::Metrics;

/// How often clients that have not been seen for a while are forgotten (the limiter keeps one
/// entry per peer address).
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// `--http-rate-limit-per-s` and `--http-rate-limit-burst`, checked by `Config::validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Sustained requests a second from one peer address.
    pub per_s: NonZeroU32,
    /// Requests one peer may send at once before the rate applies.
    pub burst: NonZeroU32,
}

type Config = GovernorConfig<PeerIpKeyExtractor, NoOpMiddleware>;

/// The limiter, shared by every route it guards.
#[derive(Debug, Clone)]
pub struct RateLimit {
    config: Arc<Config>,
    settings: RateLimitSettings,
    metrics: Metrics,
}

/// Marks the governor's 429 so that [`shape`], which knows the path, writes its body.
#[derive(Debug, Clone, Copy)]
struct Limited {
    retry_after_s: u64,
}

impl RateLimit {
    /// A fresh limiter (no client seen yet).
    pub fn new(settings: RateLimitSettings, metrics: &Metrics) -> Self {
        let period = Duration::from_secs(1) / settings.per_s.get();
        let config = GovernorConfigBuilder::default()
            .period(period)
            .burst_size(settings.burst.get())
            .finish();
        // finish() is None only for a zero period or burst: the burst is non-zero, and the
        // period at least a microsecond (--http-rate-limit-per-s is at most 1000000).
        #[allow(clippy::expect_used)]
        let config = config.expect("period and burst are non-zero");
        Self {
            config: Arc::new(config),
            settings,
            metrics: metrics.clone(),
        }
    }

    /// Wraps every route of `router` in the limit. The requests need a
    /// `ConnectInfo<SocketAddr>` (the server is started with `into_make_service_with_connect_info`).
    pub(crate) fn wrap(&self, router: Router<AppState>) -> Router<AppState> {
        let governor = GovernorLayer::new(Arc::clone(&self.config)).error_handler(|error| {
            match error {
                GovernorError::TooManyRequests { wait_time, .. } => {
                    // The governor truncates the wait to whole seconds: round it up, so a
                    // client that waits as told is let through.
                    let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
                    response.extensions_mut().insert(Limited {
                        retry_after_s: wait_time + 1,
                    });
                    response
                }
                GovernorError::UnableToExtractKey => {
                    ApiError::Internal("rate limit: the request carries no peer address".into())
                        .into_response()
                }
                GovernorError::Other { msg, .. } => {
                    ApiError::Internal(format!("rate limit: {}", msg.unwrap_or_default()))
                        .into_response()
                }
            }
        });
        router
            .layer(governor)
            .layer(middleware::from_fn_with_state(self.clone(), shape))
    }

    /// Forgets clients not seen lately, every [`FORGET_EVERY`] until `shutdown`.
    pub(crate) async fn forget_idle_clients(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(FORGET_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let limiter = self.config.limiter();
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Writes the governor's 429 in the route's protocol, and counts it.
async fn shape(State(limit): State<RateLimit>, req: Request, next: Next) -> Response {
    let uri = req.uri().clone();
    let response = next.run(req).await;
    let Some(&Limited { retry_after_s }) = response.extensions().get::<Limited>() else {
        return response;
    };
    limit.metrics.http_rate_limited.inc();
    tracing::debug!(retry_after_s, "request rate limited");
    let s = limit.settings;
    in_protocol_shape(
        &uri,
        ApiError::RateLimited {
            per_s: s.per_s.get(),
            burst: s.burst.get(),
            retry_after_s,
        },
    )
}
