//! Command line and environment: one [`Config`] with a `send` and a `tail` subcommand, checked once
//! by [`Config::validate`], and the one function that turns it into an rdkafka [`ClientConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rdkafka::ClientConfig;

use crate::error::ConfigError;

/// Where `send` reads the UCI file when neither `--data` nor `HEART_DATA` is given.
pub const DEFAULT_DATA_PATH: &str = "../shared/data/processed.cleveland.data";

/// librdkafka properties this binary sets itself; `--kafka-property` may not override them
/// because the flag named beside each one (or a guarantee of this tool) owns them.
const MANAGED_PROPERTIES: [(&str, &str); 5] = [
    ("bootstrap.servers", "--bootstrap-servers"),
    ("group.id", "tail --group"),
    (
        "enable.idempotence",
        "always true: send is an idempotent producer",
    ),
    ("acks", "always all: required by the idempotent producer"),
    (
        "isolation.level",
        "always read_committed: tail only shows committed predictions",
    ),
];

/// heart-risk producer: sends patient records to Kafka as Avro, and tails the predictions.
///
/// `producer send` reads patients from the UCI Cleveland file, a CSV or JSONL file, or a seeded
/// synthetic generator, and sends them to the patients topic with an idempotent producer,
/// optionally paced (`--rate`) and mixed with malformed records (`--invalid-ratio`) to exercise the
/// scorer's dead-letter path. `producer tail` prints the scorer's predictions as JSON lines.
#[derive(Debug, Clone, Parser)]
#[command(name = "producer", version)]
pub struct Config {
    /// Connection to the Kafka cluster.
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Log filter, in tracing-subscriber EnvFilter syntax (e.g. `info`, `heart_producer=debug`).
    #[arg(
        long,
        env = "PRODUCER_LOG",
        default_value = "info",
        global = true,
        help_heading = "Logging (all subcommands)"
    )]
    pub log: String,

    /// Log line format on stderr.
    #[arg(
        long,
        env = "PRODUCER_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true,
        help_heading = "Logging (all subcommands)"
    )]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Send patient records to the patients topic and report throughput and ack latency.
    Send(SendArgs),
    /// Print predictions from the predictions topic as JSON lines, optionally with a summary.
    Tail(TailArgs),
}

/// Kafka connection settings, shared by `send` and `tail` (and, by name, by every heart-risk binary).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Kafka connection (all subcommands)")]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap_servers: String,

    /// Extra librdkafka property as key=value (repeatable; env: comma-separated list), e.g.
    /// `compression.type=lz4`. A value may contain commas (`debug=eos,msg`) as long as the pieces
    /// after a comma contain no `=`.
    #[arg(
        long = "kafka-property",
        env = "KAFKA_PROPERTIES",
        value_name = "KEY=VALUE",
        value_delimiter = ',',
        global = true
    )]
    pub properties: Vec<String>,

    /// librdkafka security.protocol (plaintext, ssl, sasl_plaintext, sasl_ssl).
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL", global = true)]
    pub security_protocol: Option<String>,

    /// librdkafka sasl.mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
    #[arg(long, env = "KAFKA_SASL_MECHANISM", global = true)]
    pub sasl_mechanism: Option<String>,

    /// SASL user name.
    #[arg(long, env = "KAFKA_SASL_USERNAME", global = true)]
    pub sasl_username: Option<String>,

    /// SASL password (its environment value is never shown in --help).
    #[arg(
        long,
        env = "KAFKA_SASL_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub sasl_password: Option<String>,

    /// CA certificate file used to verify the brokers (ssl.ca.location).
    #[arg(long, env = "KAFKA_SSL_CA_LOCATION", global = true)]
    pub ssl_ca_location: Option<PathBuf>,

    /// How long to wait for the broker to answer the first metadata request before giving up.
    #[arg(
        long,
        env = "PRODUCER_CONNECT_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub connect_timeout_ms: u64,
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

