//! The `trainer` binary: parse the command line, set up logging, run, map errors to an exit code.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use heart_kafka::telemetry;
use heart_trainer::Config;

fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(err) = telemetry::init(&config.log, "info,librdkafka=warn,rdkafka=warn") {
        eprintln!("trainer: {err}");
        return ExitCode::FAILURE;
    }
    match heart_trainer::run(config).context("trainer failed") {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
