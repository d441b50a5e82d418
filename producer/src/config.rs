//! Command line and environment: one [`Config`] with a `send` and a `tail` subcommand, checked once
//! by [`Config::validate`], and the two client configurations (built by heart-kafka, one role
//! each) that the subcommands use.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use heart_kafka::{ClientConfigError, LogArgs, Role, client_config};
use heart_registry::{Registry, RegistryArgs};
use rdkafka::ClientConfig;

use crate::error::ConfigError;

/// Where `send` reads the UCI file when neither `--data` nor `HEART_DATA` is given.
pub const DEFAULT_DATA_PATH: &str = "../shared/data/processed.cleveland.data";

/// The librdkafka `client.id` of both clients.
const CLIENT_ID: &str = "heart-producer";

/// heart-risk producer: sends patient records to Kafka as Avro, and tails the predictions.
///
/// `producer send` reads patients from the UCI Cleveland file, a CSV or JSONL file, or a seeded
/// synthetic generator, and sends them to the patients topic with an idempotent producer,
/// optionally paced (`--rate`) and mixed with malformed records (`--invalid-ratio`) to exercise the
/// scorer's dead-letter path. `producer tail` prints the scorer's predictions as JSON lines.
///
/// SIGTERM or SIGINT stops either cleanly: `send` stops reading, waits for outstanding
/// deliveries (at most `--flush-timeout-ms`), prints its report and exits 0, or 1 if any record
/// was left unacknowledged; a second signal exits at once.
#[derive(Debug, Clone, Parser)]
#[command(name = "producer", version)]
pub struct Config {
    /// Connection to the Kafka cluster.
    #[command(flatten)]
    pub kafka: KafkaSettings,

    /// Logging (the level comes from RUST_LOG).
    #[command(flatten, next_help_heading = "Logging (all subcommands)")]
    pub log: LogArgs,

    /// Schema Registry: `send --framing confluent` takes its schema id from it, `tail` resolves
    /// Confluent-framed predictions with it.
    #[command(flatten, next_help_heading = "Schema Registry (all subcommands)")]
    pub registry: RegistryArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Send patient records to the patients topic and report throughput and ack latency.
    Send(SendArgs),
    /// Print predictions from the predictions topic as JSON lines, optionally with a summary.
    Tail(TailArgs),
}

/// Kafka settings of `send` and `tail`: the connection flags every heart-risk binary shares,
/// plus this binary's connect bound.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Kafka connection (all subcommands)")]
pub struct KafkaSettings {
    /// Bootstrap servers, security and extra librdkafka properties.
    #[command(flatten)]
    pub connection: heart_kafka::KafkaArgs,

    /// How long to wait for the broker to answer the first metadata request before giving up.
    #[arg(
        long,
        env = "PRODUCER_CONNECT_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub connect_timeout_ms: u64,
}

impl KafkaSettings {
    /// The bound on the first metadata request.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// Where `send` takes its patients from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// The UCI processed file: 14 columns, no header, `?` = missing (default).
    Uci,
    /// A CSV file whose header names the UCI attributes; optional patient_id and event_time columns.
    Csv,
    /// One JSON object per line with the UCI attribute names.
    Jsonl,
    /// A seeded generator of realistic patients (needs no file).
    Synthetic,
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_possible_value() {
            Some(value) => f.write_str(value.get_name()),
            None => write!(f, "{self:?}"),
        }
    }
}

impl SourceKind {
    /// The patient-id prefix used when `--id-prefix` is not given.
    pub const fn default_id_prefix(self) -> &'static str {
        match self {
            Self::Uci => "cleveland-",
            Self::Csv => "csv-",
            Self::Jsonl => "jsonl-",
            Self::Synthetic => "synthetic-",
        }
    }
}

/// The header `send` writes in front of each record's Avro body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FramingArg {
    /// Avro single-object encoding: `C3 01` and the schema's fingerprint (no registry needed).
    SingleObject,
    /// Confluent wire format: `00` and the schema's registry id, from the subject
    /// `<topic>-value` (needs --schema-registry-url).
    Confluent,
}

