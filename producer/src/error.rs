//! Errors, one enum per operation that can fail.

use std::path::PathBuf;

use heart_schemas::Invalid;
use rdkafka::error::KafkaError;
use thiserror::Error;

use crate::config::SourceKind;

/// A configuration that parsed but cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A Kafka client cannot be configured as asked: a malformed `--kafka-property`, or one that
    /// sets a key the client owns.
    #[error(transparent)]
    Kafka(#[from] heart_kafka::ClientConfigError),
    /// `--rate` is negative or not a number.
    #[error("--rate must be a finite number >= 0 (0 = unpaced), got {rate}")]
    Rate {
        /// The value given.
        rate: f64,
    },
    /// `--invalid-ratio` outside `0..1`.
    #[error("--invalid-ratio must be in 0..1 (1 would send only invalid records), got {ratio}")]
    InvalidRatio {
        /// The value given.
        ratio: f64,
    },
    /// The Schema Registry flags are invalid.
    #[error(transparent)]
    Registry(#[from] heart_registry::RegistryError),
    /// `--framing confluent` without a registry.
    #[error(
        "--framing confluent needs --schema-registry-url (SCHEMA_REGISTRY_URL): the schema id comes from the registry"
    )]
    FramingNeedsRegistry,
    /// `--max-in-flight 0` would never send.
    #[error("--max-in-flight must be at least 1")]
    ZeroInFlight,
    /// `--flush-timeout-ms 0` would report every outstanding record as unacknowledged.
    #[error("--flush-timeout-ms must be at least 1")]
    ZeroFlushTimeout,
    /// `--connect-timeout-ms 0`.
    #[error("--connect-timeout-ms must be at least 1")]
    ZeroConnectTimeout,
    /// `tail --timeout-s 0`.
    #[error("--timeout-s must be at least 1 (leave it out to wait forever)")]
    ZeroTimeout,
    /// `--loop` only applies to files.
    #[error("--loop repeats a file source; the synthetic source takes --count instead")]
    LoopSynthetic,
    /// A file source without a file.
    #[error("--source {kind} needs --data PATH (or HEART_DATA)")]
    DataRequired {
        /// The source.
        kind: SourceKind,
    },
}

/// An input file that cannot be read or has a bad row. Line and column numbers start at 1.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The file cannot be opened or read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A cell is not a number.
    #[error("line {line}, column {column} ({name}): {value:?} is not a number")]
    NotANumber {
        /// Line in the file.
        line: u64,
        /// Column, counting from 1.
        column: usize,
        /// The column's name.
        name: String,
        /// The cell.
        value: String,
    },
    /// A row has the wrong number of cells.
    #[error("line {line}: expected {expected} comma-separated values, found {found}")]
    Columns {
        /// Line in the file.
        line: u64,
        /// How many there should be.
        expected: usize,
        /// How many there are.
        found: usize,
    },
    /// The CSV header lacks an attribute.
    #[error("line 1: the CSV header has no {column} column (expected the UCI attribute names)")]
    MissingColumn {
        /// The attribute.
        column: &'static str,
    },
    /// The CSV reader failed (bad quoting, bad UTF-8, unequal row lengths).
    #[error("line {line}: {detail}")]
    Csv {
        /// Line in the file.
        line: u64,
        /// What the reader reported.
        detail: String,
    },
    /// A JSONL line is not valid JSON, or not an object.
    #[error("line {line}, column {column}: {detail}")]
    Json {
        /// Line in the file.
        line: u64,
        /// Column within the line.
        column: usize,
        /// What is wrong.
        detail: String,
    },
    /// A row parsed but fails validation.
    #[error("line {line}: {invalid}")]
    Invalid {
        /// Line in the file.
        line: u64,
        /// Every field that is wrong.
        invalid: Invalid,
    },
    /// The file has no records.
    #[error("{} has no records", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Why `send` stopped before its report.
#[derive(Debug, Error)]
pub enum SendError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad input.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The schema id for `--framing confluent` could not be had from the registry.
    #[error("cannot get the schema id of subject {subject:?} from the schema registry")]
    Registry {
        /// The subject.
        subject: String,
        /// Why.
        source: heart_registry::RegistryError,
    },
    /// The producer could not be created (bad librdkafka property, for example).
    #[error("cannot create the Kafka producer")]
    Create(#[source] KafkaError),
    /// The cluster refused the producer (credentials, certificate, protocol).
    #[error(transparent)]
    Refused(#[from] heart_kafka::ConnectionFailure),
    /// No metadata for the topic within the connect timeout.
    #[error(
        "cannot reach Kafka at {bootstrap} within {timeout_ms} ms (is the broker running? try scripts/kafka start)"
    )]
    Connect {
        /// bootstrap.servers.
        bootstrap: String,
        /// The bound.
        timeout_ms: u64,
        /// The last error.
        source: KafkaError,
    },
    /// The topic does not exist.
    #[error("topic {topic} does not exist (scripts/kafka start creates the project topics)")]
    NoTopic {
        /// The topic.
        topic: String,
    },
    /// librdkafka refused a message for a reason other than a full queue.
    #[error("cannot enqueue a record for {topic}")]
    Enqueue {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The producer hit a fatal error (e.g. the idempotence guarantee cannot be kept).
    #[error("fatal producer error, stopping: {code:?}: {reason}")]
    Fatal {
        /// librdkafka's code.
        code: rdkafka::types::RDKafkaErrorCode,
        /// librdkafka's text.
        reason: String,
    },
    /// A record could not be encoded: a bug, since it was validated.
    #[error(transparent)]
    Encode(#[from] heart_schemas::EncodeError),
    /// The JSON report could not be written.
    #[error("cannot write the summary to {}", path.display())]
    Summary {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why `tail` failed.
#[derive(Debug, Error)]
pub enum TailError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The consumer could not be created or assigned.
    #[error("cannot set up the Kafka consumer")]
    Consumer(#[source] KafkaError),
    /// The cluster refused the consumer (credentials, certificate, protocol).
    #[error(transparent)]
    Refused(#[from] heart_kafka::ConnectionFailure),
    /// No metadata within the connect timeout.
    #[error(
        "cannot reach Kafka at {bootstrap} within {timeout_ms} ms (is the broker running? try scripts/kafka start)"
    )]
    Connect {
        /// bootstrap.servers.
        bootstrap: String,
        /// The bound.
        timeout_ms: u64,
        /// The last error.
        source: KafkaError,
    },
    /// The topic does not exist (yet) after the connect timeout.
    #[error(
        "topic {topic} does not exist after waiting {timeout_ms} ms (scripts/kafka start creates the project topics)"
    )]
    NoTopic {
        /// The topic.
        topic: String,
        /// How long we waited.
        timeout_ms: u64,
    },
    /// Receiving failed for good.
    #[error("cannot receive from Kafka")]
    Receive(#[source] KafkaError),
    /// `--count N` was not reached within `--timeout-s`.
    #[error(
        "received {received} of {wanted} messages within {timeout_s} s; is the scorer running?"
    )]
    CountNotReached {
        /// How many arrived.
        received: u64,
        /// `--count`.
        wanted: u64,
        /// `--timeout-s`.
        timeout_s: u64,
    },
    /// Writing to stdout failed (e.g. a closed pipe).
    #[error("cannot write to stdout")]
    Stdout(#[source] std::io::Error),
}

/// Any failure of [`crate::run`].
#[derive(Debug, Error)]
pub enum Error {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `send` failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// `tail` failed.
    #[error(transparent)]
    Tail(#[from] TailError),
}
