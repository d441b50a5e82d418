//! The REST calls: experiments, runs, metrics, artifacts and the model registry.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tracing::debug;

use crate::error::MlflowError;

/// Largest artifact body read back (the model file of a 200-tree forest is a few MB).
const MAX_DOWNLOAD_BYTES: u64 = 256 << 20;
/// The run tag MLflow's UI uses to nest a run under its parent.
pub const PARENT_RUN_TAG: &str = "mlflow.parentRunId";

/// How the client authenticates (MLflow's `MLFLOW_TRACKING_TOKEN`, or username and password).
#[derive(Clone, Default)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Token(String),
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Token(_) => "token(redacted)",
            Self::Basic { .. } => "basic(redacted)",
        })
    }
}

impl Auth {
    fn header(&self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Token(t) => Some(format!("Bearer {t}")),
            Self::Basic { username, password } => Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{password}").as_bytes())
            )),
        }
    }
}

/// A run as the server describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct RunInfo {
    /// The run id.
    pub run_id: String,
    /// The experiment it belongs to.
    pub experiment_id: String,
    /// Where its artifacts live, e.g. `mlflow-artifacts:/1/<run_id>/artifacts`.
    pub artifact_uri: String,
    /// `RUNNING`, `FINISHED`, `FAILED`, …
    #[serde(default)]
    pub status: String,
}

/// A key and value, as params and tags are sent.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// A metric value, as logged and as read back.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Metric {
    /// Key.
    pub key: String,
    /// Value.
    pub value: f64,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: i64,
    /// Step (the fold index for per-fold values).
    #[serde(default)]
    pub step: i64,
}

/// A run's logged data.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunData {
    /// Latest value of each metric.
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// Parameters.
    #[serde(default)]
    pub params: Vec<KeyValue>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

/// A run: its info and its data.
#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    /// Info.
    pub info: RunInfo,
    /// Data.
    #[serde(default)]
    pub data: RunData,
}

impl Run {
    /// The value of tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        find(&self.data.tags, key)
    }

    /// The value of param `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        find(&self.data.params, key)
    }

    /// The latest value of metric `key`.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.data
            .metrics
            .iter()
            .find(|m| m.key == key)
            .map(|m| m.value)
    }
}

fn find<'a>(pairs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.as_str())
}

/// One entry of an artifact listing.
#[derive(Debug, Clone, Deserialize)]
pub struct FileInfo {
    /// Path relative to the run's artifact root.
    pub path: String,
    /// Whether it is a directory.
    #[serde(default)]
    pub is_dir: bool,
}

/// A registered model version.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelVersionInfo {
    /// Registered model name.
    pub name: String,
    /// Version number, as text (MLflow's REST API sends it as a string).
    pub version: String,
    /// Where the model's files are.
    pub source: String,
    /// The run that logged it.
    #[serde(default)]
    pub run_id: String,
    /// Aliases pointing at it.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A logged model: MLflow 3's model entity, with its own id and artifact location, linked to
/// the run that produced it.
#[derive(Debug, Clone, Deserialize)]
pub struct LoggedModelInfo {
    /// `m-…`; `models:/<model_id>` names it.
    pub model_id: String,
    /// Where its files are (`mlflow-artifacts:/<experiment>/models/<model_id>/artifacts`).
    pub artifact_uri: String,
    /// Its name within the run, e.g. `model`.
    #[serde(default)]
    pub name: String,
    /// The run that logged it.
    #[serde(default)]
    pub source_run_id: String,
    /// `LOGGED_MODEL_PENDING` until finalized, then `LOGGED_MODEL_READY` (or `…_UPLOAD_FAILED`).
    #[serde(default)]
    pub status: String,
}

#[derive(Deserialize)]
struct LoggedModelEnvelope {
    model: LoggedModelBody,
}

#[derive(Deserialize)]
struct LoggedModelBody {
    info: LoggedModelInfo,
}

