//! The trainer: turns the UCI heart-disease data into a verified model version on the models
//! topic.
//!
//! ```text
//! data file ─▶ data (polars) ─▶ features (heart-model Preprocessor, per training fold)
//!           ─▶ train: search (grid per kind) ─▶ cv (fit on training folds, score with
//!              heart-model's Artifact::apply) ─▶ selection ─▶ refit on all rows
//!           ─▶ evaluate (metrics) ─▶ report + plots ─▶ model.avro ─▶ publish ─▶ [models]
//! ```
//!
//! # Layout
//! - [`config`]: the command line ([`Config`]) and its validation.
//! - [`data`]: reading UCI files and headered CSV into a [`data::Dataset`].
//! - [`features`]: a thin layer over heart-model's preprocessing (fit on given rows, encode) and
//!   a fitted model as an unnamed heart-model artifact.
//! - [`algorithms`]: one file per model kind (parameters, grid, fit) behind one trait.
//! - [`cv`]: cross-validation of grid points; `pool`: the thread pool the fits run on.
//! - [`search`]: the grid search and each kind's best point.
//! - [`train`]: folds, selection and the artifacts with golden vectors.
//! - [`calibration`]: reliability bins and Platt scaling inside CV, shipped when it helps.
//! - [`missing`]: the chosen model's CV metrics with fields masked in the test folds.
//! - [`evaluate`]: stratified folds and the metrics.
//! - [`report`]: `report.json`, `report.md`, the CV table and the evaluation plots.
//! - [`plots`]: the PNG charts (plotters).
//! - [`eda`]: `trainer eda`.
//! - [`publish`]: the models topic: publish with the next version, list versions.
//! - [`fetch`]: `trainer fetch-data`.
//! - [`tracking`]: what `train` and `eda` record in MLflow (runs, artifacts, the registered
//!   model), through the `heart-mlflow` client.
//! - [`error`]: one error enum per operation.

pub mod algorithms;
pub mod calibration;
pub mod config;
pub mod cv;
pub mod data;
pub mod eda;
pub mod error;
pub mod evaluate;
mod features;
pub mod fetch;
pub mod missing;
pub mod plots;
mod pool;
pub mod publish;
pub mod report;
pub mod search;
pub mod sklearn;
pub mod tracking;
pub mod train;
pub mod trees;

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use heart_schemas::AvroRecord;
use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

pub use config::Config;
use config::{Command, TrainArgs};
pub use error::Error;
use error::WriteError;

/// The trainer version recorded in every model version it writes.
pub const CODE_VERSION: &str = concat!("heart-trainer ", env!("CARGO_PKG_VERSION"));

