//! What the trainer records in MLflow: one run per `trainer train` with a nested run per
//! candidate model, the report and plots as artifacts, the chosen model as an MLflow model
//! directory (`model/MLmodel` with a custom `heart_risk` flavor, a signature and an input
//! example) registered as a new version with an alias; `trainer eda` logs its outputs.
//!
//! The model is logged as run artifacts and registered from the run's artifact URI of
//! `model/`, which every MLflow client (`mlflow.models.get_model_info`, the UI) reads.

use std::path::Path;

use heart_schemas::{AvroRecord as _, FIELDS};
use serde_json::json;
use tracing::{info, warn};

use crate::config::MlflowArgs;
use crate::data::Dataset;
use crate::error::Error;
use crate::evaluate::METRIC_NAMES;
use crate::train::Outcome;
use heart_mlflow::MlflowError;
use heart_mlflow::client::{Batch, Client, LoggedModelInfo, ModelVersionInfo, RunInfo};
use heart_mlflow::registered::{MODEL_FILE, MODEL_NAME};

/// The flavor name in `MLmodel`.
pub const FLAVOR: &str = "heart_risk";
/// Tag holding the sha256 of the training data file.
pub const DATA_SHA256_TAG: &str = "data_sha256";

/// A connected tracking server and the experiment runs go to.
#[derive(Debug)]
pub struct Tracker {
    client: Client,
    experiment_id: String,
    registered_model: Option<String>,
    alias: String,
}

/// What [`Tracker::log_training`] recorded.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The parent run.
    pub run_id: String,
    /// The nested run of each candidate, by algorithm code.
    pub candidate_runs: Vec<(String, String)>,
    /// The registered version, if a registered model name was given.
    pub model_version: Option<ModelVersionInfo>,
}

impl Tracker {
    /// Connects when `--mlflow-uri` is set: checks `/health` and finds or creates the
    /// experiment, before any training. `Ok(None)`: tracking is off (no URI, or the server is
    /// down and `--mlflow-optional` was given, which is logged as a warning).
    ///
    /// # Errors
    /// The server is down or refuses, without `--mlflow-optional`.
    pub fn connect(args: &MlflowArgs, default_model_name: &str) -> Result<Option<Self>, Error> {
        let Some(client) = args.connection.client() else {
            return Ok(None);
        };
        let uri = client.base();
        let connected = client
            .health()
            .and_then(|()| client.experiment_id(&args.mlflow_experiment));
        match connected {
            Ok(experiment_id) => {
                info!(
                    url = uri,
                    experiment = %args.mlflow_experiment,
                    experiment_id = %experiment_id,
                    "mlflow tracking on"
                );
                Ok(Some(Self {
                    client,
                    experiment_id,
                    registered_model: Some(
                        args.mlflow_model_name
                            .clone()
                            .unwrap_or_else(|| default_model_name.to_owned()),
                    ),
                    alias: args.mlflow_alias.clone(),
                }))
            }
            Err(err) if args.mlflow_optional => {
                warn!(url = uri, error = %err, "mlflow unavailable, going on without tracking");
                Ok(None)
            }
            Err(err) => Err(Error::MlflowRequired(err)),
        }
    }