/// Everything one `log-batch` call sends.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Parameters.
    pub params: Vec<(String, String)>,
    /// Metrics: key, value, step.
    pub metrics: Vec<(String, f64, i64)>,
    /// Tags.
    pub tags: Vec<(String, String)>,
}

/// MLflow's documented limits per `log-batch` call.
const MAX_BATCH_METRICS: usize = 1000;
const MAX_BATCH_PARAMS: usize = 100;
const MAX_BATCH_TAGS: usize = 100;

/// A client for one tracking server.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Auth,
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:5000`); every request is
    /// bounded by `timeout`.
    pub fn new(base: &str, auth: Auth, timeout: Duration) -> Self {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(timeout))
                .http_status_as_error(false)
                .build(),
        );
        Self {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            auth,
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /health`: the server is up.
    ///
    /// # Errors
    /// [`MlflowError::Unreachable`] or [`MlflowError::Http`].
    pub fn health(&self) -> Result<(), MlflowError> {
        self.send("health", "GET", "/health", &[], None).map(|_| ())
    }

    /// `GET /version`: the server's MLflow version, e.g. `3.17.2`.
    ///
    /// # Errors
    /// Any failed call.
    pub fn server_version(&self) -> Result<String, MlflowError> {
        let body = self.send("version", "GET", "/version", &[], None)?;
        Ok(String::from_utf8_lossy(&body).trim().to_owned())
    }

    /// The id of experiment `name`, created if it does not exist.
    ///
    /// # Errors
    /// Any failed call.
    pub fn experiment_id(&self, name: &str) -> Result<String, MlflowError> {
        match self.get::<Value>(
            "get experiment",
            "/api/2.0/mlflow/experiments/get-by-name",
            &[("experiment_name", name)],
        ) {
            Ok(v) => string_at(&v, "/experiment/experiment_id", "get experiment"),
            Err(e) if e.is_not_found() => {
                let v: Value = self.post(
                    "create experiment",
                    "/api/2.0/mlflow/experiments/create",
                    &json!({ "name": name }),
                )?;
                string_at(&v, "/experiment_id", "create experiment")
            }
            Err(e) => Err(e),
        }
    }

    /// Starts a run in `experiment_id`; `parent` nests it under that run.
    ///
    /// # Errors
    /// Any failed call.
    pub fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        parent: Option<&str>,
        tags: &[(String, String)],
    ) -> Result<RunInfo, MlflowError> {
        let mut tags = key_values(tags);
        if let Some(parent) = parent {
            tags.push(json!({ "key": PARENT_RUN_TAG, "value": parent }));
        }
        #[derive(Deserialize)]
        struct Created {
            run: Run,
        }
        let created: Created = self.post(
            "create run",
            "/api/2.0/mlflow/runs/create",
            &json!({
                "experiment_id": experiment_id,
                "run_name": run_name,
                "start_time": heart_schemas::now_ms(),
                "tags": tags,
            }),
        )?;
        Ok(created.run.info)
    }

    /// Logs params, metrics and tags, split into calls within MLflow's per-call limits.
    ///
    /// # Errors
    /// Any failed call.
    pub fn log_batch(&self, run_id: &str, batch: &Batch) -> Result<(), MlflowError> {
        let ts = heart_schemas::now_ms();
        let params = key_values(&batch.params);
        let metrics: Vec<Value> = batch
            .metrics
            .iter()
            .map(|(k, v, step)| json!({ "key": k, "value": v, "timestamp": ts, "step": step }))
            .collect();
        let tags = key_values(&batch.tags);
        let mut chunks = (
            params.chunks(MAX_BATCH_PARAMS),
            metrics.chunks(MAX_BATCH_METRICS),
            tags.chunks(MAX_BATCH_TAGS),
        );
        loop {
            let (p, m, t) = (chunks.0.next(), chunks.1.next(), chunks.2.next());
            if p.is_none() && m.is_none() && t.is_none() {
                return Ok(());
            }
            let _: Value = self.post(
                "log batch",
                "/api/2.0/mlflow/runs/log-batch",
                &json!({
                    "run_id": run_id,
                    "params": p.unwrap_or_default(),
                    "metrics": m.unwrap_or_default(),
                    "tags": t.unwrap_or_default(),
                }),
            )?;
        }
    }

    /// Ends a run with `status` (`FINISHED`, `FAILED` or `KILLED`).
    ///
    /// # Errors
    /// Any failed call.
    pub fn end_run(&self, run_id: &str, status: &str) -> Result<(), MlflowError> {
        let _: Value = self.post(
            "update run",
            "/api/2.0/mlflow/runs/update",
            &json!({ "run_id": run_id, "status": status, "end_time": heart_schemas::now_ms() }),
        )?;
        Ok(())
    }

    /// A run with its params, metrics and tags.
    ///
    /// # Errors
    /// Any failed call.
    pub fn get_run(&self, run_id: &str) -> Result<Run, MlflowError> {
        #[derive(Deserialize)]
        struct Got {
            run: Run,
        }
        let got: Got = self.get("get run", "/api/2.0/mlflow/runs/get", &[("run_id", run_id)])?;
        Ok(got.run)
    }

    /// Every value logged for metric `key` (one per step).
    ///
    /// # Errors
    /// Any failed call.
    pub fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>, MlflowError> {
        #[derive(Deserialize)]
        struct History {
            #[serde(default)]
            metrics: Vec<Metric>,
        }
        let h: History = self.get(
            "get metric history",
            "/api/2.0/mlflow/metrics/get-history",
            &[("run_id", run_id), ("metric_key", key)],
        )?;
        Ok(h.metrics)
    }

    /// Runs of `experiment_id` matching an MLflow search `filter` (e.g. `tags.x = 'y'`).
    ///
    /// # Errors
    /// Any failed call.
    pub fn search_runs(&self, experiment_id: &str, filter: &str) -> Result<Vec<Run>, MlflowError> {
        #[derive(Deserialize)]
        struct Found {
            #[serde(default)]
            runs: Vec<Run>,
        }
        let found: Found = self.post(
            "search runs",
            "/api/2.0/mlflow/runs/search",
            &json!({ "experiment_ids": [experiment_id], "filter": filter, "max_results": 1000 }),
        )?;
        Ok(found.runs)
    }

    /// Uploads `bytes` as `path` (relative, `/`-separated) under `artifact_uri`, through the
    /// server's artifact proxy.
    ///
    /// # Errors
    /// [`MlflowError::ArtifactUri`] for a URI the proxy does not serve, or a failed call.
    pub fn upload_artifact(
        &self,
        artifact_uri: &str,
        path: &str,
        bytes: &[u8],
    ) -> Result<(), MlflowError> {
        let url = format!("{}/{path}", proxy_path(artifact_uri)?);
        debug!(path, bytes = bytes.len(), "uploading artifact");
        self.send(
            "upload artifact",
            "PUT",
            &url,
            &[],
            Some(("application/octet-stream", bytes)),
        )
        .map(|_| ())
    }

    /// Downloads `path` under `artifact_uri` through the server's artifact proxy.
    ///
    /// # Errors
    /// [`MlflowError::ArtifactUri`] for a URI the proxy does not serve, or a failed call.
    pub fn download_artifact(
        &self,
        artifact_uri: &str,
        path: &str,
    ) -> Result<Vec<u8>, MlflowError> {
        let url = format!("{}/{path}", proxy_path(artifact_uri)?);
        self.send("download artifact", "GET", &url, &[], None)
    }

    /// The artifacts of `run_id` directly under `path` (empty: the root).
    ///
    /// # Errors
    /// Any failed call.
    pub fn list_artifacts(&self, run_id: &str, path: &str) -> Result<Vec<FileInfo>, MlflowError> {
        #[derive(Deserialize)]
        struct Listed {
            #[serde(default)]
            files: Vec<FileInfo>,
        }
        let listed: Listed = self.get(
            "list artifacts",
            "/api/2.0/mlflow/artifacts/list",
            &[("run_id", run_id), ("path", path)],
        )?;
        Ok(listed.files)
    }

    /// Creates a logged model of `model_type` named `name` in `experiment_id`, produced by
    /// `source_run_id`; its files go to the returned `artifact_uri`, then
    /// [`Client::finalize_logged_model`] marks it ready.
    ///
    /// # Errors
    /// Any failed call.
    pub fn create_logged_model(
        &self,
        experiment_id: &str,
        name: &str,
        source_run_id: &str,
        model_type: &str,
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<LoggedModelInfo, MlflowError> {
        let created: LoggedModelEnvelope = self.post(
            "create logged model",
            "/api/2.0/mlflow/logged-models",
            &json!({
                "experiment_id": experiment_id,
                "name": name,
                "source_run_id": source_run_id,
                "model_type": model_type,
                "params": key_values(params),
                "tags": key_values(tags),
            }),
        )?;
        Ok(created.model.info)
    }

    /// Marks a logged model's upload done (`ready`) or failed.
    ///
    /// # Errors
    /// Any failed call.
    pub fn finalize_logged_model(
        &self,
        model_id: &str,
        ready: bool,
    ) -> Result<LoggedModelInfo, MlflowError> {
        // MLflow's LoggedModelStatus: 2 = LOGGED_MODEL_READY, 3 = LOGGED_MODEL_UPLOAD_FAILED.
        let status = if ready { 2 } else { 3 };
        let body = json!({ "model_id": model_id, "status": status })
            .to_string()
            .into_bytes();
        let answer = self.send(
            "finalize logged model",
            "PATCH",
            &format!("/api/2.0/mlflow/logged-models/{model_id}"),
            &[],
            Some(("application/json", &body)),
        )?;
        let finalized: LoggedModelEnvelope = decode("finalize logged model", &answer)?;
        Ok(finalized.model.info)
    }

    /// The logged model `model_id`.
    ///
    /// # Errors
    /// Any failed call ([`MlflowError::is_not_found`] when there is none).
    pub fn logged_model(&self, model_id: &str) -> Result<LoggedModelInfo, MlflowError> {
        let got: LoggedModelEnvelope = self.get(
            "get logged model",
            &format!("/api/2.0/mlflow/logged-models/{model_id}"),
            &[],
        )?;
        Ok(got.model.info)
    }

    /// Records logged model `model_id` as an output of `run_id` (the run page lists it).
    ///
    /// # Errors
    /// Any failed call.
    pub fn log_model_output(&self, run_id: &str, model_id: &str) -> Result<(), MlflowError> {
        let _: Value = self.post(
            "log outputs",
            "/api/2.0/mlflow/runs/outputs",
            &json!({ "run_id": run_id, "models": [{ "model_id": model_id, "step": 0 }] }),
        )?;
        Ok(())
    }

    /// The artifact location of a model version's `source`: a logged model's (`models:/m-…`,
    /// MLflow 3) or the run artifact URI itself (versions registered from a run's directory).
    ///
    /// # Errors
    /// The logged model cannot be read.
    pub fn source_artifact_uri(&self, source: &str) -> Result<String, MlflowError> {
        match source.strip_prefix("models:/") {
            Some(model_id) => Ok(self.logged_model(model_id)?.artifact_uri),
            None => Ok(source.to_owned()),
        }
    }

    /// Creates registered model `name`; one that exists already is fine.
    ///
    /// # Errors
    /// Any failed call other than "already exists".
    pub fn ensure_registered_model(&self, name: &str) -> Result<(), MlflowError> {
        match self.post::<Value>(
            "create registered model",
            "/api/2.0/mlflow/registered-models/create",
            &json!({ "name": name }),
        ) {
            Ok(_) => Ok(()),
            Err(MlflowError::Http { code, .. }) if code == "RESOURCE_ALREADY_EXISTS" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Registers logged model `model_id` (produced by `run_id`) as a new version of `name`.
    ///
    /// # Errors
    /// Any failed call.
    pub fn create_model_version(
        &self,
        name: &str,
        model_id: &str,
        run_id: &str,
        tags: &[(String, String)],
    ) -> Result<ModelVersionInfo, MlflowError> {
        #[derive(Deserialize)]
        struct Created {
            model_version: ModelVersionInfo,
        }
        let created: Created = self.post(
            "create model version",
            "/api/2.0/mlflow/model-versions/create",
            &json!({
                "name": name,
                "source": format!("models:/{model_id}"),
                "model_id": model_id,
                "run_id": run_id,
                "tags": key_values(tags),
            }),
        )?;
        Ok(created.model_version)
    }

    /// Points `alias` of registered model `name` at `version`.
    ///
    /// # Errors
    /// Any failed call.
    pub fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<(), MlflowError> {
        let _: Value = self.post(
            "set alias",
            "/api/2.0/mlflow/registered-models/alias",
            &json!({ "name": name, "alias": alias, "version": version }),
        )?;
        Ok(())
    }

    /// Removes `alias` from registered model `name`.
    ///
    /// # Errors
    /// Any failed call.
    pub fn delete_alias(&self, name: &str, alias: &str) -> Result<(), MlflowError> {
        // MLflow reads a DELETE's parameters from a JSON body, as its own client sends them.
        let bytes = json!({ "name": name, "alias": alias })
            .to_string()
            .into_bytes();
        self.send(
            "delete alias",
            "DELETE",
            "/api/2.0/mlflow/registered-models/alias",
            &[],
            Some(("application/json", &bytes)),
        )?;
        Ok(())
    }

    /// Sets tag `key` on version `version` of registered model `name`.
    ///
    /// # Errors
    /// Any failed call.
    pub fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
        value: &str,
    ) -> Result<(), MlflowError> {
        let _: Value = self.post(
            "set model version tag",
            "/api/2.0/mlflow/model-versions/set-tag",
            &json!({ "name": name, "version": version, "key": key, "value": value }),
        )?;
        Ok(())
    }

    /// Tags of version `version` of registered model `name`.
    ///
    /// # Errors
    /// Any failed call.
    pub fn model_version_tags(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Vec<KeyValue>, MlflowError> {
        let v: Value = self.get(
            "get model version",
            "/api/2.0/mlflow/model-versions/get",
            &[("name", name), ("version", version)],
        )?;
        serde_json::from_value(v["model_version"]["tags"].clone()).or(Ok(Vec::new()))
    }

    /// The version `alias` of registered model `name` points at.
    ///
    /// # Errors
    /// Any failed call ([`MlflowError::is_not_found`] when there is no such alias).
    pub fn model_version_by_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersionInfo, MlflowError> {
        #[derive(Deserialize)]
        struct Got {
            model_version: ModelVersionInfo,
        }
        let got: Got = self.get(
            "get model version by alias",
            "/api/2.0/mlflow/registered-models/alias",
            &[("name", name), ("alias", alias)],
        )?;
        Ok(got.model_version)
    }

    fn get<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, MlflowError> {
        let body = self.send(operation, "GET", path, query, None)?;
        decode(operation, &body)
    }

    fn post<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        body: &Value,
    ) -> Result<T, MlflowError> {
        let bytes = body.to_string().into_bytes();
        let body = self.send(
            operation,
            "POST",
            path,
            &[],
            Some(("application/json", &bytes)),
        )?;
        decode(operation, &body)
    }

    /// One request; a non-2xx answer becomes [`MlflowError::Http`] with MLflow's error code.
    fn send(
        &self,
        operation: &'static str,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Vec<u8>, MlflowError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: ureq::Error| MlflowError::Unreachable {
            url: self.base.clone(),
            operation,
            detail: e.to_string(),
        };
        let auth = self.auth.header();
        let mut response = match body {
            None => {
                let mut req = match method {
                    "GET" => self.agent.get(&url),
                    _ => self.agent.delete(&url),
                };
                for (k, v) in query {
                    req = req.query(*k, *v);
                }
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                req.call()
            }
            Some((content_type, bytes)) => {
                let mut req = match method {
                    "PUT" => self.agent.put(&url),
                    "PATCH" => self.agent.patch(&url),
                    "DELETE" => self.agent.delete(&url).force_send_body(),
                    _ => self.agent.post(&url),
                };
                for (k, v) in query {
                    req = req.query(*k, *v);
                }
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                req.header("content-type", content_type).send(bytes)
            }
        }
        .map_err(unreachable)?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_DOWNLOAD_BYTES)
            .read_to_vec()
            .map_err(unreachable)?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = String::from_utf8_lossy(&bytes);
        Err(MlflowError::Http {
            operation,
            status,
            code: parsed["error_code"].as_str().unwrap_or("").to_owned(),
            message: parsed["message"]
                .as_str()
                .map_or_else(|| text.chars().take(300).collect(), str::to_owned),
        })
    }
}

