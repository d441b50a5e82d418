//! Patient records in either framing, as the fetch stage needs them: a record or its dead
//! letter's rejection, or a wait while the Schema Registry cannot be asked about the record's
//! writer schema (never a dead letter for an outage). The decoding itself is
//! `heart_registry::Decoder`'s; this adds the scorer's metrics.

use std::sync::Arc;

use heart_registry::{DecodeFailure, Decoder, Header, Registry, RegistryError};
use heart_schemas::PatientRecord;

use crate::metrics::Metrics;
use crate::score::Rejection;

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

/// The patients topic's decoder.
#[derive(Debug)]
pub(crate) struct PatientDecoder {
    decoder: Decoder<PatientRecord>,
    metrics: Metrics,
}

impl PatientDecoder {
    pub fn new(registry: Option<Arc<Registry>>, metrics: Metrics) -> Self {
        let lookups = metrics.schema_lookups.clone();
        Self {
            decoder: Decoder::new(registry)
                .observed(move |lookup| lookups.with_label_values(&[lookup.label()]).inc()),
            metrics,
        }
    }

    /// Decodes one Kafka value.
    pub fn decode(&mut self, value: Option<&[u8]>) -> Decoded {
        match self.decoder.decode(value.unwrap_or_default()) {
            Ok((record, header)) => {
                if header == Header::Legacy {
                    self.metrics.legacy_fingerprint_records.inc();
                }
                Decoded::Ready(Ok(record))
            }
            Err(DecodeFailure::Record(e)) => Decoded::Ready(Err(Rejection::undecodable(&e))),
            Err(DecodeFailure::Registry { id, error }) => Decoded::Wait { id, error },
        }
    }

    /// Asks the registry about `id` again (after a [`Decoded::Wait`]).
    ///
    /// # Errors
    /// The [`RegistryError`] while the registry still cannot answer.
    pub fn retry(&mut self, id: u32) -> Result<(), RegistryError> {
        self.decoder.retry(id)
    }
}
