//! Command-line and environment configuration, validated once at startup.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use heart_kafka::{KafkaArgs, LogArgs, Role, client_config};
use heart_registry::{Registry, RegistryArgs, RegistryError};
use heart_schemas::{FieldSet, ImputationPolicy, RiskThresholds, ThresholdError, topics};
use thiserror::Error;

use crate::http::auth::{AuthSettings, BearerToken, TokenError, TokenFileError};
use crate::http::rate_limit::RateLimitSettings;
use crate::http::tls::{TlsError, TlsSettings};
use crate::score::{Explain, Rules};

/// Scores patient records from Kafka with the newest verified model, and serves a synchronous
/// HTTP sidecar (health, readiness, predict, metrics).
///
/// Every flag can also be set through the environment variable shown with it.
#[derive(Debug, Clone, Parser)]
#[command(name = "scorer", version, about, long_about)]
pub struct Config {
    /// Optional one-shot command instead of running the scorer.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Kafka connection settings.
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,

    /// Schema Registry: needed to read Confluent-framed records and to write them.
    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Header of the records the scorer writes. single-object: Avro single-object encoding (the
    /// schema's fingerprint; readable without a registry). confluent: the Confluent wire format
    /// (a registry id; for consumers that deserialize through a Schema Registry), which needs
    /// --schema-registry-url and the subjects `<predictions-topic>-value` and
    /// `<dead-letter-topic>-value`. Input records may use either, record by record.
    #[arg(long, env = "SCORER_OUTPUT_FRAMING", value_enum, default_value_t = OutputFramingArg::SingleObject)]
    pub output_framing: OutputFramingArg,

    /// With --output-framing confluent: register this build's Prediction and DeadLetter schemas
    /// under their subjects if they are not there. Off by default, so that a schema change is
    /// a deliberate step of whoever owns the subjects; without it a missing subject is a startup
    /// error that says which.
    #[arg(long, env = "SCORER_SCHEMA_REGISTRY_AUTO_REGISTER")]
    pub schema_registry_auto_register: bool,

    /// Consumer group shared by all scorer replicas.
    #[arg(long, env = "SCORER_GROUP_ID", default_value = "heart-scorer")]
    pub group_id: String,

    /// Topic with Avro PatientRecords to score.
    #[arg(long, env = "SCORER_PATIENTS_TOPIC", default_value = topics::PATIENTS)]
    pub patients_topic: String,

    /// Topic the Avro Predictions are written to.
    #[arg(long, env = "SCORER_PREDICTIONS_TOPIC", default_value = topics::PREDICTIONS)]
    pub predictions_topic: String,

    /// Topic records that cannot be scored are written to, with the reason.
    #[arg(long, env = "SCORER_DEAD_LETTER_TOPIC", default_value = topics::DEAD_LETTERS)]
    pub dead_letter_topic: String,

    /// Compacted topic of ModelVersions, read to its end at start and followed afterwards.
    #[arg(long, env = "SCORER_MODELS_TOPIC", default_value = topics::MODELS)]
    pub models_topic: String,

    /// Name of the model to serve (the models topic's key).
    #[arg(long, env = "SCORER_MODEL_NAME", default_value = "heart-disease")]
    pub model_name: String,

    /// Serve exactly this model version and ignore newer ones.
    #[arg(long, env = "SCORER_PIN_MODEL_VERSION")]
    pub pin_model_version: Option<i64>,

    /// Champion and challenger: score every record also with this version of the model, in
    /// the shadow. It is never activated; its predictions go to --shadow-topic in the same
    /// transaction, and metrics compare them with the active model's. Promote it by publishing
    /// its artifact again (as a newer version). See docs/shadow.md.
    #[arg(long, env = "SCORER_SHADOW_MODEL_VERSION")]
    pub shadow_model_version: Option<i64>,

    /// Champion and challenger from the MLflow model registry: shadow the version that holds
    /// this alias, e.g. models:/heart-disease@challenger (needs --mlflow-uri). The alias is
    /// looked up again every --shadow-refresh-ms: when it moves, the version it names is
    /// downloaded, verified and shadowed; when it is removed, the shadow stops. The challenger
    /// is not on the models topic, so its predictions name its MLflow registry version.
    /// Promote it with `trainer publish --from-mlflow` (same reference). See docs/shadow.md.
    #[arg(
        long,
        env = "SCORER_SHADOW_FROM_MLFLOW",
        value_name = "models:/NAME@ALIAS",
        conflicts_with = "shadow_model_version"
    )]
    pub shadow_from_mlflow: Option<String>,

    /// How often --shadow-from-mlflow looks its alias up again, milliseconds.
    #[arg(long, env = "SCORER_SHADOW_REFRESH_MS", default_value_t = 30_000)]
    pub shadow_refresh_ms: u64,

    /// Topic for the shadow model's predictions (with --shadow-model-version or
    /// --shadow-from-mlflow).
    #[arg(long, env = "SCORER_SHADOW_TOPIC", default_value = topics::PREDICTIONS_SHADOW)]
    pub shadow_topic: String,

    /// Run the HTTP sidecar only, from a model file written by `trainer train` (no Kafka).
    #[arg(long, env = "SCORER_MODEL_FILE")]
    pub model_file: Option<PathBuf>,

    /// exactly-once: predictions, dead letters and offsets commit in one Kafka transaction.
    /// at-least-once: offsets are committed after every output of a batch is acknowledged;
    /// a crash can then repeat a batch's outputs (for clusters without transactions).
    #[arg(long, env = "SCORER_DELIVERY", value_enum, default_value_t = Delivery::ExactlyOnce)]
    pub delivery: Delivery,

    /// Transactional id for exactly-once mode; must be unique per replica and stable across its
    /// restarts so a restarted replica fences its previous incarnation at once. Defaults to
    /// `<group-id>-<hostname>`.
    #[arg(long, env = "SCORER_TRANSACTIONAL_ID")]
    pub transactional_id: Option<String>,

    /// Exactly-once: transactional producers that take turns, one commit group each, so a
    /// transaction never starts while the previous one's markers are still being written
    /// (the broker answers CONCURRENT_TRANSACTIONS and librdkafka retries after a fixed 20 ms).
    /// Commits stay one at a time, in order. The first producer uses the transactional id,
    /// the others `<id>-1`, `<id>-2`, … (a prefixed ACL on the id covers them).
    #[arg(long, env = "SCORER_TRANSACTIONAL_PRODUCERS", default_value_t = 2,
          value_parser = clap::value_parser!(u8).range(1..=8))]
    pub transactional_producers: u8,

    /// How long the broker keeps a transaction open before aborting it (a crashed replica's
    /// open transaction holds back read_committed consumers at most this long).
    #[arg(long, env = "SCORER_TRANSACTION_TIMEOUT_MS", default_value_t = 10_000)]
    pub transaction_timeout_ms: u64,

    /// Most records in one batch (one transaction, or one offset commit).
    #[arg(long, env = "SCORER_BATCH_MAX_RECORDS", default_value_t = 10_000)]
    pub batch_max_records: usize,

    /// A batch is handed to the output stage when it is full, or when the output stage is idle
    /// and the batch has gathered records for this long. Under load the output stage is busy,
    /// so batches grow on their own while the previous one commits; at low rates this bounds
    /// the latency a record waits for company.
    #[arg(long, env = "SCORER_BATCH_LINGER_MS", default_value_t = 1)]
    pub batch_linger_ms: u64,

    /// Records in the drift window: the last this many predictions' inputs, against which
    /// `scorer_feature_psi{field}` (population stability index against the training data) and
    /// `scorer_feature_missing_ratio{field}` are computed. 0 turns drift off. See
    /// docs/drift.md.
    #[arg(long, env = "SCORER_DRIFT_WINDOW_RECORDS", default_value_t = 10_000)]
    pub drift_window_records: usize,

    /// Batches fetched and scored ahead of the one being written and committed (the bound of
    /// the hand-off between the fetch and output stages).
    #[arg(long, env = "SCORER_MAX_IN_FLIGHT_BATCHES", default_value_t = 2)]
    pub max_in_flight_batches: usize,

    /// Most records in one commit (one transaction, or one offset commit): batches waiting when
    /// a commit begins join it, up to this many records.
    #[arg(long, env = "SCORER_COMMIT_MAX_RECORDS", default_value_t = 20_000)]
    pub commit_max_records: usize,

    /// librdkafka linger.ms of the output producer: how long it waits to fill a request.
    #[arg(long, env = "SCORER_LINGER_MS", default_value_t = 1)]
    pub linger_ms: u64,

    /// librdkafka fetch.wait.max.ms of the input consumer: how long the broker may hold a
    /// fetch for more data (lower is lower latency at low rates, more requests).
    #[arg(long, env = "SCORER_FETCH_WAIT_MAX_MS", default_value_t = 10)]
    pub fetch_wait_max_ms: u64,

    /// When batches have failed for this long without one committing, or an idle replica has
    /// reached no broker for this long, or a partition has waited this long for the Schema
    /// Registry, `/readyz` answers 503 with the reason and an error is logged (every 30 s while
    /// it lasts).
    #[arg(long, env = "SCORER_STALL_TIMEOUT_MS", default_value_t = 30_000)]
    pub stall_timeout_ms: u64,

    /// Attempts to recreate the output producer after a fatal error (fenced, invalid state,
    /// epoch errors) before the replica exits non-zero to be restarted.
    #[arg(long, env = "SCORER_RECOVERY_ATTEMPTS", default_value_t = 10)]
    pub recovery_attempts: u32,

    /// Probability at or above which a prediction is MEDIUM risk.
    #[arg(long, env = "SCORER_MEDIUM_THRESHOLD", default_value_t = 0.3)]
    pub medium_threshold: f64,

    /// Probability at or above which a prediction is HIGH risk.
    #[arg(long, env = "SCORER_HIGH_THRESHOLD", default_value_t = 0.7)]
    pub high_threshold: f64,

    /// Most missing attributes imputed (with the model's training statistics) in one record;
    /// a record missing more is a dead letter / HTTP 422 `too_many_missing`. 0 imputes nothing.
    /// Why 6: docs/missing-data.md.
    #[arg(long, env = "SCORER_IMPUTE_MAX_FIELDS", default_value_t = ImputationPolicy::DEFAULT_MAX_IMPUTED)]
    pub impute_max_fields: usize,

    /// Attributes never imputed: a record missing one is `too_many_missing` whatever else it
    /// has. Comma-separated UCI names; empty: any may be imputed.
    #[arg(
        long,
        env = "SCORER_NEVER_IMPUTE",
        value_delimiter = ',',
        default_value = "age,sex,cp"
    )]
    pub never_impute: Vec<String>,

    /// Put an explanation on every prediction written to the predictions topic (and by
    /// score-file): the model's output as a base plus the --explain-top-k largest per-field
    /// contributions (docs/explanations.md). Off by default; HTTP asks per request with
    /// `?explain=true`, whatever this says.
    #[arg(long, env = "SCORER_EXPLAIN_STREAM")]
    pub explain_stream: bool,

    /// How many contributions an explanation lists, largest first (1 to 13); the others are
    /// summed in its `other`.
    #[arg(long, env = "SCORER_EXPLAIN_TOP_K", default_value_t = 5,
          value_parser = clap::value_parser!(u8).range(1..=13))]
    pub explain_top_k: u8,

    /// On SIGTERM/SIGINT: how long to finish the batches in hand, commit and leave the group.
    /// The process ends within this plus 2 s whatever the broker does; a second signal ends it
    /// at once.
    #[arg(long, env = "SCORER_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub drain_timeout_ms: u64,

    /// Consumer session timeout; must exceed the drain timeout so a draining replica keeps its
    /// partitions until it has committed.
    #[arg(long, env = "SCORER_SESSION_TIMEOUT_MS", default_value_t = 45_000)]
    pub session_timeout_ms: u64,

    /// Upper bound of fetched-but-unscored data per replica, KiB (bounds memory when the
    /// output side is slow).
    #[arg(long, env = "SCORER_MAX_QUEUED_KBYTES", default_value_t = 3072)]
    pub max_queued_kbytes: u32,

    /// Niceness of the pipeline's threads (and of librdkafka's, which inherit it), 0–19: when
    /// the stream saturates the CPU, the HTTP sidecar's threads still win it, so `/predict`
    /// keeps its latency. 0 leaves them at normal priority.
    #[arg(long, env = "SCORER_PIPELINE_NICENESS", default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=19))]
    pub pipeline_niceness: u8,

    /// Sidecar listen address.
    #[arg(long, env = "SCORER_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Largest accepted HTTP request body.
    #[arg(long, env = "SCORER_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// Most patients in one `POST /predict/batch`.
    #[arg(long, env = "SCORER_PREDICT_BATCH_MAX", default_value_t = 1000)]
    pub predict_batch_max: usize,

    /// Serve the sidecar over TLS with this PEM certificate chain (the server's certificate
    /// first), and --http-tls-key; give both or neither (plain HTTP). Both files are re-read
    /// when they change (checked every 2 s), so a certificate cert-manager renews is served
    /// without a restart; a pair that cannot be used is logged and the previous one kept.
    #[arg(
        long,
        env = "SCORER_HTTP_TLS_CERT",
        value_name = "FILE",
        help_heading = "Sidecar security"
    )]
    pub http_tls_cert: Option<PathBuf>,

    /// The PEM private key of --http-tls-cert (PKCS#8, PKCS#1 or SEC1, unencrypted).
    #[arg(
        long,
        env = "SCORER_HTTP_TLS_KEY",
        value_name = "FILE",
        help_heading = "Sidecar security"
    )]
    pub http_tls_key: Option<PathBuf>,

    /// Require `Authorization: Bearer <token>` on /predict, /predict/batch, /model and /v2/*
    /// (answering 401 without one, 403 for a token not accepted), with the tokens in this file:
    /// one a line, blank lines and `#` comment lines ignored. List two during a rotation. The
    /// file is re-read when it changes.
    #[arg(
        long,
        env = "SCORER_HTTP_AUTH_TOKEN_FILE",
        value_name = "FILE",
        help_heading = "Sidecar security"
    )]
    pub http_auth_token_file: Option<PathBuf>,

    /// A bearer token accepted as those of --http-auth-token-file (repeat the flag, or
    /// comma-separate them in the environment). Prefer the environment or the file: a flag's
    /// value shows in the process list.
    #[arg(
        long = "http-auth-token",
        env = "SCORER_HTTP_AUTH_TOKENS",
        value_name = "TOKEN",
        value_delimiter = ',',
        hide_env_values = true,
        help_heading = "Sidecar security"
    )]
    pub http_auth_tokens: Vec<BearerToken>,

    /// With bearer tokens: require one on /healthz and /readyz too (open by default, for the
    /// kubelet's probes).
    #[arg(
        long,
        env = "SCORER_HTTP_AUTH_HEALTH",
        help_heading = "Sidecar security"
    )]
    pub http_auth_health: bool,

    /// With bearer tokens: require one on /metrics too (open by default, for Prometheus).
    #[arg(
        long,
        env = "SCORER_HTTP_AUTH_METRICS",
        help_heading = "Sidecar security"
    )]
    pub http_auth_metrics: bool,

    /// Requests a second one client (peer IP address) may send; beyond it the sidecar answers
    /// 429 with Retry-After. /healthz, /readyz and /metrics are not limited. 0 turns it off.
    #[arg(long, env = "SCORER_HTTP_RATE_LIMIT_PER_S", value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000), help_heading = "Sidecar security")]
    pub http_rate_limit_per_s: u32,

    /// Requests one client may send at once above --http-rate-limit-per-s before it is
    /// limited [default: one second's worth, the rate].
    #[arg(
        long,
        env = "SCORER_HTTP_RATE_LIMIT_BURST",
        value_name = "N",
        help_heading = "Sidecar security"
    )]
    pub http_rate_limit_burst: Option<u32>,

    /// The MLflow server --shadow-from-mlflow reads from (last: its heading applies to what
    /// follows).
    #[command(flatten, next_help_heading = "MLflow (with --shadow-from-mlflow)")]
    pub mlflow: heart_mlflow::MlflowConnection,
}