/// `producer send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// Topic to send patient records to.
    #[arg(long, env = "PRODUCER_TOPIC", default_value = heart_schemas::topics::PATIENTS)]
    pub topic: String,

    /// Where the records come from.
    #[arg(long, env = "PRODUCER_SOURCE", value_enum, default_value_t = SourceKind::Uci)]
    pub source: SourceKind,

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
    /// it runs until Ctrl-C. For load tests.
    #[arg(long = "loop", env = "PRODUCER_LOOP")]
    pub repeat: bool,

    /// Seed for the synthetic generator and for the invalid-record mix.
    #[arg(long, env = "PRODUCER_SEED", default_value_t = 42)]
    pub seed: u64,

    /// Records per second, including invalid ones; 0 sends as fast as the broker acknowledges.
    #[arg(long, env = "PRODUCER_RATE", default_value_t = 0.0)]
    pub rate: f64,

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

/// Which client [`client_config`] is for, with the settings only that client has.
#[derive(Debug, Clone, Copy)]
pub enum Role<'a> {
    /// The idempotent producer of `send`.
    Producer {
        /// linger.ms.
        linger_ms: u64,
        /// message.timeout.ms.
        delivery_timeout_ms: u64,
    },
    /// The read-committed consumer of `tail`.
    Consumer {
        /// group.id.
        group_id: &'a str,
        /// Whether reading resumes at (and commits to) the group's offsets.
        commit: bool,
    },
}

/// Builds the rdkafka client configuration: the one place where properties are set.
///
/// Order matters: connection and security first, role settings next, then `--kafka-property`
/// pairs, which [`Config::validate`] has checked do not touch the managed properties.
pub fn client_config(kafka: &KafkaArgs, role: Role<'_>) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", "heart-producer");
    let security = [
        ("security.protocol", kafka.security_protocol.as_deref()),
        ("sasl.mechanism", kafka.sasl_mechanism.as_deref()),
        ("sasl.username", kafka.sasl_username.as_deref()),
        ("sasl.password", kafka.sasl_password.as_deref()),
    ];
    for (key, value) in security {
        if let Some(value) = value {
            cfg.set(key, value);
        }
    }
    if let Some(ca) = &kafka.ssl_ca_location {
        cfg.set("ssl.ca.location", ca.to_string_lossy());
    }
    match role {
        Role::Producer {
            linger_ms,
            delivery_timeout_ms,
        } => {
            // Idempotence makes librdkafka's internal retries exactly-once per partition and in
            // order; it requires acks=all and at most 5 in-flight requests per connection.
            cfg.set("enable.idempotence", "true")
                .set("acks", "all")
                .set("max.in.flight.requests.per.connection", "5")
                .set("linger.ms", linger_ms.to_string())
                .set("message.timeout.ms", delivery_timeout_ms.to_string())
                // Hash keys like the Java client, so a patient lands on the same partition
                // whichever client sent it.
                .set("partitioner", "murmur2_random");
        }
        Role::Consumer { group_id, commit } => {
            cfg.set("group.id", group_id)
                .set("isolation.level", "read_committed")
                .set("enable.auto.commit", commit.to_string())
                .set("enable.partition.eof", "false")
                .set("auto.offset.reset", "earliest");
        }
    }
    // Config::validate has rejected malformed pairs; any left are skipped, not guessed at.
    for (key, value) in kafka.property_pairs().unwrap_or_default() {
        cfg.set(key, value);
    }
    cfg
}

impl KafkaArgs {
    /// `--kafka-property` as key/value pairs. Splitting on commas (for the environment variable)
    /// also splits values like `debug=eos,msg`, so a piece without `=` continues the previous
    /// value.
    ///
    /// # Errors
    /// [`ConfigError::Property`] for a first piece without `=` or an empty key.
    pub fn property_pairs(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for piece in &self.properties {
            match (piece.split_once('='), pairs.last_mut()) {
                (Some((key, value)), _) if !key.trim().is_empty() => {
                    pairs.push((key.trim().to_owned(), value.trim().to_owned()));
                }
                (None, Some((_, value))) => {
                    value.push(',');
                    value.push_str(piece.trim());
                }
                _ => {
                    return Err(ConfigError::Property {
                        piece: piece.clone(),
                    });
                }
            }
        }
        Ok(pairs)
    }

