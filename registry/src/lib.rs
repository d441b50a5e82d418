//! The Schema Registry client of heart-risk. Records on Kafka may use the Confluent wire format
//! (`0x00`, a 4-byte big-endian schema id, the Avro body); the producer registers or looks up its
//! writer schema here, and the scorer resolves the id on each record to a writer schema here.
//!
//! ```text
//! flags/env ──▶ RegistryArgs ──validate──▶ RegistryConfig ──▶ Registry (blocking, cached)
//!   producer: register/lookup(value_subject(topic), schema) ──▶ id ──▶ 0x00 id body
//!   scorer:   0x00 id body ──▶ schema(id) ──▶ writer schema   (NotFound → dead letter,
//!                                                              Unavailable → wait and retry)
//! ```
//!
//! Blocking on purpose: the scorer calls it from a dedicated thread and the producer from its
//! main path, and after the first call per id the caches answer without a request.
//!
//! # Layout
//! - [`config`]: [`RegistryArgs`] (the `SCHEMA_REGISTRY_*` flags) and [`RegistryConfig`].
//! - [`client`]: [`Registry`], the REST calls and their caches.
//! - [`decoder`]: [`Decoder`], which reads a record in either framing (single-object or
//!   Confluent), with writer schemas from the registry resolved to this build's.
//! - [`error`]: [`RegistryError`], sorted by what the caller should do.
//! - [`standin`]: [`StandIn`], which runs the test stand-in `scripts/schema-registry` for this
//!   crate's and other crates' tests. It is always built: a feature for it would give the tests'
//!   builds a different feature set from the binaries' and compile the dependents twice.

pub mod client;
pub mod config;
pub mod decoder;
pub mod error;
pub mod standin;

pub use client::{Registry, SubjectVersion};
pub use config::{RegistryArgs, RegistryConfig};
pub use decoder::{DecodeFailure, Decoder, Header, Lookup};
pub use error::RegistryError;
pub use standin::StandIn;

/// The value subject of `topic` under the TopicNameStrategy, Confluent's default:
/// `{topic}-value`.
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_value_subject_follows_the_topic_name_strategy() {
        assert_eq!(super::value_subject("patients"), "patients-value");
    }
}