/// `producer send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// Topic to send patient records to.
    #[arg(long, env = "PRODUCER_TOPIC", default_value = heart_schemas::topics::PATIENTS)]
    pub topic: String,

    /// Where the records come from.
    #[arg(long, env = "PRODUCER_SOURCE", value_enum, default_value_t = SourceKind::Uci)]
    pub source: SourceKind,

    /// Header of each record: single-object (the schema's fingerprint) or confluent (a Schema
    /// Registry id, for consumers that deserialize through a registry). The scorer reads both.
    #[arg(long, env = "PRODUCER_FRAMING", value_enum, default_value_t = FramingArg::SingleObject)]
    pub framing: FramingArg,

    /// With --framing confluent: register the PatientRecord schema under `<topic>-value` if it
    /// is not there (as Confluent's serializers do by default); `false` only looks it up and
    /// fails if the subject lacks it.
    #[arg(long, env = "PRODUCER_SCHEMA_REGISTRY_AUTO_REGISTER", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub schema_registry_auto_register: bool,

    /// Input file for uci, csv and jsonl [default for uci: ../shared/data/processed.cleveland.data].
    #[arg(long, env = "HEART_DATA", value_name = "PATH")]
    pub data: Option<PathBuf>,

    /// Prefix of generated patient ids: `<prefix><line>` for files (used when a row has no
    /// patient_id), `<prefix><n>` for synthetic [default: cleveland-, csv-, jsonl-, synthetic-].
    #[arg(long, env = "PRODUCER_ID_PREFIX")]
    pub id_prefix: Option<String>,

    /// How many valid records to send. Synthetic: default 1000. Files: at most this many rows
    /// (default: every row once); with --loop the file is repeated until this many are sent.
    #[arg(long, env = "PRODUCER_COUNT")]
    pub count: Option<u64>,

    /// Repeat a file source: pass 2 onwards gets new ids (`<id>~2`, `<id>~3`, …). Without --count
    /// it runs until SIGTERM or Ctrl-C. For load tests.
    #[arg(long = "loop", env = "PRODUCER_LOOP")]
    pub repeat: bool,

    /// Seed for the synthetic generator and for the invalid-record mix.
    #[arg(long, env = "PRODUCER_SEED", default_value_t = 42)]
    pub seed: u64,

    /// Records per second, including invalid ones; 0 sends as fast as the broker acknowledges.
    #[arg(long, env = "PRODUCER_RATE", default_value_t = 0.0)]
    pub rate: f64,

    /// Stamp every record with a W3C `traceparent` header starting a new trace, which the
    /// scorer continues onto the prediction or dead letter (docs/tracing.md).
    #[arg(long, env = "PRODUCER_TRACE")]
    pub trace: bool,

    /// Move a numeric attribute of every valid record by DELTA, kept within its allowed range
    /// (e.g. `age=+15`): a population unlike the training data, for the scorer's drift
    /// metrics. Repeat the flag, or separate with commas, for several fields.
    #[arg(
        long,
        env = "PRODUCER_SHIFT",
        value_name = "FIELD=DELTA",
        value_delimiter = ','
    )]
    pub shift: Vec<crate::shift::Shift>,

    /// Fraction (0..1) of sent messages that are malformed, for the dead-letter path: bytes that
    /// are not Avro, truncated Avro, an out-of-range value, or an empty value. They come in
    /// addition to the valid records.
    #[arg(long, env = "PRODUCER_INVALID_RATIO", default_value_t = 0.0)]
    pub invalid_ratio: f64,

    /// Most deliveries awaiting the broker's acknowledgement at once; bounds memory and makes the
    /// ack latency mean something.
    #[arg(long, env = "PRODUCER_MAX_IN_FLIGHT", default_value_t = 10_000)]
    pub max_in_flight: usize,

    /// librdkafka linger.ms: how long to wait to fill a batch.
    #[arg(long, env = "PRODUCER_LINGER_MS", default_value_t = 5)]
    pub linger_ms: u64,

    /// librdkafka message.timeout.ms: a delivery not acknowledged in this time has failed.
    #[arg(long, env = "PRODUCER_DELIVERY_TIMEOUT_MS", default_value_t = 30_000)]
    pub delivery_timeout_ms: u64,

    /// On SIGTERM/SIGINT: how long to wait for the deliveries still outstanding before reporting
    /// the rest as unacknowledged (exit code 1). The process ends within this plus 2 s whatever
    /// the broker does; a second signal ends it at once.
    #[arg(long, env = "PRODUCER_FLUSH_TIMEOUT_MS", default_value_t = 10_000)]
    pub flush_timeout_ms: u64,

    /// Also write the final report as JSON to this file.
    #[arg(long, env = "PRODUCER_SUMMARY_JSON", value_name = "PATH")]
    pub summary_json: Option<PathBuf>,
}

