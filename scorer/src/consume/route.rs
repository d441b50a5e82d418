//! Stage 2, routing: one input record becomes one output — a prediction, or a dead letter with
//! its reason — encoded into the batch. Pure: no Kafka here.

use std::time::Instant;

use heart_model::Model;
use heart_schemas::{AvroRecord, EncodeError, Framing, PatientRecord, Reason, SpanIds};

use super::batch::{Batch, Output, Topic};
use crate::dead_letter::{self, RECORD_OVERHEAD, Source};
use crate::score::{Rejection, Rules, score_decoded, score_record};

/// One record in this many is timed for `scorer_score_duration_seconds`.
const SAMPLE: i64 = 32;

/// A Prediction is far smaller than this (ids are at most 128 bytes).
const PREDICTION_BYTES: usize = 512;

/// How records are scored and how large an output may be.
#[derive(Debug)]
pub(crate) struct Router<'a> {
    pub model: &'a Model,
    /// The shadow (challenger) model: every prediction gets a twin on the shadow topic.
    pub shadow: Option<&'a Model>,
    pub rules: &'a Rules,
    /// Largest output record, bytes (the producer's `message.max.bytes`).
    pub max_output_bytes: usize,
    /// The header each output topic's records carry.
    pub framing: OutputFraming,
}

/// The header written in front of each output's Avro body (`--output-framing`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OutputFraming {
    /// For predictions.
    pub prediction: Framing,
    /// For dead letters.
    pub dead_letter: Framing,
}

