//! Serving the sidecar: plain HTTP or TLS, with the bearer tokens and rate limit configured,
//! and the tasks that re-read the TLS and token files until shutdown.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::auth::Auth;
use super::rate_limit::RateLimit;
use super::tls::Tls;
use super::{AppState, guarded, reload};
use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;

/// The sidecar's protection, loaded from the files its flags name: TLS, bearer tokens and the
/// per-client rate limit, each optional.
#[derive(Debug)]
pub struct Sidecar {
    tls: Option<Watched<Tls>>,
    auth: Option<Arc<Auth>>,
    /// The token file, when there is one.
    tokens: Option<Watched<Arc<Auth>>>,
    rate_limit: Option<RateLimit>,
    metrics: Metrics,
}

/// Something loaded from files, and the watch that reloads it from them.
#[derive(Debug)]
struct Watched<T> {
    what: T,
    paths: Vec<PathBuf>,
    watch: reload::Watch,
}

impl Sidecar {
    /// Checks the sidecar's flags and reads the certificate, key and token files once.
    ///
    /// # Errors
    /// [`ConfigError`] for inconsistent flags, or a file that cannot be read or used.
    pub fn load(config: &Config, metrics: &Metrics) -> Result<Self, ConfigError> {
        let settings = config.http_security()?;
        let tls = match &settings.tls {
            Some(tls) => {
                let paths = tls.paths();
                let contents = reload::read_all(&paths);
                let watch = reload::Watch::new(&contents);
                let what = Tls::new(tls, contents)?;
                Some(Watched { what, paths, watch })
            }
            None => None,
        };
        let (mut auth, mut tokens) = (None, None);
        if let Some(settings) = &settings.auth {
            let paths: Vec<PathBuf> = settings.token_file.iter().cloned().collect();
            let contents = settings
                .token_file
                .as_ref()
                .map(|_| reload::read_all(&paths));
            let watch = contents.as_ref().map(reload::Watch::new);
            let loaded = Arc::new(Auth::new(settings, contents, metrics)?);
            tokens = watch.map(|watch| Watched {
                what: Arc::clone(&loaded),
                paths,
                watch,
            });
            auth = Some(loaded);
        }
        Ok(Self {
            tls,
            auth,
            tokens,
            rate_limit: settings.rate_limit.map(|r| RateLimit::new(r, metrics)),
            metrics: metrics.clone(),
        })
    }

    /// The router with this protection.
    pub fn app(&self, state: AppState) -> Router {
        guarded(state, self.auth.as_ref(), self.rate_limit.as_ref())
    }

    /// Serves on `listener` until `shutdown`, then lets the requests in progress finish.
    ///
    /// # Errors
    /// The server failed.
    #[tracing::instrument(name = "http", skip_all, fields(tls = self.tls.is_some()))]
    pub async fn serve(
        self,
        listener: TcpListener,
        state: AppState,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        let app = self
            .app(state)
            .into_make_service_with_connect_info::<SocketAddr>();
        let Self {
            tls,
            tokens,
            rate_limit,
            metrics,
            ..
        } = self;
        // The reloads end with the server, whether it stops for shutdown or fails.
        let stop = shutdown.child_token();
        let mut tasks = JoinSet::new();
        if let Some(Watched { what, paths, watch }) = &tls {
            let tls = what.clone();
            tasks.spawn(reload::run(
                "tls",
                paths.clone(),
                watch.clone(),
                metrics.clone(),
                stop.clone(),
                move |contents| tls.reload(contents),
            ));
        }
        if let Some(Watched { what, paths, watch }) = tokens {
            tasks.spawn(reload::run(
                "auth_tokens",
                paths,
                watch,
                metrics.clone(),
                stop.clone(),
                move |contents| what.reload(contents),
            ));
        }
        if let Some(limit) = rate_limit {
            tasks.spawn(limit.forget_idle_clients(stop.clone()));
        }

        tracing::info!("http serving");
        let stopped = shutdown.cancelled_owned();
        let served = match tls {
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
            Some(tls) => {
                // tap_io gives any listener's connections their ConnectInfo<SocketAddr>, which
                // the rate limit keys on.
                let listener = tls.what.listener(listener, metrics)?.tap_io(|_| {});
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
        };
        stop.cancel();
        while tasks.join_next().await.is_some() {}
        served
    }
}
