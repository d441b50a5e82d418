//! Command-line configuration: one subcommand per task, every flag also readable from the
//! environment.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use heart_kafka::LogArgs;

use crate::error::ConfigError;

/// Trains, evaluates and publishes the heart-disease model.
#[derive(Debug, Parser)]
#[command(name = "trainer", version, about)]
pub struct Config {
    /// Logging to stderr (the level comes from RUST_LOG).
    #[command(flatten, next_help_heading = "Logging (all commands)")]
    pub log: LogArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The trainer's tasks.
// Parsed once per process, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cross-validate every model over its grid, fit the best on all data, write report, plots
    /// and model.avro.
    Train(TrainArgs),
    /// Summary statistics, missing values and plots of the data.
    Eda(EdaArgs),
    /// Verify a model.avro and publish it to the models topic as the next version.
    Publish(PublishArgs),
    /// Turn a scikit-learn Pipeline exported by sklearn/export.py into a model.avro, verified
    /// against scikit-learn's own probabilities, for publish, score-file or --model-file.
    ImportSklearn(ImportSklearnArgs),
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

/// Kafka settings of `train --publish`, `publish` and `models`: the connection flags every
/// heart-risk binary shares, plus the trainer's topic and bound.
#[derive(Debug, Clone, Args)]
pub struct KafkaSettings {
    /// Bootstrap servers, security and extra librdkafka properties.
    #[command(flatten, next_help_heading = "Kafka connection")]
    pub connection: heart_kafka::KafkaArgs,
    /// Compacted topic holding model versions, keyed `<name>/<version>`.
    #[arg(long, env = "TRAINER_TOPIC", default_value = heart_schemas::topics::MODELS)]
    pub topic: String,
    /// Upper bound for each Kafka step (metadata, reading the topic, delivery), milliseconds.
    #[arg(long, env = "TRAINER_KAFKA_TIMEOUT_MS", default_value_t = 15_000)]
    pub kafka_timeout_ms: u64,
}

impl KafkaSettings {
    /// Plain connection to `bootstrap` for `topic`, with the default bound (tests and tools).
    pub fn plaintext(bootstrap: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            connection: heart_kafka::KafkaArgs::plaintext(bootstrap),
            topic: topic.into(),
            kafka_timeout_ms: 15_000,
        }
    }

    /// The bound on each Kafka step.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.kafka_timeout_ms)
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
    /// The model written to model.avro: `best` ships the cross-validation winner, a kind ships
    /// that kind's best grid point. Every kind is cross-validated and written to
    /// candidates/<algorithm>.avro either way.
    #[arg(long, env = "TRAINER_ALGORITHM", value_enum, default_value_t = AlgorithmChoice::Best)]
    pub algorithm: AlgorithmChoice,
    /// Also publish the trained model (as `trainer publish` does).
    #[arg(long, env = "TRAINER_PUBLISH")]
    pub publish: bool,
    /// Kafka settings, used with --publish.
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// MLflow tracking and registry.
    #[command(flatten, next_help_heading = "MLflow tracking")]
    pub mlflow: MlflowArgs,
}

/// `train --algorithm`: which model to ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum AlgorithmChoice {
    /// L2-regularised logistic regression.
    LogisticRegression,
    /// A single CART tree.
    DecisionTree,
    /// Bagged CART trees.
    RandomForest,
    /// Gradient-boosted trees.
    GradientBoosting,
    /// The cross-validation winner.
    Best,
}

impl AlgorithmChoice {
    /// The algorithm code of a kind (`random_forest`), `None` for `best`.
    pub const fn code(self) -> Option<&'static str> {
        match self {
            Self::LogisticRegression => Some("logistic_regression"),
            Self::DecisionTree => Some("decision_tree"),
            Self::RandomForest => Some("random_forest"),
            Self::GradientBoosting => Some("gradient_boosting"),
            Self::Best => None,
        }
    }

    /// What to ship.
    ///
    /// # Errors
    /// [`ConfigError::AlgorithmUnavailable`] for a kind this build cannot train.
    pub fn ship(self) -> Result<crate::train::Ship, ConfigError> {
        match self.code() {
            None => Ok(crate::train::Ship::Best),
            Some(code) => crate::algorithms::by_code(code)
                .map(|k| crate::train::Ship::Algorithm(k.algorithm))
                .ok_or(ConfigError::AlgorithmUnavailable(code)),
        }
    }
}

