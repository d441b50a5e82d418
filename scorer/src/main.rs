//! The `scorer` binary: parse config, start tracing, run until SIGTERM/SIGINT, exit non-zero with
//! the full error chain on failure.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use heart_kafka::{signals, telemetry};
use heart_scorer::config::Command;
use heart_scorer::{Config, healthcheck, score_file};
use tokio_util::sync::CancellationToken;

/// Without RUST_LOG. `rdkafka::client` repeats, as "Global error", what librdkafka has logged.
const DEFAULT_LOG_FILTER: &str = "info,librdkafka=warn,rdkafka=warn,rdkafka::client=off";

/// What the process may take beyond `--drain-timeout-ms` to exit after a signal.
const EXIT_MARGIN: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let config = Config::parse();
    if let Some(Command::Healthcheck) = config.command {
        let probe = healthcheck::Probe::from_config(&config);
        return match probe.and_then(|p| p.run(Duration::from_secs(3))) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("scorer healthcheck: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(error) = telemetry::init(&config.log, DEFAULT_LOG_FILTER) {
        eprintln!("scorer: {error}");
        return ExitCode::FAILURE;
    }
    if let Some(Command::ScoreFile(args)) = &config.command {
        // Rejected rows are counted, not failures: only an unusable model, input or output
        // exits non-zero.
        return match score_file::run(&config, args).context("score-file") {
            Ok(summary) => {
                eprint!("{summary}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("scorer: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "scorer failed");
            eprintln!("scorer: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let bound = config.drain_timeout() + EXIT_MARGIN;
    let result = runtime.block_on(async {
        let token = CancellationToken::new();
        tokio::spawn(signals::watch(token.clone(), Some(bound)));
        heart_scorer::run(config, token)
            .await
            .context("scorer stopped with an error")
    });
    // Dropping the runtime would wait for its blocking threads, and a consumer closing while no
    // broker answers blocks: bound that wait, on every path out.
    runtime.shutdown_timeout(EXIT_MARGIN);
    result
}