/// Runs one trainer command.
///
/// # Errors
/// The [`Error`] of the step that failed.
pub fn run(config: Config) -> Result<(), Error> {
    config.validate()?;
    match config.command {
        Command::Train(args) => {
            let summary = train_command(&args)?;
            println!("{summary}");
            Ok(())
        }
        Command::Eda(args) => {
            let tracker = tracking::Tracker::connect(&args.mlflow, "")?;
            let data = data::load(&args.data.data)?;
            let s = eda::run(&data, &args.out)?;
            if let Some(tracker) = &tracker {
                let run_id = tracker.log_eda(&data, &args.out)?;
                println!("mlflow: eda run {run_id}");
            }
            println!(
                "eda: {} rows ({} with disease), {} missing cells; wrote summary.md, summary.json and plots to {}",
                s.rows,
                s.positives,
                s.columns.iter().map(|c| c.missing).sum::<usize>(),
                args.out.display()
            );
            Ok(())
        }
        Command::Publish(args) if args.from_mlflow.is_some() => {
            let uri = args.from_mlflow.as_deref().unwrap_or_default();
            let client = args
                .mlflow
                .client()
                .ok_or(heart_mlflow::ConfigError::FromMlflowNeedsUri)
                .map_err(error::ConfigError::from)?;
            let registered = heart_mlflow::registered::fetch(&client, uri)?;
            let info = &registered.info;
            let version = registered.version.clone();
            let p = publish::publish(version, &args.kafka)?;
            for (key, value) in [
                ("kafka_topic", args.kafka.topic.clone()),
                ("kafka_version", p.version.to_string()),
                ("kafka_offset", format!("{}/{}", p.partition, p.offset)),
            ] {
                client.set_model_version_tag(&info.name, &info.version, key, &value)?;
            }
            println!(
                "published {uri} (MLflow {} version {}, run {}) as version {} to {} (partition {}, offset {})",
                info.name,
                info.version,
                info.run_id,
                p.version,
                args.kafka.topic,
                p.partition,
                p.offset
            );
            Ok(())
        }
        Command::Publish(args) if args.sklearn.is_some() => {
            let path = args.sklearn.as_deref().unwrap_or(Path::new(""));
            let model = sklearn::import(path, &args.name, now_ms())?;
            let p = publish::publish(model.version, &args.kafka)?;
            println!(
                "published scikit-learn export {} as version {} to {} (partition {}, offset {})",
                path.display(),
                p.version,
                args.kafka.topic,
                p.partition,
                p.offset
            );
            Ok(())
        }
        Command::ImportSklearn(args) => {
            let model = sklearn::import(&args.sklearn, &args.name, now_ms())?;
            let bytes = model.version.encode().map_err(error::ImportError::from)?;
            write_file(&args.out, &bytes)?;
            println!(
                "imported {} ({}, {}): scikit-learn's {} golden vectors reproduce; wrote {}",
                args.sklearn.display(),
                model.version.algorithm,
                model.version.code_version,
                model.artifact.golden.len(),
                args.out.display()
            );
            Ok(())
        }
        Command::Publish(args) => {
            let p = publish::publish_file(&args.model, &args.kafka)?;
            println!(
                "published {} as version {} to {} (partition {}, offset {})",
                args.model.display(),
                p.version,
                args.kafka.topic,
                p.partition,
                p.offset
            );
            Ok(())
        }
        Command::Models(args) => {
            let listed = publish::list(&args.kafka)?;
            println!("{}", models_table(&listed).trim_end());
            Ok(())
        }
        Command::FetchData(args) => {
            fetch::fetch(&args.url, &args.out)?;
            println!(
                "downloaded {} to {} (sha256 verified)",
                args.url,
                args.out.display()
            );
            Ok(())
        }
    }
}

/// Options for [`train_to_dir`].
#[derive(Debug, Clone)]
pub struct TrainRun {
    /// Training options.
    pub options: train::TrainOptions,
    /// Which model becomes `model.avro`.
    pub ship: train::Ship,
    /// Output directory.
    pub out: std::path::PathBuf,
}

/// What [`train_to_dir`] wrote.
#[derive(Debug)]
pub struct Trained {
    /// The training outcome.
    pub outcome: train::Outcome,
    /// The envelope written to `model.avro` (version 0: unpublished).
    pub version: heart_schemas::ModelVersion,
    /// Wall time of the whole run, seconds.
    pub elapsed_s: f64,
}

/// Trains on `data` and writes `report.json`, `report.md`, the plots, `model.avro` (the shipped
/// model) and `candidates/<algorithm>.avro` (every kind's best point) into the output directory.
///
/// # Errors
/// Training, plotting or writing fails.
pub fn train_to_dir(data: &data::Dataset, run: &TrainRun) -> Result<Trained, Error> {
    let started = Instant::now();
    let progress = ProgressBar::new(0);
    progress.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} fits ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    progress.set_message("cross-validating");
    let outcome = train::train_shipping(data, &run.options, run.ship, &progress)?;
    progress.finish_and_clear();
    let created_at = now_ms();
    let version = outcome
        .artifact
        .to_version(0, created_at, CODE_VERSION)
        .map_err(error::TrainError::from)?;
    let bytes = version.encode().map_err(error::TrainError::from)?;
    write_file(&run.out.join("model.avro"), &bytes)?;
    for candidate in &outcome.candidates {
        let bytes = candidate
            .to_version(0, created_at, CODE_VERSION)
            .map_err(error::TrainError::from)?
            .encode()
            .map_err(error::TrainError::from)?;
        write_file(
            &run.out
                .join("candidates")
                .join(format!("{}.avro", candidate.algorithm.code())),
            &bytes,
        )?;
    }
    let spinner = ProgressBar::new_spinner();
    spinner.set_message("drawing plots");
    report::plot(data, &outcome, &run.out)?;
    spinner.finish_and_clear();
    let elapsed_s = started.elapsed().as_secs_f64();
    report::write_json(
        &run.out.join("report.json"),
        &report::to_json(data, &outcome, run.options.seed, &version.checksum),
    )?;
    write_file(
        &run.out.join("report.md"),
        report::markdown(data, &outcome, run.options.seed, elapsed_s).as_bytes(),
    )?;
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "training done"
    );
    Ok(Trained {
        outcome,
        version,
        elapsed_s,
    })
}

