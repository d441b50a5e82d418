//! The output producer: its lifecycle (create, init, recreate after a fatal error), delivery
//! tracking per batch, and the transaction guard.
//!
//! [`Txn`] makes "left inside an open transaction" unrepresentable: the only ways out are
//! [`Txn::commit`], which consumes it, or dropping it, which aborts. librdkafka's
//! `examples/transactions.c` shows the recovery this enables: abort, rewind the consumer to the
//! committed offsets, go on; and on a fatal error, a new producer (as Kafka Streams'
//! `StreamsProducer.resetProducer` does under exactly-once v2).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use heart_kafka::ConnectionWatch;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext, PurgeConfig};
use rdkafka::{Message, TopicPartitionList};

/// How a failed Kafka call affects the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Nothing of the batch is committed: rewind and try again (transport, timeouts,
    /// abortable transaction errors, a record the broker refused).
    Retry(String),
    /// The producer cannot be used any more (fenced, epoch errors, invalid state, an abort
    /// that failed): recreate it, then rewind.
    Reset(String),
}

impl Failure {
    pub fn why(&self) -> &str {
        match self {
            Self::Retry(w) | Self::Reset(w) => w,
        }
    }
}

/// Sorts a Kafka error into [`Failure`].
pub(crate) fn classify(error: &KafkaError) -> Failure {
    let text = heart_kafka::telemetry::chain(error);
    let fatal = match error {
        KafkaError::Transaction(e) => {
            e.is_fatal()
                || (!e.txn_requires_abort() && !e.is_retriable() && is_fatal_code(e.code()))
        }
        other => other.rdkafka_error_code().is_some_and(is_fatal_code),
    };
    if fatal {
        Failure::Reset(text)
    } else {
        Failure::Retry(text)
    }
}

fn is_fatal_code(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fatal
            | RDKafkaErrorCode::State
            | RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::InvalidProducerIdMapping
            | RDKafkaErrorCode::InvalidTransactionalState
            | RDKafkaErrorCode::OutOfOrderSequenceNumber
            | RDKafkaErrorCode::UnknownProducerId
            | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
    )
}

/// Whether a delivery error is about that one record (routed as `too_large`), not the batch.
pub(crate) fn is_record_too_large(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
    )
}

/// Collects the failed deliveries of the batch in hand (the producer reports only failures:
/// `delivery.report.only.error`, which saves a callback per record). Each record's opaque is
/// its batch id (high 32 bits) and its index in the batch, so late reports of an earlier,
/// aborted batch are ignored.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    batch: AtomicU64,
    failed: Mutex<Failed>,
    /// Where refusals (credentials, certificate) are reported.
    watch: ConnectionWatch,
}

#[derive(Debug, Default)]
struct Failed {
    count: u64,
    first_error: Option<String>,
    /// Indices of records the broker refused as too large.
    too_large: Vec<u32>,
}

impl Deliveries {
    pub fn opaque(batch: u64, index: usize) -> usize {
        (((batch & 0xFFFF_FFFF) << 32) | (index as u64 & 0xFFFF_FFFF)) as usize
    }

    fn start(&self, batch: u64) {
        self.batch.store(batch & 0xFFFF_FFFF, Ordering::Release);
        *self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Failed::default();
    }

    /// (failures, first error, indices refused as too large)
    fn failures(&self) -> (u64, Option<String>, Vec<u32>) {
        let f = self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (f.count, f.first_error.clone(), f.too_large.clone())
    }
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.watch.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.error(&error, reason);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let opaque = opaque as u64;
        if opaque >> 32 != self.batch.load(Ordering::Acquire) {
            return;
        }
        if let Err((error, message)) = result {
            let mut f = self
                .failed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f.count += 1;
            if error.rdkafka_error_code().is_some_and(is_record_too_large) {
                f.too_large.push((opaque & 0xFFFF_FFFF) as u32);
            }
            f.first_error.get_or_insert_with(|| {
                format!(
                    "delivery to {} failed: {}",
                    message.topic(),
                    heart_kafka::telemetry::chain(error)
                )
            });
        }
    }
}

/// The output producer and how to make another one like it.
pub(crate) struct OutputProducer {
    config: ClientConfig,
    transactional: bool,
    pub inner: BaseProducer<Deliveries>,
}

impl std::fmt::Debug for OutputProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputProducer")
            .field("transactional", &self.transactional)
            .finish_non_exhaustive()
    }
}

impl OutputProducer {
    /// Creates the producer, reporting refusals to `watch`; [`OutputProducer::init`] readies it.
    pub fn create(
        config: ClientConfig,
        transactional: bool,
        watch: ConnectionWatch,
    ) -> Result<Self, KafkaError> {
        let inner: BaseProducer<Deliveries> = config.create_with_context(Deliveries {
            watch,
            ..Deliveries::default()
        })?;
        Ok(Self {
            config,
            transactional,
            inner,
        })
    }

    /// A transactional producer registers its transactional id, which fences an earlier
    /// incarnation and aborts its open transaction; an idempotent one has nothing to do.
    pub fn init(&self, timeout: Duration) -> Result<(), KafkaError> {
        if self.transactional {
            self.inner.init_transactions(timeout)?;
        }
        Ok(())
    }

    /// A fresh, initialised producer with the same settings (and transactional id).
    pub fn recreate(&self, timeout: Duration) -> Result<Self, KafkaError> {
        let watch = self.inner.context().watch.clone();
        let fresh = Self::create(self.config.clone(), self.transactional, watch)?;
        fresh.init(timeout)?;
        Ok(fresh)
    }

    pub fn transactional(&self) -> bool {
        self.transactional
    }