impl SendArgs {
    /// The data file to read, if the source reads one.
    ///
    /// # Errors
    /// [`ConfigError::DataRequired`] for csv and jsonl without `--data` or `HEART_DATA`.
    pub fn data_path(&self) -> Result<Option<PathBuf>, ConfigError> {
        match (self.source, &self.data) {
            (SourceKind::Synthetic, _) => Ok(None),
            (_, Some(path)) => Ok(Some(path.clone())),
            (SourceKind::Uci, None) => Ok(Some(PathBuf::from(DEFAULT_DATA_PATH))),
            (kind @ (SourceKind::Csv | SourceKind::Jsonl), None) => {
                Err(ConfigError::DataRequired { kind })
            }
        }
    }

    /// The patient-id prefix: `--id-prefix` or the source's default.
    pub fn id_prefix(&self) -> &str {
        self.id_prefix
            .as_deref()
            .unwrap_or_else(|| self.source.default_id_prefix())
    }

    /// The bound on waiting for outstanding deliveries after a shutdown request.
    pub fn flush_timeout(&self) -> Duration {
        Duration::from_millis(self.flush_timeout_ms)
    }

    /// The idempotent producer's configuration. `--linger-ms` and `--delivery-timeout-ms` are
    /// defaults here, so a `--kafka-property` for the same key wins.
    ///
    /// # Errors
    /// [`ClientConfigError`] for a malformed `--kafka-property` or one setting a key the
    /// idempotent producer owns (`enable.idempotence`, `acks`, the connection keys).
    pub fn producer_config(
        &self,
        kafka: &KafkaSettings,
    ) -> Result<ClientConfig, ClientConfigError> {
        client_config(
            &kafka.connection,
            CLIENT_ID,
            Role::IdempotentProducer,
            &[
                ("linger.ms", self.linger_ms.to_string()),
                ("message.timeout.ms", self.delivery_timeout_ms.to_string()),
            ],
        )
    }
}

/// `producer tail`.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// Topic to read predictions from.
    #[arg(long, env = "PRODUCER_TAIL_TOPIC", default_value = heart_schemas::topics::PREDICTIONS)]
    pub topic: String,

    /// Consumer group id [default: a new unique one per run, so nothing is shared or resumed].
    /// With a group and neither --from-beginning nor --count, reading resumes at its commits.
    #[arg(long, env = "PRODUCER_TAIL_GROUP")]
    pub group: Option<String>,

    /// Read every partition from its first offset instead of only new predictions.
    #[arg(long, env = "PRODUCER_TAIL_FROM_BEGINNING")]
    pub from_beginning: bool,

    /// Stop after this many predictions (with --dead-letters: predictions plus dead letters, i.e.
    /// every record the scorer has finished with). Implies --from-beginning, so a script that
    /// starts waiting after the scorer has begun never misses one.
    #[arg(long, env = "PRODUCER_TAIL_COUNT")]
    pub count: Option<u64>,

    /// Leave out predictions of records sent before this time (Unix milliseconds of their event
    /// time): they are read past, not printed, counted or timed. For measuring latency after a
    /// warm-up: `--since-ms "$(date +%s%3N)"` just before the measured `producer send`.
    #[arg(long, env = "PRODUCER_TAIL_SINCE_MS")]
    pub since_ms: Option<i64>,

    /// Give up after this many seconds; with --count, fewer than N predictions is then an error
    /// (exit code 1). Default: wait forever.
    #[arg(long, env = "PRODUCER_TAIL_TIMEOUT_S")]
    pub timeout_s: Option<u64>,

    /// At the end print totals, counts by risk level and model version, records/s and end-to-end
    /// latency (stdout with --quiet, else stderr so stdout stays JSON lines).
    #[arg(long, env = "PRODUCER_TAIL_SUMMARY")]
    pub summary: bool,

    /// Do not print predictions (only the summary, if asked for).
    #[arg(long, short, env = "PRODUCER_TAIL_QUIET")]
    pub quiet: bool,

    /// Also read the dead-letter topic and count dead letters by reason (they count towards
    /// --count).
    #[arg(long, env = "PRODUCER_TAIL_DEAD_LETTERS")]
    pub dead_letters: bool,

    /// The dead-letter topic, for --dead-letters.
    #[arg(long, env = "PRODUCER_TAIL_DEAD_LETTER_TOPIC", default_value = heart_schemas::topics::DEAD_LETTERS)]
    pub dead_letter_topic: String,
}