/// The sidecar's protection flags, checked: what `http::Sidecar::load` reads and serves.
#[derive(Debug, Clone, Default)]
pub struct HttpSecurity {
    /// TLS, if on.
    pub tls: Option<TlsSettings>,
    /// Bearer tokens, if on.
    pub auth: Option<AuthSettings>,
    /// The per-client rate limit, if on.
    pub rate_limit: Option<RateLimitSettings>,
}

/// One-shot commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Exit 0 if the sidecar at --http-addr answers GET /healthz with 200 (for container
    /// HEALTHCHECKs; no curl needed). Give it the scorer's own flags or environment: with
    /// --http-tls-cert it speaks TLS and trusts exactly that certificate; with
    /// --http-auth-health it sends the first configured token.
    Healthcheck,
    /// Score a file (UCI, CSV or JSONL) with a model file, without Kafka: predictions to
    /// --output, unscorable rows to --rejects with the dead-letter topic's reason codes and
    /// messages. Exits 0 when every row was read, whether or not some were rejected; non-zero
    /// only when the model, the input or an output cannot be read or written. Risk levels use
    /// the scorer's thresholds: `scorer --high-threshold 0.8 score-file …` or
    /// SCORER_HIGH_THRESHOLD / SCORER_MEDIUM_THRESHOLD.
    ScoreFile(Box<ScoreFileArgs>),
}

