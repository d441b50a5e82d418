//! Errors, one enum per operation that can fail.

use std::path::PathBuf;

use heart_mlflow::MlflowError;
use thiserror::Error;

/// A command-line value that parsed but breaks a rule.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Cross-validation needs at least two folds.
    #[error("--folds must be at least 2, got {0}")]
    TooFewFolds(usize),
    /// A timeout of zero would never succeed.
    #[error("--kafka-timeout-ms must be positive")]
    ZeroTimeout,
    /// A bad `--mlflow-*` or `--from-mlflow` value.
    #[error(transparent)]
    Mlflow(#[from] heart_mlflow::ConfigError),
    /// An empty alias cannot be set.
    #[error("--mlflow-alias must not be empty")]
    EmptyMlflowAlias,
    /// `--algorithm` names a kind this build cannot train.
    #[error("{0} is not available in this build")]
    AlgorithmUnavailable(&'static str),
    /// The model name is the Kafka key and may not be empty.
    #[error("--name must not be empty")]
    EmptyName,
    /// A Kafka client cannot be configured as asked: a malformed `--kafka-property`, or one that
    /// sets a key the client owns.
    #[error(transparent)]
    Kafka(#[from] heart_kafka::ClientConfigError),
}

/// Reading a data file failed.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file has no data rows.
    #[error("{source_name}: no data rows")]
    Empty {
        /// File name.
        source_name: String,
    },
    /// A line has the wrong number of fields.
    #[error("{source_name} line {line}: expected {expected} comma-separated fields, found {found}")]
    FieldCount {
        /// File name.
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// Fields the header (or the UCI layout) defines.
        expected: usize,
        /// Fields on this line.
        found: usize,
    },
    /// A headered CSV lacks a column.
    #[error(
        "{source_name}: the header has no column {column:?} (need the 13 UCI attribute names and num or target)"
    )]
    MissingColumn {
        /// File name.
        source_name: String,
        /// The column looked for.
        column: &'static str,
    },
    /// A cell is not a valid value for its column.
    #[error("{source_name} line {line}, column {column}: {value:?} {problem}")]
    BadValue {
        /// File name.
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// Column name.
        column: String,
        /// The cell as written.
        value: String,
        /// What is wrong, e.g. "is not a number".
        problem: String,
    },
    /// Both classes are needed to train and evaluate.
    #[error("{source_name}: the target has only one class ({positives} positive of {rows} rows)")]
    OneClass {
        /// File name.
        source_name: String,
        /// Rows with `num > 0`.
        positives: usize,
        /// All rows.
        rows: usize,
    },
    /// polars could not parse the file.
    #[error("{source_name}: csv parse error")]
    Csv {
        /// File name.
        source_name: String,
        /// The polars error.
        source: polars::error::PolarsError,
    },
}

