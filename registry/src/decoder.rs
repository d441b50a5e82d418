//! [`Decoder`]: reads a record in either framing, record by record. Single-object values decode
//! with this build's schema; Confluent-framed ones with the writer schema their id names, looked
//! up once per id and kept (ids are immutable), resolved to this build's schema.

use std::collections::HashMap;
use std::sync::Arc;

use heart_schemas::{AvroRecord, DecodeError, Framed, WriterSchema};

use crate::{Registry, RegistryError};

/// Most ids whose lookup failed for good that are remembered: random input with a `00` first
/// byte names random ids, and remembering them all would grow without bound.
const MAX_REMEMBERED_FAILURES: usize = 4096;

/// Which header a decoded value had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Single-object encoding with this build's fingerprint.
    Current,
    /// Single-object encoding with the fingerprint builds before the specification fix wrote.
    Legacy,
    /// Single-object encoding with an earlier version of the record's schema (index into
    /// `SchemaInfo::earlier`, newest first).
    Earlier(usize),
    /// Confluent framing with this registry id.
    Registry(u32),
}

/// Why a value was not decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeFailure {
    /// The value itself cannot be read as the record: permanent (a consumer dead-letters it).
    #[error(transparent)]
    Record(Arc<DecodeError>),
    /// The value names registry id `id`, and the registry could not be asked about it now:
    /// retry later; the value may be fine.
    #[error("schema id {id}: {error}")]
    Registry {
        /// The id in the value's header.
        id: u32,
        /// Why the lookup failed.
        error: RegistryError,
    },
}

/// What a writer-schema lookup found, for a caller's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The schema, readable as the record.
    Found,
    /// The registry has no such id.
    NotFound,
    /// A schema that cannot be read as the record (or is not a schema).
    Incompatible,
    /// The registry did not answer.
    Unavailable,
    /// The registry refused the request (credentials, URL).
    Rejected,
}

impl Lookup {
    /// A label value.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Found => "found",
            Self::NotFound => "not_found",
            Self::Incompatible => "incompatible",
            Self::Unavailable => "unavailable",
            Self::Rejected => "rejected",
        }
    }
}

type Writer<R> = Result<Arc<WriterSchema<R>>, Arc<DecodeError>>;

/// A decoder of `R` values in either framing.
pub struct Decoder<R> {
    registry: Option<Arc<Registry>>,
    writers: HashMap<u32, Writer<R>>,
    failures: usize,
    observe: Box<dyn Fn(Lookup) + Send>,
}

impl<R> std::fmt::Debug for Decoder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("registry", &self.registry)
            .field("writers", &self.writers.len())
            .finish_non_exhaustive()
    }
}

impl<R: AvroRecord> Decoder<R> {
    /// A decoder; without a registry, Confluent-framed values fail with
    /// [`DecodeError::NeedsRegistry`].
    pub fn new(registry: Option<Arc<Registry>>) -> Self {
        Self {
            registry,
            writers: HashMap::new(),
            failures: 0,
            observe: Box::new(|_| {}),
        }
    }

    /// Calls `observe` with the outcome of every registry lookup (one per new id, and one per
    /// retry while the registry does not answer).
    #[must_use]
    pub fn observed(mut self, observe: impl Fn(Lookup) + Send + 'static) -> Self {
        self.observe = Box::new(observe);
        self
    }

    /// Decodes one value.
    ///
    /// # Errors
    /// [`DecodeFailure::Record`] for a value that can never be read as `R`;
    /// [`DecodeFailure::Registry`] while the registry cannot be asked about its id.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<(R, Header), DecodeFailure> {
        let permanent = |e: DecodeError| DecodeFailure::Record(Arc::new(e));
        match R::frame(bytes).map_err(permanent)? {
            Framed::Current(body) => {
                Ok((R::decode_body(body).map_err(permanent)?, Header::Current))
            }
            Framed::Legacy(body) => Ok((R::decode_body(body).map_err(permanent)?, Header::Legacy)),
            Framed::Earlier { index, body } => Ok((
                R::decode_earlier(index, body).map_err(permanent)?,
                Header::Earlier(index),
            )),
            Framed::Registry { id, body } => {
                let writer = self
                    .writer(id)
                    .map_err(|error| DecodeFailure::Registry { id, error })?
                    .map_err(DecodeFailure::Record)?;
                Ok((
                    writer.decode(body).map_err(permanent)?,
                    Header::Registry(id),
                ))
            }
        }
    }

    /// Asks the registry about `id` again (after a [`DecodeFailure::Registry`]).
    ///
    /// # Errors
    /// The [`RegistryError`] while the registry still cannot answer.
    pub fn retry(&mut self, id: u32) -> Result<(), RegistryError> {
        self.writer(id).map(drop)
    }

    /// The writer schema of `id`: `Err` while the registry cannot answer, `Ok(Err)` once it has
    /// answered that values with this id cannot be read.
    fn writer(&mut self, id: u32) -> Result<Writer<R>, RegistryError> {
        if let Some(known) = self.writers.get(&id) {
            return Ok(known.clone());
        }
        let Some(registry) = &self.registry else {
            return Ok(Err(Arc::new(DecodeError::NeedsRegistry {
                record: R::NAME,
                id,
            })));
        };
        let writer = match registry.schema(id) {
            Ok(text) => WriterSchema::parse(&text).map(Arc::new).map_err(Arc::new),
            Err(error) if error.is_not_found() => Err(Arc::new(DecodeError::UnknownSchema {
                record: R::NAME,
                found: format!("registry id {id}"),
                expected: "an id the schema registry knows".to_owned(),
            })),
            Err(error) => {
                (self.observe)(if error.is_transient() {
                    Lookup::Unavailable
                } else {
                    Lookup::Rejected
                });
                return Err(error);
            }
        };
        match &writer {
            Ok(_) => {
                (self.observe)(Lookup::Found);
                tracing::info!(record = R::NAME, schema_id = id, "writer schema resolved");
            }
            Err(error) => {
                (self.observe)(if matches!(**error, DecodeError::UnknownSchema { .. }) {
                    Lookup::NotFound
                } else {
                    Lookup::Incompatible
                });
                tracing::warn!(record = R::NAME, schema_id = id, error = %error, "writer schema cannot be used");
                self.failures += 1;
                if self.failures > MAX_REMEMBERED_FAILURES {
                    self.writers.retain(|_, w| w.is_ok());
                    self.failures = 0;
                }
            }
        }
        self.writers.insert(id, writer.clone());
        Ok(writer)
    }
}