/// `scorer score-file`. The risk thresholds are the scorer's (`--medium-threshold`,
/// `--high-threshold`, before the subcommand, or their environment variables).
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("model").required(true).args(["model_file", "from_mlflow"])))]
pub struct ScoreFileArgs {
    /// Model file written by `trainer train` (`<out>/model.avro`).
    #[arg(long, env = "SCORER_MODEL_FILE", value_name = "PATH")]
    pub model_file: Option<PathBuf>,

    /// A registered MLflow model version instead of --model-file, e.g.
    /// models:/heart-disease@champion (needs --mlflow-uri): the version's model.avro is
    /// downloaded and verified like a file, and the predictions name the same model version.
    #[arg(long, env = "SCORER_FROM_MLFLOW", value_name = "models:/NAME@ALIAS")]
    pub from_mlflow: Option<String>,

    /// The MLflow server --from-mlflow reads from.
    #[command(flatten, next_help_heading = "MLflow (with --from-mlflow)")]
    pub mlflow: heart_mlflow::MlflowConnection,

    /// Rows to score; `-` reads stdin.
    #[arg(long, env = "SCORER_SCORE_FILE_INPUT", value_name = "PATH")]
    pub input: PathBuf,

    /// auto: JSONL if the first non-blank character is `{`, else UCI (no header, 13 or 14
    /// columns in UCI order, `?` = missing) if the first cell is a number, else CSV with a header
    /// of UCI attribute names (optional `patient_id` and `event_time` columns).
    #[arg(long, env = "SCORER_SCORE_FILE_INPUT_FORMAT", value_enum, default_value_t = InputFormat::Auto)]
    pub input_format: InputFormat,