    /// Starts tracking the deliveries of batch `id`; for a transactional producer, opens its
    /// transaction.
    pub fn begin(&self, id: u64, timeout: Duration) -> Result<Txn<'_>, KafkaError> {
        self.inner.context().start(id);
        if self.transactional {
            self.inner.begin_transaction()?;
        }
        Ok(Txn {
            producer: self,
            open: self.transactional,
            timeout,
        })
    }

    /// Serves the delivery reports that are ready, without waiting.
    pub fn serve(&self) {
        self.inner.poll(Duration::ZERO);
    }
}

/// Waits between checks of the producer's outstanding messages.
///
/// rust-rdkafka's `BaseProducer::poll(t)` always takes all of `t` and spins through its last
/// millisecond (librdkafka's timeout is whole milliseconds; the remainder rounds to 0): waiting
/// for acknowledgements with `poll(1 ms)` kept a core busy, 0.76 of one at 1,000 records/s,
/// which the broker on the same cores paid for in latency. Successful deliveries raise no
/// event (`delivery.report.only.error`), so there is nothing to block on either; reports
/// ready are served without waiting, and the thread sleeps between checks: 50 µs, doubling up
/// to 1 ms, under a loopback produce round trip.
#[derive(Debug)]
pub(crate) struct Pause(Duration);

impl Pause {
    const FIRST: Duration = Duration::from_micros(50);
    const MAX: Duration = Duration::from_millis(1);

    pub fn new() -> Self {
        Self(Self::FIRST)
    }

    /// Serves `producer`'s ready reports, then sleeps the next step.
    pub fn wait(&mut self, producer: &BaseProducer<Deliveries>) {
        producer.poll(Duration::ZERO);
        std::thread::sleep(self.0);
        self.0 = (self.0 * 2).min(Self::MAX);
    }
}

/// One batch's transaction (or, non-transactional, its delivery tracking). Dropping it without
/// [`Txn::commit`] aborts the transaction.
pub(crate) struct Txn<'p> {
    producer: &'p OutputProducer,
    open: bool,
    timeout: Duration,
}

impl Txn<'_> {
    /// Polls until every output handed to the producer is acknowledged or failed, or
    /// `timeout` passes. On failure, also the indices of outputs the broker refused as too
    /// large. (`flush` would do the same but waits in 100 ms slices.)
    pub fn await_deliveries(&self, timeout: Duration) -> Result<(), (Failure, Vec<u32>)> {
        let deadline = Instant::now() + timeout;
        let tracker = self.producer.inner.context();
        let mut pause = Pause::new();
        loop {
            let pending = self.producer.inner.in_flight_count();
            if pending <= 0 {
                break;
            }
            if Instant::now() >= deadline {
                return Err((
                    Failure::Retry(format!(
                        "{pending} outputs not acknowledged within {} ms",
                        timeout.as_millis()
                    )),
                    Vec::new(),
                ));
            }
            pause.wait(&self.producer.inner);
        }
        match tracker.failures() {
            (0, _, _) => Ok(()),
            (n, error, too_large) => Err((
                Failure::Retry(format!("{n} outputs failed: {}", error.unwrap_or_default())),
                too_large,
            )),
        }
    }

    /// Adds the consumed offsets to the transaction.
    pub fn send_offsets(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), KafkaError> {
        self.producer
            .inner
            .send_offsets_to_transaction(offsets, group, self.timeout)
    }

    /// Commits. On error the transaction is aborted (by drop) unless the producer is unusable.
    pub fn commit(mut self) -> Result<(), KafkaError> {
        if !self.open {
            return Ok(());
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.producer.inner.commit_transaction(self.timeout) {
                Ok(()) => {
                    self.open = false;
                    return Ok(());
                }
                // A timed-out commit may be resumed by calling it again.
                Err(KafkaError::Transaction(e))
                    if e.is_retriable() && Instant::now() < deadline =>
                {
                    tracing::warn!(error = %e, "transaction commit retriable error; retrying");
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        // An abort waits until every outstanding message is purged and its (failure) report
        // served; this thread is the one that polls, so purge and serve them first, or the
        // abort times out while the broker is away.
        let inner = &self.producer.inner;
        inner.purge(PurgeConfig::default().queue().inflight());
        let until = Instant::now() + self.timeout;
        let mut pause = Pause::new();
        while inner.in_flight_count() > 0 && Instant::now() < until {
            pause.wait(inner);
        }
        if let Err(error) = inner.abort_transaction(self.timeout) {
            // The next begin_transaction fails with an invalid-state error, which resets the
            // producer: it cannot stay inside this transaction.
            tracing::warn!(error = %heart_kafka::telemetry::chain(&error), "transaction abort failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaques_carry_batch_and_index() {
        let o = Deliveries::opaque(7, 12) as u64;
        assert_eq!((o >> 32, o & 0xFFFF_FFFF), (7, 12));
        let wrapped = Deliveries::opaque(u64::from(u32::MAX) + 3, 1) as u64;
        assert_eq!(wrapped >> 32, 2);
    }

    #[test]
    fn fencing_and_state_errors_reset_the_producer_and_transport_errors_retry() {
        let fenced = KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced);
        assert!(matches!(classify(&fenced), Failure::Reset(_)));
        let state = KafkaError::MessageProduction(RDKafkaErrorCode::State);
        assert!(matches!(classify(&state), Failure::Reset(_)));
        let down = KafkaError::MessageProduction(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(matches!(classify(&down), Failure::Retry(_)));
        assert!(is_record_too_large(RDKafkaErrorCode::MessageSizeTooLarge));
        assert!(!is_record_too_large(RDKafkaErrorCode::RequestTimedOut));
    }
}