    /// The client, for callers that need other calls.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Records a finished `trainer train` whose outputs are in `out` (report, plots and
    /// `model.avro`): the parent run, one nested run per candidate, the artifacts, the model
    /// directory, and the registered version with the alias.
    ///
    /// # Errors
    /// Any failed call; the parent run is then marked `FAILED` where possible.
    pub fn log_training(
        &self,
        data: &Dataset,
        outcome: &Outcome,
        seed: u64,
        folds: usize,
        out: &Path,
    ) -> Result<Logged, MlflowError> {
        let chosen = &outcome.models[outcome.chosen];
        let mut tags = vec![
            (DATA_SHA256_TAG.to_owned(), data.sha256.clone()),
            ("seed".to_owned(), seed.to_string()),
            ("data_source".to_owned(), data.source.clone()),
            ("mlflow.source.name".to_owned(), "trainer train".to_owned()),
            ("mlflow.source.type".to_owned(), "LOCAL".to_owned()),
            ("code_version".to_owned(), crate::CODE_VERSION.to_owned()),
        ];
        if let Some(commit) = git_commit() {
            tags.push(("mlflow.source.git.commit".to_owned(), commit.clone()));
            tags.push(("git_commit".to_owned(), commit));
        }
        let parent = self
            .client
            .create_run(&self.experiment_id, "train", None, &tags)?;
        info!(run_id = %parent.run_id, "mlflow run started");
        match self.log_training_into(&parent, data, outcome, seed, folds, out, &tags) {
            Ok(logged) => {
                self.client.end_run(&parent.run_id, "FINISHED")?;
                info!(
                    run_id = %parent.run_id,
                    chosen = chosen.algorithm.code(),
                    model_version = logged.model_version.as_ref().map(|v| v.version.as_str()),
                    "mlflow run finished"
                );
                Ok(logged)
            }
            Err(err) => {
                let _ = self.client.end_run(&parent.run_id, "FAILED");
                Err(err)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn log_training_into(
        &self,
        parent: &RunInfo,
        data: &Dataset,
        outcome: &Outcome,
        seed: u64,
        folds: usize,
        out: &Path,
        tags: &[(String, String)],
    ) -> Result<Logged, MlflowError> {
        let chosen = &outcome.models[outcome.chosen];
        let mut candidate_runs = Vec::new();
        for model in &outcome.models {
            let code = model.algorithm.code();
            let run =
                self.client
                    .create_run(&self.experiment_id, code, Some(&parent.run_id), tags)?;
            let best = model.best();
            let mut batch = Batch {
                params: best.params.to_map().into_iter().collect(),
                ..Batch::default()
            };
            batch.params.push(("algorithm".into(), code.into()));
            batch
                .params
                .push(("grid_size".into(), model.grid.len().to_string()));
            batch.params.push(("folds".into(), folds.to_string()));
            batch.params.push(("seed".into(), seed.to_string()));
            batch.tags.push((
                "chosen".into(),
                (model.algorithm == chosen.algorithm).to_string(),
            ));
            for metric in METRIC_NAMES {
                let s = best.summary(metric);
                batch.metrics.push((format!("cv_{metric}_mean"), s.mean, 0));
                batch.metrics.push((format!("cv_{metric}_std"), s.std, 0));
                for (fold, m) in best.folds.iter().enumerate() {
                    batch
                        .metrics
                        .push((format!("fold_{metric}"), m.get(metric), fold as i64));
                }
            }
            self.client.log_batch(&run.run_id, &batch)?;
            let confusion = format!("confusion_{code}.png");
            if out.join(&confusion).is_file() {
                self.upload_file(&run.artifact_uri, out, &confusion)?;
            }
            self.client.end_run(&run.run_id, "FINISHED")?;
            info!(run_id = %run.run_id, algorithm = code, "mlflow candidate run logged");
            candidate_runs.push((code.to_owned(), run.run_id));
        }

        let best = chosen.best();
        let mut batch = Batch {
            params: vec![
                ("seed".into(), seed.to_string()),
                ("folds".into(), folds.to_string()),
                ("rows".into(), data.len().to_string()),
                ("chosen_algorithm".into(), chosen.algorithm.code().into()),
                ("chosen_params".into(), best.params.label()),
            ],
            ..Batch::default()
        };
        for metric in METRIC_NAMES {
            let s = best.summary(metric);
            batch.metrics.push((format!("cv_{metric}_mean"), s.mean, 0));
            batch.metrics.push((format!("cv_{metric}_std"), s.std, 0));
        }
        self.client.log_batch(&parent.run_id, &batch)?;

        let mut uploaded = 0;
        for name in sorted_files(out)? {
            if name == MODEL_FILE {
                continue;
            }
            self.upload_file(&parent.artifact_uri, out, &name)?;
            uploaded += 1;
        }
        info!(run_id = %parent.run_id, files = uploaded, "mlflow artifacts uploaded");

        let model_bytes = read(&out.join(MODEL_FILE))?;
        let version = heart_schemas::ModelVersion::decode(&model_bytes).ok();
        let (algorithm, checksum) = version
            .as_ref()
            .map_or((chosen.algorithm.code().to_owned(), String::new()), |v| {
                (v.algorithm.clone(), v.checksum.clone())
            });
        let model_tags = [
            ("algorithm".to_owned(), algorithm.clone()),
            ("checksum".to_owned(), checksum.clone()),
            (DATA_SHA256_TAG.to_owned(), data.sha256.clone()),
        ];
        // An MLflow 3 logged model: its own entity (id, params, status), linked to the run as
        // an output, with the files under its own artifact location.
        let logged = self.client.create_logged_model(
            &self.experiment_id,
            MODEL_NAME,
            &parent.run_id,
            FLAVOR,
            &best.params.to_map().into_iter().collect::<Vec<_>>(),
            &model_tags,
        )?;
        let uploaded =
            self.upload_model(&logged, parent, data, &model_bytes, &algorithm, &checksum);
        self.client
            .finalize_logged_model(&logged.model_id, uploaded.is_ok())?;
        uploaded?;
        self.client
            .log_model_output(&parent.run_id, &logged.model_id)?;
        info!(run_id = %parent.run_id, model_id = %logged.model_id, "mlflow model logged");

        let model_version = match &self.registered_model {
            None => None,
            Some(name) => {
                self.client.ensure_registered_model(name)?;
                let mv = self.client.create_model_version(
                    name,
                    &logged.model_id,
                    &parent.run_id,
                    &model_tags,
                )?;
                self.client.set_alias(name, &self.alias, &mv.version)?;
                info!(
                    registered_model = %name,
                    model_version = %mv.version,
                    alias = %self.alias,
                    "mlflow model version registered"
                );
                Some(mv)
            }
        };
        Ok(Logged {
            run_id: parent.run_id.clone(),
            candidate_runs,
            model_version,
        })
    }

    /// The logged model's files: the model, `MLmodel`, and the input examples.
    fn upload_model(
        &self,
        logged: &LoggedModelInfo,
        parent: &RunInfo,
        data: &Dataset,
        model_bytes: &[u8],
        algorithm: &str,
        checksum: &str,
    ) -> Result<(), MlflowError> {
        let server_version = self.client.server_version().unwrap_or_default();
        let mlmodel = mlmodel_yaml(&MlmodelInfo {
            run_id: &parent.run_id,
            model_id: &logged.model_id,
            artifact_uri: &logged.artifact_uri,
            utc_time_created: &utc_now(),
            mlflow_version: &server_version,
            algorithm,
            checksum,
        });
        let example = input_example(data);
        let root = &logged.artifact_uri;
        self.client.upload_artifact(root, MODEL_FILE, model_bytes)?;
        self.client
            .upload_artifact(root, "MLmodel", mlmodel.as_bytes())?;
        self.client
            .upload_artifact(root, "input_example.json", example.to_string().as_bytes())?;
        self.client.upload_artifact(
            root,
            "serving_input_example.json",
            json!({ "dataframe_split": example }).to_string().as_bytes(),
        )
    }

    /// Records a `trainer eda` run: every file in `out` (summary and plots) as artifacts.
    ///
    /// # Errors
    /// Any failed call.
    pub fn log_eda(&self, data: &Dataset, out: &Path) -> Result<String, MlflowError> {
        let run = self.client.create_run(
            &self.experiment_id,
            "eda",
            None,
            &[
                (DATA_SHA256_TAG.to_owned(), data.sha256.clone()),
                ("data_source".to_owned(), data.source.clone()),
                ("mlflow.source.name".to_owned(), "trainer eda".to_owned()),
            ],
        )?;
        let result = (|| {
            let files = sorted_files(out)?;
            for name in &files {
                self.upload_file(&run.artifact_uri, out, name)?;
            }
            self.client.log_batch(
                &run.run_id,
                &Batch {
                    params: vec![("rows".into(), data.len().to_string())],
                    metrics: vec![("positives".into(), data.positives() as f64, 0)],
                    tags: Vec::new(),
                },
            )?;
            Ok::<_, MlflowError>(files.len())
        })();
        match result {
            Ok(files) => {
                self.client.end_run(&run.run_id, "FINISHED")?;
                info!(run_id = %run.run_id, files, "mlflow eda run logged");
                Ok(run.run_id)
            }
            Err(err) => {
                let _ = self.client.end_run(&run.run_id, "FAILED");
                Err(err)
            }
        }
    }

    fn upload_file(&self, artifact_uri: &str, dir: &Path, name: &str) -> Result<(), MlflowError> {
        let bytes = read(&dir.join(name))?;
        self.client.upload_artifact(artifact_uri, name, &bytes)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, MlflowError> {
    std::fs::read(path).map_err(|source| MlflowError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The regular files directly in `dir`, by name.
fn sorted_files(dir: &Path) -> Result<Vec<String>, MlflowError> {
    let err = |source| MlflowError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        if entry.file_type().map_err(err)?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The commit of the working directory, when it is a git checkout and git is installed.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && commit.len() == 40).then_some(commit)
}

/// MLflow column specs of the 13 inputs (all doubles: the model reads every field as f64; any
/// may be missing, which the scorer imputes within its policy).
pub fn signature_inputs() -> serde_json::Value {
    FIELDS
        .iter()
        .map(|f| json!({ "type": "double", "name": f.name, "required": false }))
        .collect()
}

/// MLflow column specs of the outputs: the probability of disease and the 0/1 label.
pub fn signature_outputs() -> serde_json::Value {
    json!([
        { "type": "double", "name": "probability", "required": true },
        { "type": "long", "name": "label", "required": true },
    ])
}

/// The first complete row, in pandas "split" orient (`input_example.json`).
fn input_example(data: &Dataset) -> serde_json::Value {
    let columns: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
    let row = data
        .rows
        .iter()
        .find(|r| r.iter().all(Option::is_some))
        .or(data.rows.first());
    let values: Vec<serde_json::Value> = row
        .map(|r| r.iter().map(|v| json!(v)).collect())
        .unwrap_or_default();
    json!({ "columns": columns, "data": [values] })
}

struct MlmodelInfo<'a> {
    run_id: &'a str,
    model_id: &'a str,
    artifact_uri: &'a str,
    utc_time_created: &'a str,
    mlflow_version: &'a str,
    algorithm: &'a str,
    checksum: &'a str,
}

/// The `MLmodel` file. The signature's column lists are JSON strings, as MLflow writes them
/// (JSON has no `'`, so single-quoted YAML scalars hold them verbatim).
fn mlmodel_yaml(m: &MlmodelInfo<'_>) -> String {
    format!(
        "artifact_path: {artifact_uri}
flavors:
  {FLAVOR}:
    code_version: {code}
    data: {MODEL_FILE}
    format: avro
    schema: io.heartrisk.v1.ModelVersion
    algorithm: {algorithm}
    checksum: '{checksum}'
    loader: heart_model::Model::load (Rust); published to the models topic by trainer publish --from-mlflow
mlflow_version: '{mlflow_version}'
model_id: {model_id}
model_uuid: {model_id}
run_id: {run_id}
saved_input_example_info:
  artifact_path: input_example.json
  serving_input_path: serving_input_example.json
  type: dataframe
  pandas_orient: split
signature:
  inputs: '{inputs}'
  outputs: '{outputs}'
  params: null
utc_time_created: '{time}'
",
        code = crate::CODE_VERSION,
        algorithm = m.algorithm,
        checksum = m.checksum,
        mlflow_version = m.mlflow_version,
        model_id = m.model_id,
        artifact_uri = m.artifact_uri,
        run_id = m.run_id,
        inputs = signature_inputs(),
        outputs = signature_outputs(),
        time = m.utc_time_created,
    )
}

fn utc_now() -> String {
    let ms = heart_schemas::now_ms();
    format_utc_ms(ms)
}

fn format_utc_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000) * 1000
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn times_format_as_mlflow_writes_them() {
        assert_eq!(format_utc_ms(0), "1970-01-01 00:00:00.000000");
        // 2024-02-29T12:34:56.789Z, a leap day.
        assert_eq!(
            format_utc_ms(1_709_210_096_789),
            "2024-02-29 12:34:56.789000"
        );
    }

    #[test]
    fn the_signature_lists_the_13_inputs_and_two_outputs() {
        let inputs = signature_inputs();
        let inputs = inputs.as_array().unwrap();
        assert_eq!(inputs.len(), 13);
        assert_eq!(inputs[0]["name"], "age");
        assert_eq!(signature_outputs()[1]["type"], "long");
        let yaml = mlmodel_yaml(&MlmodelInfo {
            run_id: "r",
            model_id: "m-1",
            artifact_uri: "mlflow-artifacts:/1/models/m-1/artifacts",
            utc_time_created: "t",
            mlflow_version: "3.17.2",
            algorithm: "random_forest",
            checksum: "c",
        });
        assert!(yaml.contains("  heart_risk:\n    code_version:"), "{yaml}");
        assert!(!signature_inputs().to_string().contains('\''));
    }
}