    /// Where predictions go; `-` is stdout.
    #[arg(
        long,
        env = "SCORER_SCORE_FILE_OUTPUT",
        value_name = "PATH",
        default_value = "-"
    )]
    pub output: PathBuf,

    /// Format of --output [default: csv if --output ends in .csv, else jsonl].
    #[arg(long, env = "SCORER_SCORE_FILE_OUTPUT_FORMAT", value_enum)]
    pub output_format: Option<OutputFormat>,

    /// JSON lines of the rows that could not be scored: `line`, `reason`, `message`, `row`.
    /// Without it they are only counted in the summary.
    #[arg(long, env = "SCORER_SCORE_FILE_REJECTS", value_name = "PATH")]
    pub rejects: Option<PathBuf>,

    /// Id of a row without a `patient_id`: `<prefix><line>` [default: cleveland- for UCI rows,
    /// csv- or jsonl- otherwise, as `producer send` names them].
    #[arg(long, env = "SCORER_SCORE_FILE_ID_PREFIX")]
    pub id_prefix: Option<String>,
}

/// How `score-file` reads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// Decide from the first line.
    Auto,
    /// The UCI processed file: no header, the 13 attributes (and optionally `num`) in order.
    Uci,
    /// CSV with a header of UCI attribute names, any order.
    Csv,
    /// One JSON object per line, as `POST /predict` takes it.
    Jsonl,
}

/// How `score-file` writes predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One Prediction JSON object per line.
    Jsonl,
    /// A header and one row per Prediction.
    Csv,
}

impl ScoreFileArgs {
    /// --output-format, else decided by --output's extension.
    pub fn output_format(&self) -> OutputFormat {
        self.output_format.unwrap_or_else(|| {
            if self
                .output
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            {
                OutputFormat::Csv
            } else {
                OutputFormat::Jsonl
            }
        })
    }
}

/// The header the scorer writes in front of its outputs' Avro bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFramingArg {
    /// Avro single-object encoding: `C3 01` and the schema's 8-byte fingerprint.
    SingleObject,
    /// Confluent wire format: `00` and the schema's 4-byte registry id.
    Confluent,
}

/// Delivery guarantee of the Kafka pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Delivery {
    /// Kafka transactions: each input's output is committed exactly once.
    ExactlyOnce,
    /// Commit offsets after outputs are acknowledged: no loss, duplicates possible after a crash.
    AtLeastOnce,
}