/// Fitting a model failed.
#[derive(Debug, Error)]
pub enum TrainError {
    /// linfa-logistic failed.
    #[error("logistic regression")]
    Logistic(#[from] linfa_logistic::error::Error),
    /// Our tree learner refused its input.
    #[error("tree learner")]
    Trees(#[from] crate::trees::FitError),
    /// A fold has too few rows of a class to evaluate.
    #[error(
        "{folds}-fold cross-validation needs at least {folds} rows of each class, found {found}"
    )]
    TooFewRows {
        /// Folds asked for.
        folds: usize,
        /// Rows of the smaller class.
        found: usize,
    },
    /// An algorithm this build has no model kind for.
    #[error("{algorithm} is not available in this build")]
    Unavailable {
        /// The algorithm asked for.
        algorithm: heart_model::Algorithm,
    },
    /// The model to ship is not among the algorithms cross-validated.
    #[error("{algorithm} was asked to be shipped but is not among the algorithms trained")]
    NotSearched {
        /// The algorithm asked for.
        algorithm: heart_model::Algorithm,
    },
    /// The trained artifact does not load (a bug: it must always verify itself).
    #[error("the trained artifact fails its own verification")]
    SelfCheck(#[from] heart_model::ModelLoadError),
    /// The artifact could not be serialized.
    #[error("cannot serialize the artifact")]
    Serialize(#[from] postcard::Error),
    /// The envelope could not be encoded.
    #[error("cannot encode the model version")]
    Encode(#[from] heart_schemas::EncodeError),
}

/// Drawing a plot failed.
#[derive(Debug, Error)]
pub enum PlotError {
    /// The font file is missing.
    #[error("cannot read font {path} (install the fonts-dejavu-core package)")]
    Font {
        /// The font file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The font file is not a usable TrueType font.
    #[error("{path} is not a usable TrueType font")]
    InvalidFont {
        /// The font file.
        path: PathBuf,
    },
    /// plotters failed.
    #[error("drawing {file}: {detail}")]
    Draw {
        /// The PNG being drawn.
        file: PathBuf,
        /// plotters' error text.
        detail: String,
    },
}

/// Writing an output file failed.
#[derive(Debug, Error)]
#[error("cannot write {path}")]
pub struct WriteError {
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Publishing or listing model versions failed.
#[derive(Debug, Error)]
pub enum PublishError {
    /// The model file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The model file is not a model version.
    #[error("{path} is not an Avro ModelVersion")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decode error.
        source: heart_schemas::DecodeError,
    },
    /// The artifact fails its own checks, so it is not published.
    #[error("refusing to publish: the artifact fails verification")]
    Verify(#[from] heart_model::ModelLoadError),
    /// The envelope could not be re-encoded with its new version.
    #[error("cannot encode the model version")]
    Encode(#[from] heart_schemas::EncodeError),
    /// A Kafka client cannot be configured as asked (see [`ConfigError::Kafka`]).
    #[error(transparent)]
    Client(#[from] heart_kafka::ClientConfigError),
    /// The models topic could not be read to its end (no broker, no topic, too slow).
    #[error(transparent)]
    ReadTopic(#[from] heart_kafka::ReadError),
    /// The cluster refused the trainer (credentials, certificate, protocol).
    #[error(transparent)]
    Refused(#[from] heart_kafka::ConnectionFailure),
    /// A Kafka operation failed.
    #[error("kafka {operation} (bootstrap servers {brokers})")]
    Kafka {
        /// What we were doing.
        operation: &'static str,
        /// The bootstrap servers.
        brokers: String,
        /// The rdkafka error.
        source: rdkafka::error::KafkaError,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Downloading the data file failed.
#[derive(Debug, Error)]
pub enum FetchError {
    /// The HTTP request failed.
    #[error(
        "cannot download {url}: {detail}; download it by hand (e.g. from the UCI page for data set 45) and pass it with --data"
    )]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The downloaded bytes are not the expected file.
    #[error(
        "sha256 mismatch: expected {expected}, downloaded bytes hash to {actual}; the file was not written (check --url, or a proxy rewriting the download)"
    )]
    Checksum {
        /// The expected hash.
        expected: String,
        /// The actual hash.
        actual: String,
    },
    /// Writing the file failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// A scikit-learn export cannot become a model version; each message says what to do.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The file cannot be read.
    #[error("--sklearn {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not an export this build understands.
    #[error(
        "--sklearn {path}: not a scikit-learn export ({detail}); write it with `python3 sklearn/export.py PIPELINE.joblib --data DATA --out FILE`"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// An export of another format version.
    #[error(
        "--sklearn {path}: format {found:?}, this build reads {expected:?}; export again with this project's sklearn/export.py"
    )]
    Format {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: String,
        /// The format this build reads.
        expected: &'static str,
    },
    /// The export is inconsistent.
    #[error("--sklearn {path}: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The imported model does not reproduce scikit-learn's probabilities (or breaks the
    /// artifact's invariants): it is not served.
    #[error("the imported model does not reproduce scikit-learn: {0}")]
    Verify(#[from] heart_model::ModelLoadError),
    /// Serialization failed.
    #[error(transparent)]
    Serialize(#[from] postcard::Error),
    /// Encoding the version failed.
    #[error(transparent)]
    Encode(#[from] heart_schemas::EncodeError),
}

/// Any failure of a trainer command.
#[derive(Debug, Error)]
pub enum Error {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad data.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Plotting failed.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// Writing output failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Publishing failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Downloading failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A scikit-learn export cannot be imported.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// MLflow tracking or the model registry failed.
    #[error(transparent)]
    Mlflow(#[from] MlflowError),
    /// Tracking was asked for and the server cannot be reached before training.
    #[error("{0}; or pass --mlflow-optional to train without tracking")]
    MlflowRequired(MlflowError),
}
