//! Command-line configuration: one subcommand per task, every flag also readable from the
//! environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::ConfigError;

/// Trains, evaluates and publishes the heart-disease model.
#[derive(Debug, Parser)]
#[command(name = "trainer", version, about)]
pub struct Config {
    /// Log filter (tracing EnvFilter syntax); logs go to stderr.
    #[arg(long, env = "TRAINER_LOG", default_value = "info", global = true)]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The trainer's tasks.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cross-validate every model over its grid, fit the best on all data, write report, plots
    /// and model.avro.
    Train(TrainArgs),
    /// Summary statistics, missing values and plots of the data.
    Eda(EdaArgs),
    /// Verify a model.avro and publish it to the models topic as the next version.
    Publish(PublishArgs),
    /// List the model versions on the models topic.
    Models(ModelsArgs),
    /// Download the UCI Cleveland file and check its sha256.
    FetchData(FetchArgs),
}

/// Where the data comes from.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// UCI `processed.*.data` file (no header, `?` = missing) or headered CSV.
    #[arg(
        long,
        env = "HEART_DATA",
        default_value = "../shared/data/processed.cleveland.data"
    )]
    pub data: PathBuf,
}

/// Kafka connection settings.
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,
    /// Compacted topic holding model versions, keyed by model name.
    #[arg(long, env = "TRAINER_TOPIC", default_value = heart_schemas::topics::MODELS)]
    pub topic: String,
    /// Upper bound for each Kafka step (metadata, reading the topic, delivery), milliseconds.
    #[arg(long, env = "TRAINER_KAFKA_TIMEOUT_MS", default_value_t = 15_000)]
    pub kafka_timeout_ms: u64,
    /// security.protocol (plaintext, ssl, sasl_plaintext, sasl_ssl).
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL")]
    pub security_protocol: Option<String>,
    /// sasl.mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
    #[arg(long, env = "KAFKA_SASL_MECHANISM")]
    pub sasl_mechanism: Option<String>,
    /// sasl.username.
    #[arg(long, env = "KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,
    /// sasl.password.
    #[arg(long, env = "KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub sasl_password: Option<String>,
    /// ssl.ca.location: CA certificate file for TLS.
    #[arg(long, env = "KAFKA_SSL_CA_LOCATION")]
    pub ssl_ca_location: Option<String>,
    /// Extra librdkafka properties, key=value (repeat, or comma-separate in the env var; a
    /// piece without `=` continues the previous value).
    #[arg(
        long = "kafka-property",
        env = "KAFKA_PROPERTIES",
        value_delimiter = ','
    )]
    pub properties: Vec<String>,
}

impl KafkaArgs {
    /// The security settings and extra properties as librdkafka key/value pairs. A piece of
    /// `--kafka-property` without `=` continues the previous value; one with nothing before it
    /// is ignored.
    pub fn passthrough(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = [
            ("security.protocol", &self.security_protocol),
            ("sasl.mechanism", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ssl_ca_location),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), v.clone())))
        .collect();
        let fixed = pairs.len();
        for piece in &self.properties {
            match piece.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    pairs.push((k.trim().to_owned(), v.trim().to_owned()));
                }
                _ => {
                    if let Some((_, value)) = pairs.get_mut(fixed..).and_then(<[_]>::last_mut) {
                        value.push(',');
                        value.push_str(piece.trim());
                    }
                }
            }
        }
        pairs
    }
}

/// `trainer train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Input data.
    #[command(flatten)]
    pub data: DataArgs,
    /// Directory for report.json, report.md, the plots and model.avro (created if missing).
    #[arg(long, env = "TRAINER_OUT", default_value = "trainer-out")]
    pub out: PathBuf,
    /// Seed for fold assignment and forests; the same seed gives the same model.
    #[arg(long, env = "TRAINER_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Cross-validation folds (stratified, shuffled).
    #[arg(long, env = "TRAINER_FOLDS", default_value_t = 5)]
    pub folds: usize,
    /// Model name; the Kafka key.
    #[arg(long, env = "TRAINER_NAME", default_value = "heart-disease")]
    pub name: String,
    /// Also publish the trained model (as `trainer publish` does).
    #[arg(long, env = "TRAINER_PUBLISH")]
    pub publish: bool,
    /// Kafka settings, used with --publish.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// `trainer eda`.
#[derive(Debug, Args)]
pub struct EdaArgs {
    /// Input data.
    #[command(flatten)]
    pub data: DataArgs,
    /// Directory for summary.md, summary.json and the plots (created if missing).
    #[arg(long, env = "TRAINER_EDA_OUT", default_value = "trainer-eda")]
    pub out: PathBuf,
}

/// `trainer publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The model file written by `trainer train`.
    #[arg(long, env = "TRAINER_MODEL", default_value = "trainer-out/model.avro")]
    pub model: PathBuf,
    /// Kafka settings.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// `trainer models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Kafka settings.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// `trainer fetch-data`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Where to write the file.
    #[arg(
        long,
        env = "TRAINER_FETCH_OUT",
        default_value = "../shared/data/processed.cleveland.data"
    )]
    pub out: PathBuf,
    /// Where to download it from.
    #[arg(long, env = "TRAINER_FETCH_URL", default_value = crate::fetch::UCI_URL)]
    pub url: String,
}

impl Config {
    /// Checks the rules clap cannot express.
    ///
    /// # Errors
    /// The first broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.command {
            Command::Train(t) => {
                if t.folds < 2 {
                    return Err(ConfigError::TooFewFolds(t.folds));
                }
                if t.name.is_empty() {
                    return Err(ConfigError::EmptyName);
                }
                t.kafka.validate()
            }
            Command::Publish(p) => p.kafka.validate(),
            Command::Models(m) => m.kafka.validate(),
            Command::Eda(_) | Command::FetchData(_) => Ok(()),
        }
    }
}

impl KafkaArgs {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.kafka_timeout_ms == 0 {
            return Err(ConfigError::ZeroTimeout);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_platform_conventions() {
        let c = Config::try_parse_from(["trainer", "train"]).unwrap();
        let Command::Train(t) = &c.command else {
            panic!("train")
        };
        assert_eq!(t.seed, 42);
        assert_eq!(t.folds, 5);
        assert_eq!(t.name, "heart-disease");
        assert_eq!(t.kafka.topic, "models");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn one_fold_is_rejected() {
        let c = Config::try_parse_from(["trainer", "train", "--folds", "1"]).unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::TooFewFolds(1))));
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Config::command().debug_assert();
    }
}