/// MLflow tracking of `train` and `eda`: off unless a tracking URI is given.
#[derive(Debug, Clone, Args)]
pub struct MlflowArgs {
    /// The server and credentials; without --mlflow-uri nothing is tracked.
    #[command(flatten)]
    pub connection: heart_mlflow::MlflowConnection,
    /// Experiment the runs go to (created if missing).
    #[arg(long, env = "MLFLOW_EXPERIMENT_NAME", default_value = "heart-risk")]
    pub mlflow_experiment: String,
    /// Go on without tracking when the server is unreachable (a warning is logged), instead of
    /// failing before training.
    #[arg(long, env = "TRAINER_MLFLOW_OPTIONAL")]
    pub mlflow_optional: bool,
    /// Registered model the chosen model becomes a new version of (default: --name).
    #[arg(long, env = "TRAINER_MLFLOW_MODEL_NAME")]
    pub mlflow_model_name: Option<String>,
    /// Alias set on the new registered version.
    #[arg(long, env = "TRAINER_MLFLOW_ALIAS", default_value = "champion")]
    pub mlflow_alias: String,
}

impl MlflowArgs {
    fn validate(&self) -> Result<(), ConfigError> {
        self.connection.validate()?;
        if self.mlflow_alias.is_empty() {
            return Err(ConfigError::EmptyMlflowAlias);
        }
        Ok(())
    }
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
    /// MLflow tracking: the summary and plots are logged as one run's artifacts.
    #[command(flatten, next_help_heading = "MLflow tracking")]
    pub mlflow: MlflowArgs,
}

/// `trainer publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The model file written by `trainer train`.
    #[arg(long, env = "TRAINER_MODEL", default_value = "trainer-out/model.avro")]
    pub model: PathBuf,
    /// Publish a registered MLflow model version instead of --model: `models:/NAME@ALIAS`
    /// (needs --mlflow-uri). Its model.avro is downloaded, verified and published as the next
    /// version; the MLflow version is tagged with the Kafka version and offset.
    #[arg(long, env = "TRAINER_FROM_MLFLOW")]
    pub from_mlflow: Option<String>,
    /// Publish a scikit-learn Pipeline instead of --model: the JSON file `python3
    /// sklearn/export.py PIPELINE.joblib --data DATA --out FILE` wrote (see `trainer
    /// import-sklearn`).
    #[arg(long, env = "TRAINER_SKLEARN", conflicts_with = "from_mlflow")]
    pub sklearn: Option<PathBuf>,
    /// Model name of a --sklearn import; the Kafka key.
    #[arg(long, env = "TRAINER_NAME", default_value = "heart-disease")]
    pub name: String,
    /// The MLflow server, for --from-mlflow.
    #[command(flatten, next_help_heading = "MLflow registry")]
    pub mlflow: heart_mlflow::MlflowConnection,
    /// Kafka settings.
    #[command(flatten)]
    pub kafka: KafkaSettings,
}

/// `trainer import-sklearn`.
#[derive(Debug, Args)]
pub struct ImportSklearnArgs {
    /// The JSON file `python3 sklearn/export.py PIPELINE.joblib --data DATA --out FILE` wrote.
    #[arg(long, env = "TRAINER_SKLEARN")]
    pub sklearn: PathBuf,
    /// Model name; the Kafka key.
    #[arg(long, env = "TRAINER_NAME", default_value = "heart-disease")]
    pub name: String,
    /// Where to write the model version (Avro, as `trainer train` writes model.avro).
    #[arg(
        long,
        env = "TRAINER_IMPORT_OUT",
        default_value = "trainer-out/model.avro"
    )]
    pub out: PathBuf,
}

