//! The one Kafka layer of heart-risk. Every binary (producer, scorer, trainer) connects to Kafka,
//! builds its clients, reads the compacted models topic and handles signals and logging through
//! this crate, so the three cannot drift apart.
//!
//! ```text
//! flags/env ──▶ KafkaArgs ──▶ client_config(role) ──▶ rdkafka ClientConfig
//!                              (defaults < user properties < keys the role owns)
//! ```
//!
//! # Layout
//! - [`connection`]: [`KafkaArgs`], the connection and security flags every binary flattens in.
//! - [`properties`]: `KAFKA_PROPERTIES` / `--kafka-property` parsing.
//! - [`client`]: [`Role`] and [`client_config`], the one place a `ClientConfig` is built.
//! - [`compacted`]: [`read_to_end`], reading a (compacted) topic from its start to its end.
//! - [`signals`]: SIGTERM/SIGINT handling with a second-signal and a hard-deadline exit.
//! - [`telemetry`]: the one `RUST_LOG` / `--log-format` tracing setup.
//! - [`watch`]: [`ConnectionWatch`], the clients' context: refused credentials, an untrusted
//!   certificate or a protocol mismatch, told apart from an outage and named for the fix.

pub mod client;
pub mod compacted;
pub mod connection;
pub mod properties;
pub mod signals;
pub mod telemetry;
pub mod watch;

pub use client::{ClientConfigError, Role, client_config};
pub use compacted::{ReadError, read_to_end};
pub use connection::KafkaArgs;
pub use properties::PropertyError;
pub use telemetry::{LogArgs, LogFormat, Throttle};
pub use watch::{ConnectionFailure, ConnectionWatch, FailureKind, MetadataError, fetch_metadata};