/// The proxy path of an `mlflow-artifacts:` URI: `mlflow-artifacts:/1/<run>/artifacts` (or with
/// a host, `mlflow-artifacts://host:port/1/…`) → `/api/2.0/mlflow-artifacts/artifacts/1/<run>/artifacts`.
///
/// # Errors
/// [`MlflowError::ArtifactUri`] for any other scheme (the server was started without
/// `--serve-artifacts`, so its artifacts are not reachable over HTTP).
pub fn proxy_path(artifact_uri: &str) -> Result<String, MlflowError> {
    let rest = artifact_uri
        .strip_prefix("mlflow-artifacts:")
        .ok_or_else(|| MlflowError::ArtifactUri(artifact_uri.to_owned()))?;
    let rest = match rest.strip_prefix("//") {
        Some(with_host) => with_host.find('/').map_or("", |i| &with_host[i..]),
        None => rest,
    };
    Ok(format!(
        "/api/2.0/mlflow-artifacts/artifacts/{}",
        rest.trim_matches('/')
    ))
}

fn key_values(pairs: &[(String, String)]) -> Vec<Value> {
    pairs
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect()
}

fn decode<T: DeserializeOwned>(operation: &'static str, body: &[u8]) -> Result<T, MlflowError> {
    serde_json::from_slice(body).map_err(|e| MlflowError::Decode {
        operation,
        detail: e.to_string(),
    })
}