fn train_command(args: &TrainArgs) -> Result<String, Error> {
    // Before any work: a tracking server that is down fails the command here, not after training.
    let tracker = tracking::Tracker::connect(&args.mlflow, &args.name)?;
    let data = data::load(&args.data.data)?;
    info!(
        rows = data.len(),
        positives = data.positives(),
        sha256 = %data.sha256,
        "data loaded"
    );
    let run = TrainRun {
        options: train::TrainOptions {
            name: args.name.clone(),
            seed: args.seed,
            folds: args.folds,
            algorithms: algorithms::available(),
        },
        ship: args.algorithm.ship()?,
        out: args.out.clone(),
    };
    let trained = train_to_dir(&data, &run)?;
    let outcome = &trained.outcome;
    let chosen = &outcome.models[outcome.chosen];
    let auc = chosen.best().summary("roc_auc").mean;
    let mut s = format!(
        "\n{} rows ({} with disease), stratified {}-fold CV, seed {}; mean ± population std over folds\n\n{}\nchosen: {} ({}, {}), mean CV ROC-AUC {auc:.4} (bar {}: {})\nreference ROC-AUC: scikit-learn LR 0.919, scikit-learn RF 0.917, Python project RF 0.918\nwrote report.json, report.md, plots, model.avro (version 0, unpublished) and candidates/ to {} in {:.1} s",
        data.len(),
        data.positives(),
        args.folds,
        args.seed,
        report::cv_table(outcome),
        chosen.algorithm.code(),
        chosen.best().params.label(),
        report::selection(outcome),
        report::QUALITY_BAR,
        if auc >= report::QUALITY_BAR {
            "met"
        } else {
            "NOT met"
        },
        args.out.display(),
        trained.elapsed_s,
    );
    if let Some(tracker) = &tracker {
        let logged = tracker.log_training(&data, outcome, args.seed, args.folds, &args.out)?;
        s.push_str(&format!("\nmlflow: run {}", logged.run_id));
        if let Some(mv) = &logged.model_version {
            s.push_str(&format!(
                ", registered {} version {} as @{}",
                mv.name, mv.version, args.mlflow.mlflow_alias
            ));
        }
    }
    if args.publish {
        let p = publish::publish(trained.version, &args.kafka)?;
        s.push_str(&format!(
            "\npublished {} version {} to {} (partition {}, offset {})",
            args.name, p.version, args.kafka.topic, p.partition, p.offset
        ));
    }
    Ok(s)
}

fn models_table(listed: &[publish::Listed]) -> String {
    if listed.is_empty() {
        return "no model versions on the topic".to_owned();
    }
    let mut s = format!(
        "{:<20} {:>7} {:<20} {:>13} {:>8} {:>9} {:<20}\n",
        "name", "version", "algorithm", "created_at_ms", "roc_auc", "offset", "code_version"
    );
    for l in listed {
        s.push_str(&format!(
            "{:<20} {:>7} {:<20} {:>13} {:>8} {:>9} {:<20}\n",
            l.name,
            l.version,
            l.algorithm,
            l.created_at,
            l.roc_auc.map_or("-".to_owned(), |a| format!("{a:.3}")),
            l.offset,
            l.code_version
        ));
    }
    s
}

/// Writes `bytes` to `path`, creating parent directories.
///
/// # Errors
/// [`WriteError`] naming the path.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let err = |source| WriteError {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(path, bytes).map_err(err)
}

/// Milliseconds since the Unix epoch (0 before it).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