/// `tail` is the reference client for end-to-end latency (event time → prediction visible to a
/// read_committed consumer), so its fetches return as soon as anything is there rather than
/// after librdkafka's 500 ms `fetch.wait.max.ms`. `--kafka-property` overrides these.
const TAIL_TUNING: [(&str, &str); 2] = [("fetch.wait.max.ms", "5"), ("fetch.min.bytes", "1")];

impl TailArgs {
    /// The read_committed consumer's configuration, as a member of `group_id`: it commits only
    /// with an explicit `--group`, so a default run leaves nothing behind.
    ///
    /// # Errors
    /// [`ClientConfigError`] for a malformed `--kafka-property` or one setting a key the follower
    /// owns (`group.id`, `enable.auto.commit`, `isolation.level`, the connection keys).
    pub fn consumer_config(
        &self,
        kafka: &KafkaSettings,
        group_id: &str,
    ) -> Result<ClientConfig, ClientConfigError> {
        let tuning = TAIL_TUNING.map(|(key, value)| (key, value.to_owned()));
        client_config(
            &kafka.connection,
            CLIENT_ID,
            Role::Follower {
                group_id,
                commit: self.group.is_some(),
            },
            &tuning,
        )
    }
}

impl Config {
    /// Checks the rules that span fields or that clap cannot express.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.kafka.connect_timeout_ms == 0 {
            return Err(ConfigError::ZeroConnectTimeout);
        }
        match &self.command {
            Command::Send(args) => {
                if !(args.rate.is_finite() && args.rate >= 0.0) {
                    return Err(ConfigError::Rate { rate: args.rate });
                }
                if !(0.0..1.0).contains(&args.invalid_ratio) {
                    return Err(ConfigError::InvalidRatio {
                        ratio: args.invalid_ratio,
                    });
                }
                if args.max_in_flight == 0 {
                    return Err(ConfigError::ZeroInFlight);
                }
                if args.flush_timeout_ms == 0 {
                    return Err(ConfigError::ZeroFlushTimeout);
                }
                if args.repeat && args.source == SourceKind::Synthetic {
                    return Err(ConfigError::LoopSynthetic);
                }
                args.data_path()?;
                args.producer_config(&self.kafka)?;
                if args.framing == FramingArg::Confluent && self.registry.validate()?.is_none() {
                    return Err(ConfigError::FramingNeedsRegistry);
                }
            }
            Command::Tail(args) => {
                self.registry.validate()?;
                if args.timeout_s == Some(0) {
                    return Err(ConfigError::ZeroTimeout);
                }
                args.consumer_config(&self.kafka, "heart-tail")?;
            }
        }
        Ok(())
    }

    /// The Schema Registry client, if one is configured.
    ///
    /// # Errors
    /// [`ConfigError::Registry`] for invalid registry flags.
    pub fn registry(&self) -> Result<Option<std::sync::Arc<Registry>>, ConfigError> {
        Ok(self
            .registry
            .validate()?
            .map(|c| std::sync::Arc::new(Registry::new(c))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("producer").chain(args.iter().copied())).unwrap()
    }

    fn send_args(config: &Config) -> &SendArgs {
        match &config.command {
            Command::Send(args) => args,
            Command::Tail(_) => panic!("not send"),
        }
    }

    fn tail_args(config: &Config) -> &TailArgs {
        match &config.command {
            Command::Tail(args) => args,
            Command::Send(_) => panic!("not tail"),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Config::command().debug_assert();
    }

    #[test]
    fn defaults_send_the_uci_file_to_patients() {
        let config = parse(&["send"]);
        config.validate().unwrap();
        let args = send_args(&config);
        assert_eq!(args.topic, "patients");
        assert_eq!(args.source, SourceKind::Uci);
        assert_eq!(
            args.data_path().unwrap(),
            Some(PathBuf::from(DEFAULT_DATA_PATH))
        );
        assert_eq!(args.id_prefix(), "cleveland-");
        assert_eq!(args.flush_timeout(), Duration::from_secs(10));
        assert_eq!(config.kafka.connection.bootstrap_servers, "127.0.0.1:9092");
    }

    #[test]
    fn producer_config_is_idempotent_with_acks_all_and_properties_win_over_flags() {
        let config = parse(&[
            "send",
            "--delivery-timeout-ms",
            "1000",
            "--kafka-property",
            "linger.ms=50",
        ]);
        let cfg = send_args(&config).producer_config(&config.kafka).unwrap();
        assert_eq!(cfg.get("enable.idempotence"), Some("true"));
        assert_eq!(cfg.get("acks"), Some("all"));
        assert_eq!(cfg.get("message.timeout.ms"), Some("1000"));
        // A property overrides the flag-backed tuning default.
        assert_eq!(cfg.get("linger.ms"), Some("50"));
    }

    #[test]
    fn tail_reads_committed_only_with_low_latency_fetches_the_user_may_override() {
        let config = parse(&["tail", "--security-protocol", "sasl_ssl"]);
        let cfg = tail_args(&config)
            .consumer_config(&config.kafka, "g")
            .unwrap();
        assert_eq!(cfg.get("isolation.level"), Some("read_committed"));
        assert_eq!(cfg.get("group.id"), Some("g"));
        assert_eq!(cfg.get("enable.auto.commit"), Some("false"));
        assert_eq!(cfg.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(cfg.get("fetch.wait.max.ms"), Some("5"));
        assert_eq!(cfg.get("fetch.min.bytes"), Some("1"));

        let config = parse(&[
            "tail",
            "--group",
            "mine",
            "--kafka-property",
            "fetch.wait.max.ms=100",
        ]);
        let cfg = tail_args(&config)
            .consumer_config(&config.kafka, "mine")
            .unwrap();
        assert_eq!(cfg.get("fetch.wait.max.ms"), Some("100"));
        assert_eq!(cfg.get("enable.auto.commit"), Some("true"));
    }

    #[test]
    fn properties_pass_through_keeping_commas_inside_values() {
        let config = parse(&[
            "--kafka-property",
            "compression.type=lz4,debug=eos,msg",
            "--kafka-property",
            "socket.keepalive.enable=true",
            "send",
        ]);
        config.validate().unwrap();
        let cfg = send_args(&config).producer_config(&config.kafka).unwrap();
        assert_eq!(cfg.get("compression.type"), Some("lz4"));
        assert_eq!(cfg.get("debug"), Some("eos,msg"));
        assert_eq!(cfg.get("socket.keepalive.enable"), Some("true"));
        let bad = parse(&["--kafka-property", "novalue", "send"]);
        assert!(matches!(
            bad.validate(),
            Err(ConfigError::Kafka(ClientConfigError::Property(_)))
        ));
    }

    #[test]
    fn owned_properties_are_refused_at_validation_naming_the_key() {
        for (args, key) in [
            (
                &["send", "--kafka-property", "enable.idempotence=false"][..],
                "enable.idempotence",
            ),
            (&["send", "--kafka-property", "acks=1"], "acks"),
            (
                &["send", "--kafka-property", "bootstrap.servers=x:1"],
                "bootstrap.servers",
            ),
            (
                &[
                    "tail",
                    "--kafka-property",
                    "isolation.level=read_uncommitted",
                ],
                "isolation.level",
            ),
            (&["tail", "--kafka-property", "group.id=other"], "group.id"),
        ] {
            let err = parse(args).validate().unwrap_err();
            assert!(
                matches!(&err, ConfigError::Kafka(ClientConfigError::Owned { key: k, .. }) if k == key),
                "{args:?}: {err}"
            );
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn out_of_range_numbers_are_rejected() {
        for args in [
            &["send", "--invalid-ratio", "1.0"][..],
            &["send", "--invalid-ratio=-0.1"],
            &["send", "--rate=-1"],
            &["send", "--rate", "NaN"],
            &["send", "--max-in-flight", "0"],
            &["send", "--flush-timeout-ms", "0"],
            &["send", "--source", "synthetic", "--loop"],
            &["--connect-timeout-ms", "0", "tail"],
            &["tail", "--timeout-s", "0"],
        ] {
            assert!(parse(args).validate().is_err(), "{args:?}");
        }
    }

    #[test]
    fn csv_and_jsonl_need_a_data_path() {
        let config = parse(&["send", "--source", "csv"]);
        assert!(matches!(
            config.validate(),
            Err(ConfigError::DataRequired { .. })
        ));
        parse(&["send", "--source", "jsonl", "--data", "x.jsonl"])
            .validate()
            .unwrap();
    }
}