fn string_at(v: &Value, pointer: &str, operation: &'static str) -> Result<String, MlflowError> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| MlflowError::Decode {
            operation,
            detail: format!("no string at {pointer}"),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris_map_onto_the_proxy_route() {
        assert_eq!(
            proxy_path("mlflow-artifacts:/1/abc/artifacts").unwrap(),
            "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts"
        );
        assert_eq!(
            proxy_path("mlflow-artifacts://127.0.0.1:5000/1/abc/artifacts/").unwrap(),
            "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts"
        );
        assert!(matches!(
            proxy_path("file:///tmp/mlruns/1/abc/artifacts"),
            Err(MlflowError::ArtifactUri(_))
        ));
    }

    #[test]
    fn basic_auth_is_base64_of_user_colon_password() {
        // RFC 7617's example.
        let auth = Auth::Basic {
            username: "Aladdin".into(),
            password: "open sesame".into(),
        };
        assert_eq!(auth.header().unwrap(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(
            format!("{:?}", Auth::Token("secret".into())),
            "token(redacted)"
        );
    }

    #[test]
    fn a_closed_port_is_unreachable_and_names_the_url() {
        let c = Client::new("http://127.0.0.1:1", Auth::None, Duration::from_secs(2));
        let err = c.health().unwrap_err();
        assert!(matches!(err, MlflowError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains("http://127.0.0.1:1"), "{err}");
    }
}
