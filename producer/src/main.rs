//! `producer`: parse the command line, set up logging and SIGTERM/SIGINT, run, and map the result
//! to an exit code.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use heart_kafka::{signals, telemetry};
use heart_producer::config::Command;
use heart_producer::{Config, Outcome};
use tokio_util::sync::CancellationToken;

/// What the process may take beyond its own shutdown bound (`send`: the flush) to exit after a
/// signal: printing the report, closing the clients.
const EXIT_MARGIN: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(err) = telemetry::init(&config.log, "info,librdkafka=warn,rdkafka=warn") {
        eprintln!("producer: {err}");
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
    // After a first signal the process ends within this, whatever the broker does.
    let bound = match &config.command {
        Command::Send(args) => args.flush_timeout() + EXIT_MARGIN,
        Command::Tail(_) => EXIT_MARGIN,
    };
    let outcome = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(signals::watch(shutdown.clone(), Some(bound)));
        heart_producer::run(config, shutdown)
            .await
            .context("producer failed")
    })?;
    // A metadata request still blocking a thread (no broker) must not hold up the exit.
    runtime.shutdown_timeout(EXIT_MARGIN);
    match outcome {
        Outcome::Sent(summary) if summary.unacknowledged > 0 => bail!(
            "{} of {} records were not acknowledged within --flush-timeout-ms after the shutdown \
             request; they may or may not be on {} ({} failed)",
            summary.unacknowledged,
            summary.attempted,
            summary.topic,
            summary.failed
        ),
        Outcome::Sent(summary) if summary.failed > 0 => bail!(
            "{} of {} deliveries failed (by code: {:?})",
            summary.failed,
            summary.attempted,
            summary.failures
        ),
        Outcome::Sent(_) | Outcome::Tailed(_) => Ok(()),
    }
}