    /// The bound on the first metadata request.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// The settings worth logging at startup: no credentials.
    pub fn redacted(&self) -> String {
        let keys: Vec<String> = self
            .property_pairs()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        format!(
            "bootstrap.servers={} security.protocol={} sasl.mechanism={} sasl.username={} sasl.password={} extra={:?}",
            self.bootstrap_servers,
            self.security_protocol.as_deref().unwrap_or("plaintext"),
            self.sasl_mechanism.as_deref().unwrap_or("-"),
            self.sasl_username.as_deref().unwrap_or("-"),
            if self.sasl_password.is_some() {
                "<set>"
            } else {
                "-"
            },
            keys,
        )
    }
}

impl Config {
    /// Checks the rules that span fields or that clap cannot express.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, _) in self.kafka.property_pairs()? {
            if let Some((_, owner)) = MANAGED_PROPERTIES.iter().find(|(k, _)| *k == key) {
                return Err(ConfigError::ManagedProperty {
                    key: key.clone(),
                    owner,
                });
            }
        }
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
                if args.repeat && args.source == SourceKind::Synthetic {
                    return Err(ConfigError::LoopSynthetic);
                }
                args.data_path()?;
            }
            Command::Tail(args) => {
                if args.timeout_s == Some(0) {
                    return Err(ConfigError::ZeroTimeout);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("producer").chain(args.iter().copied())).unwrap()
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
        let Command::Send(args) = &config.command else {
            panic!("not send")
        };
        assert_eq!(args.topic, "patients");
        assert_eq!(args.source, SourceKind::Uci);
        assert_eq!(
            args.data_path().unwrap(),
            Some(PathBuf::from(DEFAULT_DATA_PATH))
        );
        assert_eq!(args.id_prefix(), "cleveland-");
        assert_eq!(config.kafka.bootstrap_servers, "127.0.0.1:9092");
    }

    #[test]
    fn producer_config_is_idempotent_with_acks_all() {
        let config = parse(&["send", "--kafka-property", "linger.ms=50"]);
        let cfg = client_config(
            &config.kafka,
            Role::Producer {
                linger_ms: 5,
                delivery_timeout_ms: 1000,
            },
        );
        assert_eq!(cfg.get("enable.idempotence"), Some("true"));
        assert_eq!(cfg.get("acks"), Some("all"));
        // Pass-through properties come last and win over the role's tuning defaults.
        assert_eq!(cfg.get("linger.ms"), Some("50"));
    }

    #[test]
    fn consumer_config_reads_committed_only() {
        let config = parse(&["tail", "--security-protocol", "sasl_ssl"]);
        let cfg = client_config(
            &config.kafka,
            Role::Consumer {
                group_id: "g",
                commit: false,
            },
        );
        assert_eq!(cfg.get("isolation.level"), Some("read_committed"));
        assert_eq!(cfg.get("group.id"), Some("g"));
        assert_eq!(cfg.get("security.protocol"), Some("sasl_ssl"));
    }

    #[test]
    fn property_list_splits_on_commas_and_keeps_commas_inside_values() {
        let config = parse(&[
            "--kafka-property",
            "a=1,b=x=y,debug=eos,msg",
            "--kafka-property",
            "c=",
            "send",
        ]);
        assert_eq!(
            config.kafka.property_pairs().unwrap(),
            [("a", "1"), ("b", "x=y"), ("debug", "eos,msg"), ("c", "")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let bad = parse(&["--kafka-property", "novalue", "send"]);
        assert!(matches!(bad.validate(), Err(ConfigError::Property { .. })));
    }

    #[test]
    fn managed_properties_cannot_be_overridden() {
        let config = parse(&["send", "--kafka-property", "enable.idempotence=false"]);
        assert!(matches!(
            config.validate(),
            Err(ConfigError::ManagedProperty { ref key, .. }) if key == "enable.idempotence"
        ));
    }

    #[test]
    fn out_of_range_numbers_are_rejected() {
        for args in [
            &["send", "--invalid-ratio", "1.0"][..],
            &["send", "--invalid-ratio=-0.1"],
            &["send", "--rate=-1"],
            &["send", "--rate", "NaN"],
            &["send", "--max-in-flight", "0"],
            &["send", "--source", "synthetic", "--loop"],
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

    #[test]
    fn redacted_summary_hides_the_password() {
        let config = parse(&["--sasl-password", "hunter2", "send"]);
        let text = config.kafka.redacted();
        assert!(!text.contains("hunter2"));
        assert!(text.contains("sasl.password=<set>"));
    }
}