/// `trainer models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Kafka settings.
    #[command(flatten)]
    pub kafka: KafkaSettings,
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
                t.algorithm.ship()?;
                t.mlflow.validate()?;
                let clients = if t.publish {
                    Clients::ReaderAndProducer
                } else {
                    Clients::None
                };
                t.kafka.validate(clients)
            }
            Command::Publish(p) => {
                p.mlflow.validate()?;
                if let Some(uri) = &p.from_mlflow {
                    p.mlflow.validate_from(uri)?;
                }
                p.kafka.validate(Clients::ReaderAndProducer)
            }
            Command::Models(m) => m.kafka.validate(Clients::Reader),
            Command::Eda(e) => e.mlflow.validate(),
            Command::FetchData(_) => Ok(()),
            Command::ImportSklearn(i) if i.name.is_empty() => Err(ConfigError::EmptyName),
            Command::ImportSklearn(_) => Ok(()),
        }
    }
}

/// The Kafka clients a command creates (publishing reads the topic first, for the next version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clients {
    None,
    Reader,
    ReaderAndProducer,
}

impl KafkaSettings {
    /// Checks the bound and builds the configuration of each client the command will create,
    /// so a malformed or owned-key `--kafka-property` fails before any work is done. Without a
    /// client (`train` without `--publish`) the properties are not looked at.
    fn validate(&self, clients: Clients) -> Result<(), ConfigError> {
        if self.kafka_timeout_ms == 0 {
            return Err(ConfigError::ZeroTimeout);
        }
        if clients != Clients::None {
            crate::publish::reader_config(self)?;
        }
        if clients == Clients::ReaderAndProducer {
            crate::publish::producer_config(self)?;
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
        assert_eq!(t.algorithm, AlgorithmChoice::Best);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn algorithm_picks_that_kind_and_an_unavailable_one_is_a_clear_error() {
        use crate::train::Ship;
        use heart_model::Algorithm;
        let parse = |v: &str| {
            let c = Config::try_parse_from(["trainer", "train", "--algorithm", v]).unwrap();
            let Command::Train(t) = &c.command else {
                panic!("train")
            };
            (t.algorithm.ship(), c.validate())
        };
        for (v, a) in [
            ("logistic_regression", Algorithm::LogisticRegression),
            ("decision_tree", Algorithm::DecisionTree),
            ("random_forest", Algorithm::RandomForest),
            ("gradient_boosting", Algorithm::GradientBoosting),
        ] {
            let (ship, valid) = parse(v);
            assert_eq!(ship.unwrap(), Ship::Algorithm(a));
            assert!(valid.is_ok());
        }
        assert_eq!(parse("best").0.unwrap(), Ship::Best);
        assert!(Config::try_parse_from(["trainer", "train", "--algorithm", "svm"]).is_err());
        assert_eq!(
            ConfigError::AlgorithmUnavailable("gradient_boosting").to_string(),
            "gradient_boosting is not available in this build"
        );
    }

    #[test]
    fn one_fold_is_rejected() {
        let c = Config::try_parse_from(["trainer", "train", "--folds", "1"]).unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::TooFewFolds(1))));
    }

    #[test]
    fn owned_or_malformed_kafka_properties_fail_validation_only_where_kafka_is_used() {
        let parse = |args: &[&str]| {
            Config::try_parse_from(std::iter::once("trainer").chain(args.iter().copied())).unwrap()
        };
        for (args, key) in [
            (&["publish", "--kafka-property", "acks=1"][..], "acks"),
            (
                &["publish", "--kafka-property", "enable.idempotence=false"],
                "enable.idempotence",
            ),
            (
                &[
                    "models",
                    "--kafka-property",
                    "isolation.level=read_uncommitted",
                ],
                "isolation.level",
            ),
            (
                &["train", "--publish", "--kafka-property", "group.id=g"],
                "group.id",
            ),
        ] {
            let err = parse(args).validate().unwrap_err();
            assert!(
                matches!(&err, ConfigError::Kafka(heart_kafka::ClientConfigError::Owned { key: k, .. }) if k == key),
                "{args:?}: {err}"
            );
        }
        assert!(matches!(
            parse(&["models", "--kafka-property", "novalue"]).validate(),
            Err(ConfigError::Kafka(
                heart_kafka::ClientConfigError::Property(_)
            ))
        ));
        // No Kafka client, so no opinion on the properties.
        assert!(
            parse(&["train", "--kafka-property", "acks=1"])
                .validate()
                .is_ok()
        );
        assert!(
            parse(&["models", "--kafka-property", "socket.keepalive.enable=true"])
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Config::command().debug_assert();
    }
}