impl Router<'_> {
    /// Scores `source`, whose value decoded to `decoded`, and appends its one output to `batch`.
    /// `cap` lowers the size limit for a record whose output the broker refused as too large
    /// before.
    ///
    /// # Errors
    /// [`EncodeError`] only for a record its own schema cannot represent (a bug).
    pub fn route(
        &self,
        source: Source<'_>,
        decoded: Result<PatientRecord, Rejection>,
        cap: Option<usize>,
        now_ms: i64,
        batch: &mut Batch,
    ) -> Result<(), EncodeError> {
        // Reading the clock twice per record costs more than scoring a logistic model, so one
        // record in SAMPLE is timed and stands for the others.
        let started = (source.offset % SAMPLE == 0).then(Instant::now);
        let budget = cap.unwrap_or(self.max_output_bytes);
        // This record's span: the trace goes on, with the scorer as the parent of what follows.
        let trace = source.trace.map(|t| t.child(SpanIds::process().next()));
        if let Some(t) = &source.trace {
            tracing::debug!(
                partition = source.partition,
                offset = source.offset,
                trace_id = %t.trace_id_hex(),
                "record traced"
            );
        }
        // The shadow scores the same record, so it is kept (a copy only while one is on).
        let twin = self.shadow.zip(decoded.as_ref().ok().cloned());
        let outcome = score_decoded(self.model, self.rules, decoded, now_ms);
        let outcome = match outcome {
            Ok(scored) => {
                let key_len = source
                    .key
                    .map_or(scored.prediction.patient_id.len(), <[u8]>::len);
                if key_len + PREDICTION_BYTES + RECORD_OVERHEAD <= budget {
                    Ok(scored)
                } else {
                    Err(Rejection {
                        reason: Reason::TooLarge,
                        message: format!(
                            "its key of {key_len} bytes makes the prediction larger than the {budget}-byte output limit"
                        ),
                    })
                }
            }
            Err(rejection) => Err(rejection),
        };
        match outcome {
            Ok(scored) => {
                let p = &scored.prediction;
                let key = match source.key {
                    Some(k) => batch.append(k),
                    None => batch.append(p.patient_id.as_bytes()),
                };
                let start = batch.buffer().len();
                p.encode_framed_into(self.framing.prediction, batch.buffer())?;
                let value = start..batch.buffer().len();
                batch.count_prediction(&scored);
                if let Some(located) = scored.located {
                    batch.drift.push(located);
                }
                batch.push(Output {
                    topic: Topic::Predictions,
                    key: Some(key.clone()),
                    value,
                    reason: None,
                    partition: source.partition,
                    offset: source.offset,
                    trace,
                });
                if let Some((shadow, record)) = twin {
                    let imputed = p.imputed_fields;
                    let s = score_record(
                        shadow,
                        self.rules,
                        record,
                        imputed,
                        now_ms,
                        self.rules.explain.stream,
                    )
                    .prediction;
                    let start = batch.buffer().len();
                    s.encode_framed_into(self.framing.prediction, batch.buffer())?;
                    let value = start..batch.buffer().len();
                    batch.shadow.compare(&scored.prediction, &s);
                    batch.push(Output {
                        topic: Topic::Shadow,
                        key: Some(key),
                        value,
                        reason: None,
                        partition: source.partition,
                        offset: source.offset,
                        trace,
                    });
                }
            }
            Err(rejection) => {
                tracing::debug!(
                    partition = source.partition,
                    offset = source.offset,
                    reason = rejection.reason.code(),
                    error = %rejection.message,
                    "record dead-lettered"
                );
                let letter = dead_letter::dead_letter(source, &rejection, now_ms, budget);
                let reason = if letter.reason == Reason::TooLarge.code() {
                    Reason::TooLarge
                } else {
                    rejection.reason
                };
                let key = dead_letter::record_key(source, &letter).map(|k| batch.append(k));
                let start = batch.buffer().len();
                letter.encode_framed_into(self.framing.dead_letter, batch.buffer())?;
                let value = start..batch.buffer().len();
                batch.dead_letters.push(reason);
                batch.push(Output {
                    topic: Topic::DeadLetters,
                    key,
                    value,
                    reason: Some(reason),
                    partition: source.partition,
                    offset: source.offset,
                    trace,
                });
            }
        }
        if let Some(started) = started {
            batch.score_seconds += started.elapsed().as_secs_f64() * SAMPLE as f64;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use heart_schemas::{DeadLetter, Prediction};

    use super::*;
    use crate::score::tests::{model, record};

    fn decoded(value: &[u8]) -> Result<PatientRecord, Rejection> {
        PatientRecord::decode(value).map_err(|e| Rejection::undecodable(&e))
    }

    fn source<'a>(key: Option<&'a [u8]>, value: &'a [u8], offset: i64) -> Source<'a> {
        Source {
            trace: None,
            topic: "patients",
            partition: 0,
            offset,
            key,
            value: Some(value),
        }
    }

    #[test]
    fn a_valid_record_becomes_a_prediction_and_a_bad_one_a_dead_letter() {
        let m = model(3, 1.0);
        let rules = Rules::default();
        let router = Router {
            model: &m,
            shadow: None,
            rules: &rules,
            max_output_bytes: 1_000_000,
            framing: OutputFraming::default(),
        };
        let mut batch = Batch::new(1, 0, 3, 4);
        let good = record().encode().unwrap();
        let bad = PatientRecord {
            age: Some(500),
            ..record()
        }
        .encode()
        .unwrap();
        router
            .route(
                source(Some(b"k1"), &good, 10),
                decoded(&good),
                None,
                5,
                &mut batch,
            )
            .unwrap();
        router
            .route(
                source(Some(b"k2"), &bad, 11),
                decoded(&bad),
                None,
                5,
                &mut batch,
            )
            .unwrap();
        assert_eq!(batch.len(), 2);
        let (p, d) = (&batch.outputs[0], &batch.outputs[1]);
        assert_eq!(
            (p.topic, batch.key(p)),
            (Topic::Predictions, Some(&b"k1"[..]))
        );
        let prediction = Prediction::decode(batch.value(p)).unwrap();
        assert_eq!(prediction.model_version, 3);
        assert_eq!(d.reason, Some(Reason::OutOfRange));
        let letter = DeadLetter::decode(batch.value(d)).unwrap();
        assert_eq!(letter.original_value.as_deref(), Some(&bad[..]));
        assert_eq!(batch.next_offsets.get(&0), Some(&12));
        assert_eq!((batch.predictions(), batch.dead_letters.len()), (1, 1));
    }

    #[test]
    fn an_output_over_the_limit_is_a_too_large_dead_letter() {
        let m = model(1, 1.0);
        let rules = Rules::default();
        let router = Router {
            model: &m,
            shadow: None,
            rules: &rules,
            max_output_bytes: 1_000_000,
            framing: OutputFraming::default(),
        };
        let mut batch = Batch::new(1, 0, 1, 2);
        let huge = vec![0xC3u8; 1_040_000];
        router
            .route(source(None, &huge, 0), decoded(&huge), None, 5, &mut batch)
            .unwrap();
        let good = record().encode().unwrap();
        // A cap learned from the broker applies to that record only.
        router
            .route(
                source(Some(&[b'k'; 4096]), &good, 1),
                decoded(&good),
                Some(2048),
                5,
                &mut batch,
            )
            .unwrap();
        assert_eq!(batch.outputs[0].reason, Some(Reason::TooLarge));
        assert!(batch.value(&batch.outputs[0]).len() < 1_000_000);
        let capped = &batch.outputs[1];
        assert_eq!(capped.reason, Some(Reason::TooLarge));
        let size = batch.value(capped).len() + batch.key(capped).map_or(0, <[u8]>::len);
        assert!(size <= 2048, "{size}");
    }
}
