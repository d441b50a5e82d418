//! Decoding patient records in either framing, record by record: single-object records decode
//! with this build's schema, registry-framed ones with the writer schema their id names, fetched
//! from the Schema Registry once per id and kept (ids are immutable).
//!
//! A lookup the registry cannot answer right now is [`Decoded::Wait`], never a dead letter: the
//! fetch stage then holds the record's partition until the registry answers.

use std::collections::HashMap;
use std::sync::Arc;

use heart_registry::{Registry, RegistryError};
use heart_schemas::{AvroRecord, DecodeError, Framed, PatientRecord, WriterSchema};

use crate::metrics::Metrics;
use crate::score::Rejection;

/// Most ids whose lookup failed for good that are remembered; random input with a `00` first
/// byte names random ids, and remembering them all would grow without bound.
const MAX_REMEMBERED_FAILURES: usize = 4096;

/// What decoding one value gave.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// The record, or why it cannot be scored (its dead letter's reason).
    Ready(Result<PatientRecord, Rejection>),
    /// The value names registry id `id`, which the registry could not be asked about now.
    Wait {
        /// The schema id in the value's header.
        id: u32,
        /// Why the lookup failed.
        error: RegistryError,
    },
}

/// The writer schemas this replica has resolved, and the registry that resolves the others.
#[derive(Debug)]
pub(crate) struct PatientDecoder {
    registry: Option<Arc<Registry>>,
    writers: HashMap<u32, Result<Arc<WriterSchema<PatientRecord>>, Rejection>>,
    failures: usize,
    metrics: Metrics,
}

impl PatientDecoder {
    pub fn new(registry: Option<Arc<Registry>>, metrics: Metrics) -> Self {
        Self {
            registry,
            writers: HashMap::new(),
            failures: 0,
            metrics,
        }
    }

    /// Decodes one Kafka value.
    pub fn decode(&mut self, value: Option<&[u8]>) -> Decoded {
        let bytes = value.unwrap_or_default();
        let framed = match PatientRecord::frame(bytes) {
            Ok(framed) => framed,
            Err(e) => return Decoded::Ready(Err(Rejection::undecodable(&e))),
        };
        let decoded = match framed {
            Framed::Current(body) => PatientRecord::decode_body(body),
            Framed::Legacy(body) => {
                self.metrics.legacy_fingerprint_records.inc();
                PatientRecord::decode_body(body)
            }
            Framed::Registry { id, body } => match self.writer(id) {
                Ok(Ok(writer)) => writer.decode(body),
                Ok(Err(rejection)) => return Decoded::Ready(Err(rejection)),
                Err(error) => return Decoded::Wait { id, error },
            },
        };
        Decoded::Ready(decoded.map_err(|e| Rejection::undecodable(&e)))
    }

    /// Asks the registry about `id` again (after a [`Decoded::Wait`]).
    ///
    /// # Errors
    /// The [`RegistryError`] while the registry still cannot answer.
    pub fn retry(&mut self, id: u32) -> Result<(), RegistryError> {
        self.writer(id).map(drop)
    }

    /// The writer schema of `id`: `Err` while the registry cannot answer, `Ok(Err)` when it has
    /// answered that records with this id cannot be scored.
    #[allow(clippy::type_complexity)]
    fn writer(
        &mut self,
        id: u32,
    ) -> Result<Result<Arc<WriterSchema<PatientRecord>>, Rejection>, RegistryError> {
        if let Some(known) = self.writers.get(&id) {
            return Ok(known.clone());
        }
        let Some(registry) = &self.registry else {
            let error = DecodeError::NeedsRegistry {
                record: PatientRecord::NAME,
                id,
            };
            return Ok(Err(Rejection::undecodable(&error)));
        };
        let outcome = match registry.schema(id) {
            Ok(text) => WriterSchema::parse(&text)
                .map(Arc::new)
                .map_err(|e| Rejection::undecodable(&e)),
            Err(error) if error.is_not_found() => {
                Err(Rejection::undecodable(&DecodeError::UnknownSchema {
                    record: PatientRecord::NAME,
                    found: format!("registry id {id}"),
                    expected: "an id the schema registry knows".to_owned(),
                }))
            }
            Err(error) => {
                let label = if error.is_transient() {
                    "unavailable"
                } else {
                    "rejected"
                };
                self.metrics
                    .schema_lookups
                    .with_label_values(&[label])
                    .inc();
                return Err(error);
            }
        };
        let label = match &outcome {
            Ok(_) => "found",
            Err(r) if r.reason == heart_schemas::Reason::UnknownSchema => "not_found",
            Err(_) => "incompatible",
        };
        self.metrics
            .schema_lookups
            .with_label_values(&[label])
            .inc();
        match &outcome {
            Ok(_) => tracing::info!(schema_id = id, "writer schema resolved"),
            Err(r) => {
                tracing::warn!(schema_id = id, reason = r.reason.code(), error = %r.message, "writer schema cannot be used");
                self.failures += 1;
                if self.failures > MAX_REMEMBERED_FAILURES {
                    self.writers.retain(|_, w| w.is_ok());
                    self.failures = 0;
                }
            }
        }
        self.writers.insert(id, outcome.clone());
        Ok(outcome)
    }
}