/// A configuration that parses but cannot work.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// `--shadow-from-mlflow` or the MLflow flags are unusable.
    #[error("--shadow-from-mlflow: {0}")]
    ShadowFromMlflow(#[source] heart_mlflow::ConfigError),
    /// A zero refresh period.
    #[error("--shadow-refresh-ms must be above 0")]
    ZeroShadowRefresh,
    /// Risk thresholds out of order.
    #[error(transparent)]
    Thresholds(#[from] ThresholdError),
    /// The drain would outlast the session, so the group could reassign partitions mid-drain.
    #[error(
        "drain timeout ({drain_ms} ms) must be shorter than the session timeout ({session_ms} ms)"
    )]
    DrainExceedsSession {
        /// --drain-timeout-ms.
        drain_ms: u64,
        /// --session-timeout-ms.
        session_ms: u64,
    },
    /// A Kafka client cannot be configured as asked.
    #[error(transparent)]
    Kafka(#[from] heart_kafka::ClientConfigError),
    /// The Schema Registry flags are invalid.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// `--never-impute` names something that is not a UCI attribute.
    #[error(
        "--never-impute: {name:?} is not one of the 13 UCI attributes (age, sex, cp, trestbps, chol, fbs, restecg, thalach, exang, oldpeak, slope, ca, thal)"
    )]
    UnknownField {
        /// The name given.
        name: String,
    },
    /// Confluent output framing without a registry to take the ids from.
    #[error(
        "--output-framing confluent needs --schema-registry-url (SCHEMA_REGISTRY_URL): the ids come from the registry"
    )]
    FramingNeedsRegistry,
    /// The shadow is the pinned version: the replica would never have an active model.
    #[error(
        "--shadow-model-version {version} is also --pin-model-version: the shadow must be another version than the one served"
    )]
    ShadowIsPinned {
        /// The version given to both.
        version: i64,
    },
    /// A count that must be positive is zero.
    #[error("{flag} must be at least 1")]
    Zero {
        /// The flag.
        flag: &'static str,
    },
    /// Half of a TLS pair.
    #[error(
        "{given} needs {missing} too: give the certificate and its key, or neither for plain HTTP"
    )]
    TlsHalfPair {
        /// The flag given.
        given: &'static str,
        /// The one missing.
        missing: &'static str,
    },
    /// The certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An auth flag without tokens to check.
    #[error(
        "{flag} protects routes with bearer tokens, but none is given: add --http-auth-token-file or SCORER_HTTP_AUTH_TOKENS"
    )]
    AuthWithoutTokens {
        /// The flag.
        flag: &'static str,
    },
    /// A token given on the command line or in the environment cannot be one.
    #[error("--http-auth-token / SCORER_HTTP_AUTH_TOKENS: token {position} {problem}")]
    Token {
        /// 1-based position among the tokens given.
        position: usize,
        /// What is wrong with it (never the token).
        problem: TokenError,
    },
    /// The token file cannot be used.
    #[error(transparent)]
    TokenFile(#[from] TokenFileError),
    /// A burst without a rate.
    #[error("--http-rate-limit-burst needs --http-rate-limit-per-s above 0")]
    BurstWithoutRate,
}

