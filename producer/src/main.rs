//! `producer`: parse the command line, set up logging and Ctrl-C, run, and map the result to an
//! exit code.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use heart_producer::config::LogFormat;
use heart_producer::{Config, Outcome};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(err) = init_tracing(&config) {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("ctrl-c: stopping");
                trigger.cancel();
            }
        });
        match heart_producer::run(config, shutdown)
            .await
            .context("producer failed")?
        {
            Outcome::Sent(summary) if summary.failed > 0 => bail!(
                "{} of {} deliveries failed (by code: {:?})",
                summary.failed,
                summary.attempted,
                summary.failures
            ),
            Outcome::Sent(_) | Outcome::Tailed(_) => Ok(()),
        }
    })
}

fn init_tracing(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log)
        .with_context(|| format!("parsing --log {:?}", config.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| anyhow::anyhow!(e))
    .context("installing the log subscriber")
}
