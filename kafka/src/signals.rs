//! SIGTERM / SIGINT: the one shutdown trigger every binary uses.
//!
//! The first signal cancels a token that every task selects on, so work drains. Draining is
//! bounded twice over: each task bounds its own client calls, and [`watch`] ends the process
//! when its hard deadline passes anyway (librdkafka can block in a destructor while no broker
//! answers). A second signal exits at once, as people expect of Ctrl-C pressed twice.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Exit status after a second signal (128 + SIGINT, what shells report for Ctrl-C).
pub const SECOND_SIGNAL_EXIT: i32 = 130;
/// Exit status when the hard deadline passes before the process has finished.
pub const DEADLINE_EXIT: i32 = 124;

/// Waits for SIGTERM or SIGINT (or for `token` to be cancelled by a task), cancels `token`, then
/// exits the process on a second signal, or after `hard_deadline` if the process is still
/// running by then. Spawn it on the runtime; it never returns once triggered.
pub async fn watch(token: CancellationToken, hard_deadline: Option<Duration>) {
    tokio::select! {
        signal = next_signal() => {
            tracing::info!(signal, "shutdown requested; draining");
            token.cancel();
        }
        () = token.cancelled() => {}
    }
    let deadline = async {
        match hard_deadline {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        signal = next_signal() => {
            tracing::warn!(signal, "second signal; exiting now without draining");
            std::process::exit(SECOND_SIGNAL_EXIT);
        }
        () = deadline => {
            tracing::error!(
                bound_ms = hard_deadline.map_or(0, |d| d.as_millis() as u64),
                "shutdown did not finish within its bound; exiting now"
            );
            std::process::exit(DEADLINE_EXIT);
        }
    }
}

/// The name of the next SIGTERM or SIGINT received.
async fn next_signal() -> &'static str {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => "SIGINT",
        () = terminate => "SIGTERM",
    }
}