impl Config {
    /// Checks rules that involve more than one flag.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<Rules, ConfigError> {
        if let Some(version) = self.shadow_model_version
            && self.pin_model_version == Some(version)
        {
            return Err(ConfigError::ShadowIsPinned { version });
        }
        if let Some(uri) = &self.shadow_from_mlflow {
            self.mlflow
                .validate()
                .and_then(|()| self.mlflow.validate_from(uri))
                .map_err(ConfigError::ShadowFromMlflow)?;
            if self.shadow_refresh_ms == 0 {
                return Err(ConfigError::ZeroShadowRefresh);
            }
        }
        if self.drain_timeout_ms >= self.session_timeout_ms {
            return Err(ConfigError::DrainExceedsSession {
                drain_ms: self.drain_timeout_ms,
                session_ms: self.session_timeout_ms,
            });
        }
        for (flag, value) in [
            ("--batch-max-records", self.batch_max_records),
            ("--max-in-flight-batches", self.max_in_flight_batches),
            ("--commit-max-records", self.commit_max_records),
            ("--recovery-attempts", self.recovery_attempts as usize),
            ("--predict-batch-max", self.predict_batch_max),
            ("--max-body-bytes", self.max_body_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { flag });
            }
        }
        self.http_security()?;
        self.consumer_config()?;
        self.producer_config(0)?;
        if self.registry()?.is_none() && self.output_framing == OutputFramingArg::Confluent {
            return Err(ConfigError::FramingNeedsRegistry);
        }
        self.rules()
    }

    /// The risk thresholds and the imputation policy, checked.
    ///
    /// # Errors
    /// [`ConfigError::Thresholds`] or [`ConfigError::UnknownField`].
    pub fn rules(&self) -> Result<Rules, ConfigError> {
        let never = FieldSet::from_names(
            self.never_impute
                .iter()
                .map(|n| n.trim())
                .filter(|n| !n.is_empty()),
        )
        .map_err(|name| ConfigError::UnknownField { name })?;
        Ok(Rules {
            thresholds: RiskThresholds::new(self.medium_threshold, self.high_threshold)?,
            imputation: ImputationPolicy::new(self.impute_max_fields, never),
            explain: Explain {
                stream: self.explain_stream,
                top_k: usize::from(self.explain_top_k),
            },
        })
    }

    /// The sidecar's TLS, bearer-token and rate-limit flags, checked (no file is read here).
    ///
    /// # Errors
    /// [`ConfigError::TlsHalfPair`], [`ConfigError::AuthWithoutTokens`],
    /// [`ConfigError::Token`], [`ConfigError::BurstWithoutRate`] or [`ConfigError::Zero`].
    pub fn http_security(&self) -> Result<HttpSecurity, ConfigError> {
        let tls = match (&self.http_tls_cert, &self.http_tls_key) {
            (Some(cert), Some(key)) => Some(TlsSettings {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::TlsHalfPair {
                    given: "--http-tls-cert",
                    missing: "--http-tls-key",
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::TlsHalfPair {
                    given: "--http-tls-key",
                    missing: "--http-tls-cert",
                });
            }
        };
        // An empty SCORER_HTTP_AUTH_TOKENS (or a trailing comma) gives no token.
        let tokens: Vec<BearerToken> = self
            .http_auth_tokens
            .iter()
            .filter(|t| !t.is_empty())
            .cloned()
            .collect();
        for (i, token) in tokens.iter().enumerate() {
            token.check().map_err(|problem| ConfigError::Token {
                position: i + 1,
                problem,
            })?;
        }
        let auth = if self.http_auth_token_file.is_some() || !tokens.is_empty() {
            Some(AuthSettings {
                token_file: self.http_auth_token_file.clone(),
                tokens,
                health: self.http_auth_health,
                metrics: self.http_auth_metrics,
            })
        } else if self.http_auth_health {
            return Err(ConfigError::AuthWithoutTokens {
                flag: "--http-auth-health",
            });
        } else if self.http_auth_metrics {
            return Err(ConfigError::AuthWithoutTokens {
                flag: "--http-auth-metrics",
            });
        } else {
            None
        };
        let rate_limit = match (
            NonZeroU32::new(self.http_rate_limit_per_s),
            self.http_rate_limit_burst,
        ) {
            (None, None) => None,
            (None, Some(_)) => return Err(ConfigError::BurstWithoutRate),
            (Some(per_s), burst) => Some(RateLimitSettings {
                per_s,
                burst: NonZeroU32::new(burst.unwrap_or(per_s.get())).ok_or(ConfigError::Zero {
                    flag: "--http-rate-limit-burst",
                })?,
            }),
        };
        Ok(HttpSecurity {
            tls,
            auth,
            rate_limit,
        })
    }

    /// The consumer's configuration.
    pub(crate) fn consumer_config(
        &self,
    ) -> Result<rdkafka::ClientConfig, heart_kafka::ClientConfigError> {
        client_config(
            &self.kafka,
            "heart-scorer",
            Role::PipelineConsumer {
                group_id: &self.group_id,
            },
            &[
                ("session.timeout.ms", self.session_timeout_ms.to_string()),
                (
                    "queued.max.messages.kbytes",
                    self.max_queued_kbytes.to_string(),
                ),
                ("statistics.interval.ms", "5000".into()),
                ("fetch.wait.max.ms", self.fetch_wait_max_ms.to_string()),
                // librdkafka waits this long (default 1000 ms) before fetching a partition again
                // once its prefetch queue was full; with a small queue that idled the pipeline for
                // most of every second (150k records/s instead of 550k on the bench).
                ("fetch.queue.backoff.ms", "10".into()),
            ],
        )
    }

    /// How many output producers take turns: `--transactional-producers` exactly-once, one
    /// at-least-once.
    pub(crate) fn output_producers(&self) -> usize {
        match self.delivery {
            Delivery::ExactlyOnce => usize::from(self.transactional_producers),
            Delivery::AtLeastOnce => 1,
        }
    }

    /// The configuration of output producer `index` (< [`Config::output_producers`]).
    pub(crate) fn producer_config(
        &self,
        index: usize,
    ) -> Result<rdkafka::ClientConfig, heart_kafka::ClientConfigError> {
        let transactional_id = match index {
            0 => self.transactional_id(),
            i => format!("{}-{i}", self.transactional_id()),
        };
        let role = match self.delivery {
            Delivery::ExactlyOnce => Role::TransactionalProducer {
                transactional_id: &transactional_id,
            },
            Delivery::AtLeastOnce => Role::IdempotentProducer,
        };
        let mut tuning = vec![
            ("linger.ms", self.linger_ms.to_string()),
            ("queue.buffering.max.messages", "1000000".into()),
            ("batch.num.messages", "100000".into()),
            ("statistics.interval.ms", "0".into()),
            // Successes need no callback: a batch is done when nothing is left in flight.
            ("delivery.report.only.error", "true".into()),
        ];
        if self.delivery == Delivery::ExactlyOnce {
            tuning.push((
                "transaction.timeout.ms",
                self.transaction_timeout_ms.to_string(),
            ));
        }
        client_config(&self.kafka, "heart-scorer", role, &tuning)
    }

    /// The Schema Registry client, if a registry is configured.
    ///
    /// # Errors
    /// [`RegistryError::Config`] for an invalid URL, credentials or CA file.
    pub fn registry(&self) -> Result<Option<Registry>, RegistryError> {
        Ok(self.registry.validate()?.map(Registry::new))
    }

    /// The drain bound.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    /// The transactional id: the flag, else `<group>-<hostname>`.
    pub fn transactional_id(&self) -> String {
        self.transactional_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .or_else(|| {
                    std::fs::read_to_string("/etc/hostname")
                        .ok()
                        .map(|h| h.trim().to_owned())
                })
                .unwrap_or_else(|| "scorer".to_owned());
            format!("{}-{host}", self.group_id)
        })
    }

    /// What protects the sidecar, for the startup summary: never a token, only how many.
    fn http_security_summary(&self) -> String {
        let Ok(security) = self.http_security() else {
            return "invalid".to_owned();
        };
        let tls = if security.tls.is_some() { "on" } else { "off" };
        let auth = match &security.auth {
            None => "off".to_owned(),
            Some(a) => {
                let file = a
                    .token_file
                    .as_ref()
                    .map_or_else(String::new, |f| format!(" file={}", f.display()));
                let open: Vec<&str> = [("health", !a.health), ("metrics", !a.metrics)]
                    .into_iter()
                    .filter_map(|(route, open)| open.then_some(route))
                    .collect();
                format!(
                    "on(env_tokens={}{file} open={})",
                    a.tokens.len(),
                    if open.is_empty() {
                        "none".to_owned()
                    } else {
                        open.join("+")
                    }
                )
            }
        };
        let rate_limit = security.rate_limit.map_or_else(
            || "off".to_owned(),
            |r| format!("{}/s burst={}", r.per_s, r.burst),
        );
        format!("http_tls={tls} http_auth={auth} http_rate_limit={rate_limit}")
    }

    /// Whether any shadow is configured, and which.
    pub fn shadow_summary(&self) -> String {
        match (&self.shadow_from_mlflow, self.shadow_model_version) {
            (Some(uri), _) => uri.clone(),
            (None, Some(version)) => format!("version {version}"),
            (None, None) => "none".to_owned(),
        }
    }

    /// Whether a shadow model is configured (it may not have arrived yet).
    pub fn has_shadow(&self) -> bool {
        self.shadow_model_version.is_some() || self.shadow_from_mlflow.is_some()
    }

    /// The settings worth logging at startup, with secrets redacted.
    pub fn redacted_summary(&self) -> String {
        format!(
            "{} registry={} output_framing={:?} group={} patients={} predictions={} dead_letters={} models={} model={} pin={:?} shadow={} delivery={:?} producers={} batch={}/{}ms in_flight={} http={} {}",
            self.kafka.redacted(),
            self.registry
                .validate()
                .ok()
                .flatten()
                .map_or_else(|| "none".to_owned(), |r| r.redacted()),
            self.output_framing,
            self.group_id,
            self.patients_topic,
            self.predictions_topic,
            self.dead_letter_topic,
            self.models_topic,
            self.model_name,
            self.pin_model_version,
            self.shadow_summary(),
            self.delivery,
            self.output_producers(),
            self.batch_max_records,
            self.batch_linger_ms,
            self.max_in_flight_batches,
            self.http_addr,
            self.http_security_summary(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("scorer").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse(&[]);
        assert!(c.validate().is_ok());
        assert_eq!(c.delivery, Delivery::ExactlyOnce);
        assert_eq!(c.patients_topic, "patients");
    }

    #[test]
    fn the_shadow_cannot_be_the_pinned_version() {
        let c = parse(&["--pin-model-version", "3", "--shadow-model-version", "3"]);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::ShadowIsPinned { version: 3 })
        ));
        let c = parse(&["--pin-model-version", "3", "--shadow-model-version", "4"]);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn a_shadow_from_mlflow_needs_a_server_and_excludes_a_shadow_version() {
        let no_server = parse(&["--shadow-from-mlflow", "models:/heart-disease@challenger"]);
        let err = no_server.validate().unwrap_err();
        assert!(matches!(err, ConfigError::ShadowFromMlflow(_)), "{err}");
        assert!(
            heart_kafka::telemetry::chain(&err).contains("--mlflow-uri"),
            "{}",
            heart_kafka::telemetry::chain(&err)
        );
        let bad = parse(&[
            "--shadow-from-mlflow",
            "challenger",
            "--mlflow-uri",
            "http://127.0.0.1:5000",
        ]);
        assert!(matches!(
            bad.validate(),
            Err(ConfigError::ShadowFromMlflow(_))
        ));
        let ok = parse(&[
            "--shadow-from-mlflow",
            "models:/heart-disease@challenger",
            "--mlflow-uri",
            "http://127.0.0.1:5000",
        ]);
        assert!(ok.validate().is_ok());
        assert!(ok.has_shadow());
        let both = Config::try_parse_from([
            "scorer",
            "--shadow-from-mlflow",
            "models:/heart-disease@challenger",
            "--shadow-model-version",
            "3",
        ]);
        assert!(both.is_err(), "the two shadows exclude each other");
    }

    #[test]
    fn thresholds_out_of_order_are_rejected() {
        let c = parse(&["--medium-threshold", "0.8", "--high-threshold", "0.6"]);
        assert!(matches!(c.validate(), Err(ConfigError::Thresholds(_))));
    }

    #[test]
    fn drain_must_be_shorter_than_session() {
        let c = parse(&[
            "--drain-timeout-ms",
            "50000",
            "--session-timeout-ms",
            "45000",
        ]);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::DrainExceedsSession { .. })
        ));
    }

    #[test]
    fn kafka_properties_reach_the_clients_and_owned_keys_are_refused() {
        let c = parse(&[
            "--kafka-property",
            "socket.timeout.ms=1234",
            "--kafka-property",
            "debug=eos,msg",
        ]);
        assert!(c.validate().is_ok());
        let rd = c.producer_config(0).unwrap();
        assert_eq!(rd.get("socket.timeout.ms"), Some("1234"));
        assert_eq!(rd.get("debug"), Some("eos,msg"));
        assert!(matches!(
            parse(&["--kafka-property", "novalue"]).validate(),
            Err(ConfigError::Kafka(_))
        ));
        let err = parse(&["--kafka-property", "enable.auto.commit=true"])
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("enable.auto.commit"), "{err}");
    }

    #[test]
    fn confluent_output_needs_a_registry() {
        let c = parse(&["--output-framing", "confluent"]);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::FramingNeedsRegistry)
        ));
        let c = parse(&[
            "--output-framing",
            "confluent",
            "--schema-registry-url",
            "http://127.0.0.1:8081",
        ]);
        assert!(c.validate().is_ok());
        assert!(c.redacted_summary().contains("127.0.0.1:8081"));
    }

    #[test]
    fn summary_redacts_password() {
        let c = parse(&["--sasl-password", "hunter2"]);
        assert!(!c.redacted_summary().contains("hunter2"));
    }

    #[test]
    fn score_file_output_format_follows_the_extension_unless_given() {
        let args = |extra: &[&str]| {
            let mut all = vec!["score-file", "--model-file", "m.avro", "--input", "in.csv"];
            all.extend_from_slice(extra);
            match parse(&all).command {
                Some(Command::ScoreFile(a)) => a,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(args(&[]).output_format(), OutputFormat::Jsonl);
        assert_eq!(
            args(&["--output", "out.CSV"]).output_format(),
            OutputFormat::Csv
        );
        let a = args(&["--output", "out.csv", "--output-format", "jsonl"]);
        assert_eq!(a.output_format(), OutputFormat::Jsonl);
        assert_eq!(a.input_format, InputFormat::Auto);
    }

    #[test]
    fn the_sidecar_is_unprotected_by_default() {
        let s = parse(&[]).http_security().unwrap();
        assert!(s.tls.is_none() && s.auth.is_none() && s.rate_limit.is_none());
        assert!(
            parse(&[])
                .redacted_summary()
                .ends_with("http_tls=off http_auth=off http_rate_limit=off")
        );
    }

    #[test]
    fn tls_takes_a_certificate_and_its_key_or_neither() {
        let c = parse(&["--http-tls-cert", "tls.crt"]);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::TlsHalfPair {
                missing: "--http-tls-key",
                ..
            })
        ));
        let c = parse(&["--http-tls-key", "tls.key"]);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::TlsHalfPair {
                missing: "--http-tls-cert",
                ..
            })
        ));
        let c = parse(&["--http-tls-cert", "tls.crt", "--http-tls-key", "tls.key"]);
        assert_eq!(
            c.http_security().unwrap().tls.unwrap().key,
            PathBuf::from("tls.key")
        );
        assert!(c.redacted_summary().contains("http_tls=on"));
    }

    #[test]
    fn tokens_are_checked_and_never_shown() {
        let secret = "s3cr3t-token-0123456789";
        let c = parse(&["--http-auth-token", secret, "--http-auth-metrics"]);
        let auth = c
            .validate()
            .and_then(|_| c.http_security())
            .unwrap()
            .auth
            .unwrap();
        assert!(auth.metrics && !auth.health);
        let summary = c.redacted_summary();
        assert!(
            summary.contains("http_auth=on(env_tokens=1 open=health)"),
            "{summary}"
        );
        assert!(!summary.contains(secret) && !format!("{c:?}").contains(secret));

        assert!(
            parse(&["--http-auth-token", ""])
                .http_security()
                .unwrap()
                .auth
                .is_none()
        );
        let c = parse(&["--http-auth-token", "0123456789abcdef,short-one"]);
        let err = c.validate().unwrap_err();
        assert!(
            matches!(err, ConfigError::Token { position: 2, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains("short-one"), "{err}");
    }

    #[test]
    fn protecting_probes_or_metrics_needs_tokens() {
        for flag in ["--http-auth-health", "--http-auth-metrics"] {
            let err = parse(&[flag]).validate().unwrap_err();
            assert!(matches!(err, ConfigError::AuthWithoutTokens { flag: f } if f == flag));
        }
        let c = parse(&[
            "--http-auth-token-file",
            "/run/tokens",
            "--http-auth-health",
        ]);
        assert!(c.validate().is_ok());
        assert!(
            c.redacted_summary()
                .contains("file=/run/tokens open=metrics")
        );
    }

    #[test]
    fn the_rate_limit_is_off_at_zero_and_bursts_a_second_by_default() {
        let c = parse(&["--http-rate-limit-per-s", "0"]);
        assert!(c.http_security().unwrap().rate_limit.is_none());
        let c = parse(&["--http-rate-limit-burst", "5"]);
        assert!(matches!(c.validate(), Err(ConfigError::BurstWithoutRate)));
        let r = parse(&["--http-rate-limit-per-s", "20"])
            .http_security()
            .unwrap()
            .rate_limit
            .unwrap();
        assert_eq!((r.per_s.get(), r.burst.get()), (20, 20));
        let c = parse(&[
            "--http-rate-limit-per-s",
            "20",
            "--http-rate-limit-burst",
            "0",
        ]);
        assert!(matches!(c.validate(), Err(ConfigError::Zero { .. })));
        let c = parse(&[
            "--http-rate-limit-per-s",
            "20",
            "--http-rate-limit-burst",
            "50",
        ]);
        assert!(
            c.redacted_summary()
                .contains("http_rate_limit=20/s burst=50")
        );
        assert!(Config::try_parse_from(["scorer", "--http-rate-limit-per-s", "2000000"]).is_err());
    }

    #[test]
    fn transactional_ids_default_to_group_and_host_and_number_the_extra_producers() {
        let c = parse(&["--group-id", "g"]);
        assert!(c.transactional_id().starts_with("g-"));
        let c = parse(&["--transactional-id", "t1"]);
        assert_eq!(c.transactional_id(), "t1");
        let ids: Vec<_> = (0..c.output_producers())
            .map(|i| {
                c.producer_config(i)
                    .unwrap()
                    .get("transactional.id")
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(ids, [Some("t1".to_owned()), Some("t1-1".to_owned())]);
        let alo = parse(&[
            "--delivery",
            "at-least-once",
            "--transactional-producers",
            "4",
        ]);
        assert_eq!(alo.output_producers(), 1);
        assert!(Config::try_parse_from(["scorer", "--transactional-producers", "0"]).is_err());
    }
}
