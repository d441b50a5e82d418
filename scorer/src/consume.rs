//! The Kafka pipeline: consume patient records in batches, score them, produce predictions and
//! dead letters, and commit the input offsets — in one transaction (exactly-once) or after every
//! output is acknowledged (at-least-once).
//!
//! It runs on a dedicated thread with librdkafka's blocking API: the transaction calls block
//! anyway, and a plain loop makes the ordering (score → produce → commit) easy to see. Rebalance
//! callbacks only run inside `poll`, which is never called while a transaction is open, so a
//! partition is never revoked with uncommitted output in flight.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use heart_model::Model;
use heart_schemas::{AvroRecord, EncodeError, RiskThresholds, topics};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Delivery};
use crate::dead_letter::{Source, dead_letter};
use crate::metrics::Metrics;
use crate::model_store::ModelStore;
use crate::score::{Scored, now_ms, score_bytes};

const TXN_TIMEOUT: Duration = Duration::from_secs(30);
const RETRY_BACKOFF: Duration = Duration::from_millis(500);
const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Why the pipeline stopped with an error (a clean drain returns `Ok`).
#[derive(Debug, Error)]
pub enum ConsumeError {
    /// Creating or configuring a Kafka client failed.
    #[error("kafka client setup failed")]
    Setup(#[source] KafkaError),
    /// The producer hit a fatal error (e.g. fenced by a newer instance with the same
    /// transactional id); this replica must restart.
    #[error("fatal producer error; this replica must restart")]
    Fatal(#[source] KafkaError),
    /// A record could not be encoded (a bug, not bad input).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Shared flags the HTTP sidecar reads.
#[derive(Debug, Default)]
pub struct ConsumerStatus {
    /// True while the consume loop is subscribed and polling.
    pub running: AtomicBool,
}

/// Consumer callbacks: rebalance bookkeeping and lag metrics from librdkafka statistics.
struct ScorerContext {
    metrics: Metrics,
    topic: String,
    /// Partitions revoked since the loop last looked; their uncommitted records are dropped
    /// from the batch being collected, and the new owner re-reads them from the committed offset.
    revoked: Mutex<Vec<i32>>,
}

impl ClientContext for ScorerContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let queued: u64 = topic.partitions.values().map(|p| p.fetchq_size).sum();
        self.metrics
            .fetch_queue_bytes
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
        for (id, p) in &topic.partitions {
            if *id < 0 || !p.desired {
                continue;
            }
            if let Some(lag) = lag(p) {
                self.metrics
                    .consumer_lag
                    .with_label_values(&[&self.topic, &id.to_string()])
                    .set(lag);
            }
        }
    }
}

/// Records between this replica's position and the end of a partition. librdkafka's own
/// `consumer_lag` is measured from the consumer's committed offset, which it does not learn when
/// offsets are committed through the producer's transaction, so it stays -1 for a new group.
fn lag(p: &rdkafka::statistics::Partition) -> Option<i64> {
    // read_committed: the last stable offset is the end a consumer can reach.
    let end = [p.ls_offset, p.hi_offset].into_iter().find(|&o| o >= 0)?;
    let position = [p.app_offset, p.committed_offset, p.lo_offset]
        .into_iter()
        .find(|&o| o >= 0)?;
    Some((end - position).max(0))
}

impl ConsumerContext for ScorerContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = ?partition_ids(tpl), "partitions assigned");
            }
            Rebalance::Revoke(tpl) => {
                let ids = partition_ids(tpl);
                tracing::info!(partitions = ?ids, "partitions revoked");
                for id in &ids {
                    let _ = self
                        .metrics
                        .consumer_lag
                        .remove_label_values(&[&self.topic, &id.to_string()]);
                }
                self.revoked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(ids);
            }
            Rebalance::Error(error) => tracing::warn!(error = %error, "rebalance error"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        if let Ok(assignment) = consumer.assignment() {
            self.metrics
                .assigned_partitions
                .set(assignment.count() as i64);
        }
    }
}

fn partition_ids(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

/// Producer callbacks: counts the current batch's resolved and failed deliveries. Each output
/// carries its batch number, so late reports of an aborted batch are not counted for the next.
#[derive(Default)]
struct DeliveryTracker {
    batch: AtomicU64,
    resolved: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: usize) {
        if batch as u64 != self.batch.load(Ordering::Acquire) {
            return;
        }
        self.resolved.fetch_add(1, Ordering::AcqRel);
        if let Err((error, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self
                .first_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            first.get_or_insert_with(|| error.to_string());
        }
    }
}

impl DeliveryTracker {
    fn start(&self, batch: u64) {
        self.batch.store(batch, Ordering::Release);
        self.resolved.store(0, Ordering::Release);
        self.failed.store(0, Ordering::Release);
        *self
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    fn resolved(&self) -> u64 {
        self.resolved.load(Ordering::Acquire)
    }

    fn failures(&self) -> (u64, Option<String>) {
        let error = self
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        (self.failed.load(Ordering::Acquire), error)
    }
}

/// What a failed batch means for the loop.
enum BatchError {
    /// Nothing of the batch is committed; rewind and score it again.
    Retry(String),
    /// Stop the pipeline.
    Fatal(ConsumeError),
}

impl From<EncodeError> for BatchError {
    fn from(e: EncodeError) -> Self {
        Self::Fatal(e.into())
    }
}

/// Counts of one committed batch, applied to metrics only once the batch is durable.
#[derive(Default)]
struct Tally {
    predictions: Vec<(heart_schemas::RiskLevel, i64)>,
    dead_letters: Vec<heart_schemas::Reason>,
    unseen: u64,
}

/// The pipeline's clients and settings.
struct Pipeline<'a> {
    config: &'a Config,
    thresholds: RiskThresholds,
    store: &'a ModelStore,
    metrics: &'a Metrics,
    consumer: BaseConsumer<ScorerContext>,
    /// Polled by this thread (not a background one), so `flush` sees its own delivery reports
    /// at once instead of sleeping in 100 ms poll slices while another thread takes them.
    producer: BaseProducer<DeliveryTracker>,
    transactional: bool,
    /// Number of the batch in hand (tags its outputs' delivery reports).
    batch_id: std::cell::Cell<u64>,
    /// Outputs of the batch in hand handed to librdkafka.
    sent: std::cell::Cell<u64>,
}

/// Runs the pipeline until `token` is cancelled, then drains: the batch in hand is finished and
/// committed, and the consumer leaves the group. Blocking: call from a dedicated thread.
///
/// Waits for the model store to hold a model before subscribing, so no record is consumed that
/// cannot be scored.
///
/// # Errors
/// [`ConsumeError`] when a client cannot be created or the producer is fenced or fails fatally.
#[tracing::instrument(name = "consume", skip_all, fields(topic = %config.patients_topic, group = %config.group_id))]
pub fn run(
    config: &Config,
    thresholds: RiskThresholds,
    store: &ModelStore,
    metrics: &Metrics,
    status: &ConsumerStatus,
    token: &CancellationToken,
) -> Result<(), ConsumeError> {
    while store.current().is_none() {
        if token.is_cancelled() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pipeline = Pipeline::new(config, thresholds, store, metrics)?;
    status.running.store(true, Ordering::SeqCst);
    let result = pipeline.run_loop(token);
    status.running.store(false, Ordering::SeqCst);
    // Leave the group now, so the partitions move to another replica at once.
    pipeline.consumer.unsubscribe();
    drop(pipeline);
    if result.is_ok() {
        tracing::info!("drained and left the consumer group");
    }
    result
}

impl<'a> Pipeline<'a> {
    fn new(
        config: &'a Config,
        thresholds: RiskThresholds,
        store: &'a ModelStore,
        metrics: &'a Metrics,
    ) -> Result<Self, ConsumeError> {
        let transactional = config.delivery == Delivery::ExactlyOnce;
        let mut producer_config = config.to_rdkafka();
        producer_config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "100000");
        if transactional {
            producer_config
                .set("transactional.id", config.transactional_id())
                .set(
                    "transaction.timeout.ms",
                    config.transaction_timeout_ms.to_string(),
                );
        }
        let producer: BaseProducer<DeliveryTracker> = producer_config
            .create_with_context(DeliveryTracker::default())
            .map_err(ConsumeError::Setup)?;
        if transactional {
            // Fences any earlier incarnation with the same transactional id and aborts its open
            // transaction, so its partial output is never visible to read_committed readers.
            producer
                .init_transactions(TXN_TIMEOUT)
                .map_err(ConsumeError::Setup)?;
        }

        let context = ScorerContext {
            metrics: metrics.clone(),
            topic: config.patients_topic.clone(),
            revoked: Mutex::new(Vec::new()),
        };
        let consumer: BaseConsumer<ScorerContext> = config
            .to_rdkafka()
            .set("group.id", &config.group_id)
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("session.timeout.ms", config.session_timeout_ms.to_string())
            .set(
                "queued.max.messages.kbytes",
                config.max_queued_kbytes.to_string(),
            )
            .create_with_context(context)
            .map_err(ConsumeError::Setup)?;
        consumer
            .subscribe(&[&config.patients_topic])
            .map_err(ConsumeError::Setup)?;
        tracing::info!(delivery = ?config.delivery, "consumer subscribed");
        Ok(Self {
            config,
            thresholds,
            store,
            metrics,
            consumer,
            producer,
            transactional,
            batch_id: std::cell::Cell::new(0),
            sent: std::cell::Cell::new(0),
        })
    }

    fn run_loop(&self, token: &CancellationToken) -> Result<(), ConsumeError> {
        let mut batch = Vec::with_capacity(self.config.batch_max_records);
        let mut last_summary = Instant::now();
        let mut since_summary = 0u64;
        loop {
            self.collect(&mut batch, token);
            if batch.is_empty() {
                if token.is_cancelled() {
                    return Ok(());
                }
                continue;
            }
            let n = batch.len() as u64;
            match self.process(&batch) {
                Ok(()) => since_summary += n,
                Err(BatchError::Retry(why)) => {
                    tracing::warn!(error = %why, records = n, "batch not committed; rewinding to retry");
                    self.rewind(&batch);
                    std::thread::sleep(RETRY_BACKOFF);
                }
                Err(BatchError::Fatal(error)) => return Err(error),
            }
            batch.clear();
            if last_summary.elapsed() >= SUMMARY_INTERVAL {
                tracing::info!(
                    records = since_summary,
                    records_per_second =
                        since_summary as f64 / last_summary.elapsed().as_secs_f64(),
                    model_version = self.store.current().map(|m| m.version_number()),
                    "scored"
                );
                (last_summary, since_summary) = (Instant::now(), 0);
            }
            if token.is_cancelled() {
                return Ok(());
            }
        }
    }

    /// Fills `batch` up to the size bound, or until the latency bound after its first record.
    fn collect(&self, batch: &mut Vec<OwnedMessage>, token: &CancellationToken) {
        let max = self.config.batch_max_records;
        let wait = Duration::from_millis(self.config.batch_max_wait_ms);
        let mut deadline: Option<Instant> = None;
        while batch.len() < max && !token.is_cancelled() {
            let timeout = deadline.map_or(Duration::from_millis(100), |d| {
                d.saturating_duration_since(Instant::now())
            });
            self.producer.poll(Duration::ZERO);
            match self.consumer.poll(timeout) {
                Some(Ok(msg)) => {
                    batch.push(msg.detach());
                    deadline.get_or_insert_with(|| Instant::now() + wait);
                }
                Some(Err(error)) => {
                    tracing::warn!(error = %error, "consume error");
                }
                None => {}
            }
            self.drop_revoked(batch);
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if batch.is_empty() && deadline.is_some() {
                deadline = None;
            }
        }
    }

    fn drop_revoked(&self, batch: &mut Vec<OwnedMessage>) {
        let revoked: Vec<i32> = std::mem::take(
            &mut *self
                .consumer
                .context()
                .revoked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if !revoked.is_empty() {
            let before = batch.len();
            batch.retain(|m| !revoked.contains(&m.partition()));
            if batch.len() < before {
                tracing::info!(
                    dropped = before - batch.len(),
                    "uncommitted records of revoked partitions left for their new owner"
                );
            }
        }
    }

    fn process(&self, batch: &[OwnedMessage]) -> Result<(), BatchError> {
        let Some(model) = self.store.current() else {
            return Err(BatchError::Retry("no active model".to_owned()));
        };
        let started = Instant::now();
        let now = now_ms();
        let scored: Vec<_> = if self.config.bench_passthrough {
            Vec::new()
        } else {
            batch
                .iter()
                .map(|m| score_bytes(&model, &self.thresholds, m.payload(), now))
                .collect()
        };
        self.metrics
            .score_duration
            .observe(started.elapsed().as_secs_f64());

        self.batch_id.set(self.batch_id.get().wrapping_add(1));
        self.sent.set(0);
        self.producer.context().start(self.batch_id.get());
        if self.transactional {
            self.producer
                .begin_transaction()
                .map_err(|e| self.classify(e))?;
        }
        let produce_started = Instant::now();
        let mut tally = Tally::default();
        if self.config.bench_passthrough {
            for msg in batch {
                let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(
                    &self.config.predictions_topic,
                    0,
                );
                if let Some(v) = msg.payload() {
                    record = record.payload(v);
                }
                if let Some(k) = msg.key() {
                    record = record.key(k);
                }
                self.send(record)?;
            }
        }
        for (msg, outcome) in batch.iter().zip(scored) {
            self.send_output(msg, outcome, &model, now, &mut tally)?;
        }
        tracing::debug!(
            records = batch.len(),
            enqueue_ms = produce_started.elapsed().as_secs_f64() * 1e3,
            "batch enqueued"
        );
        let offsets = next_offsets(batch).map_err(|e| BatchError::Retry(e.to_string()))?;
        if self.transactional {
            self.commit_transaction(&offsets)?;
        } else {
            self.commit_after_acks(&offsets)?;
        }
        self.record(batch.len(), tally);
        Ok(())
    }

    fn send_output(
        &self,
        msg: &OwnedMessage,
        outcome: Result<Scored, crate::score::Rejection>,
        model: &Model,
        now: i64,
        tally: &mut Tally,
    ) -> Result<(), BatchError> {
        match outcome {
            Ok(scored) => {
                let p = &scored.prediction;
                let payload = p.encode()?;
                let version = model.version_number().to_string();
                let headers = OwnedHeaders::new().insert(Header {
                    key: topics::HEADER_MODEL_VERSION,
                    value: Some(version.as_str()),
                });
                let key = msg.key().unwrap_or(p.patient_id.as_bytes());
                let record = BaseRecord::with_opaque_to(&self.config.predictions_topic, 0)
                    .key(key)
                    .payload(&payload)
                    .headers(headers);
                self.send(record)?;
                tally.predictions.push((p.risk_level, now - p.event_time));
                tally.unseen += u64::from(scored.unseen_categories);
            }
            Err(rejection) => {
                tracing::debug!(
                    partition = msg.partition(),
                    offset = msg.offset(),
                    reason = rejection.reason.code(),
                    error = %rejection.message,
                    "record dead-lettered"
                );
                let letter = dead_letter(
                    Source {
                        topic: msg.topic(),
                        partition: msg.partition(),
                        offset: msg.offset(),
                        key: msg.key(),
                        value: msg.payload(),
                    },
                    &rejection,
                    now,
                );
                let payload = letter.encode()?;
                let headers = OwnedHeaders::new().insert(Header {
                    key: topics::HEADER_REASON,
                    value: Some(rejection.reason.code()),
                });
                let mut record = BaseRecord::with_opaque_to(&self.config.dead_letter_topic, 0)
                    .payload(&payload)
                    .headers(headers);
                if let Some(key) = msg.key() {
                    record = record.key(key);
                }
                self.send(record)?;
                tally.dead_letters.push(rejection.reason);
            }
        }
        Ok(())
    }

    /// Enqueues a record, waiting while librdkafka's bounded queue is full (backpressure).
    fn send<P: rdkafka::message::ToBytes + ?Sized>(
        &self,
        record: BaseRecord<'_, [u8], P, usize>,
    ) -> Result<(), BatchError> {
        // The batch number rides along so the delivery report can be matched to this batch.
        let mut record = record.delivery_opaque(self.batch_id.get() as usize);
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent.set(self.sent.get() + 1);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(5));
                }
                Err((error, _)) => return Err(self.classify(error)),
            }
        }
    }

    fn commit_transaction(&self, offsets: &TopicPartitionList) -> Result<(), BatchError> {
        let Some(group) = self.consumer.group_metadata() else {
            return Err(self.abort("consumer has no group metadata".to_owned()));
        };
        let started = Instant::now();
        // Wait for the batch's outputs first: adding the offsets while librdkafka is still
        // registering the output partitions with the coordinator is answered with
        // CONCURRENT_TRANSACTIONS and retried after retry.backoff.ms (100 ms), which capped a
        // replica at ~10 transactions per second. Waiting costs one produce round trip.
        if let Err(why) = self.await_deliveries() {
            return Err(self.abort(why));
        }
        if let Err(e) = self
            .producer
            .send_offsets_to_transaction(offsets, &group, TXN_TIMEOUT)
        {
            return Err(self.on_txn_error(e));
        }
        let offsets_sent = started.elapsed();
        loop {
            match self.producer.commit_transaction(TXN_TIMEOUT) {
                Ok(()) => {
                    tracing::debug!(
                        send_offsets_ms = offsets_sent.as_secs_f64() * 1e3,
                        commit_ms = (started.elapsed() - offsets_sent).as_secs_f64() * 1e3,
                        "transaction committed"
                    );
                    self.metrics
                        .transactions
                        .with_label_values(&["committed"])
                        .inc();
                    return Ok(());
                }
                Err(KafkaError::Transaction(e)) if e.is_retriable() => {
                    tracing::warn!(error = %e, "transaction commit retriable error; retrying");
                }
                Err(e) => return Err(self.on_txn_error(e)),
            }
        }
    }

    fn on_txn_error(&self, error: KafkaError) -> BatchError {
        match self.classify(error) {
            BatchError::Retry(why) => self.abort(why),
            fatal => fatal,
        }
    }

    fn abort(&self, why: String) -> BatchError {
        self.metrics
            .transactions
            .with_label_values(&["aborted"])
            .inc();
        if let Err(e) = self.producer.abort_transaction(TXN_TIMEOUT) {
            return BatchError::Fatal(ConsumeError::Fatal(e));
        }
        BatchError::Retry(why)
    }

    fn classify(&self, error: KafkaError) -> BatchError {
        match &error {
            KafkaError::Transaction(e) if e.is_fatal() => {
                BatchError::Fatal(ConsumeError::Fatal(error))
            }
            _ => BatchError::Retry(error.to_string()),
        }
    }

    /// Polls the producer until every output of the batch in hand is acknowledged or failed.
    /// (`flush` would also do, but it sleeps in 100 ms slices while librdkafka's queue holds
    /// internal requests that never produce a report.)
    fn await_deliveries(&self) -> Result<(), String> {
        let deadline = Instant::now() + TXN_TIMEOUT;
        let tracker = self.producer.context();
        while tracker.resolved() < self.sent.get() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} of {} outputs acknowledged within {} s",
                    tracker.resolved(),
                    self.sent.get(),
                    TXN_TIMEOUT.as_secs()
                ));
            }
            self.producer.poll(Duration::from_millis(1));
        }
        match tracker.failures() {
            (0, _) => Ok(()),
            (failed, error) => Err(format!(
                "{failed} outputs failed: {}",
                error.unwrap_or_default()
            )),
        }
    }

    fn commit_after_acks(&self, offsets: &TopicPartitionList) -> Result<(), BatchError> {
        self.await_deliveries().map_err(BatchError::Retry)?;
        self.consumer
            .commit(offsets, CommitMode::Sync)
            .map_err(|e| BatchError::Retry(format!("offset commit failed: {e}")))
    }

    /// Seeks every partition of a failed batch back to its first record.
    fn rewind(&self, batch: &[OwnedMessage]) {
        let mut first: BTreeMap<i32, i64> = BTreeMap::new();
        for m in batch {
            first.entry(m.partition()).or_insert(m.offset());
        }
        for (partition, offset) in first {
            if let Err(error) = self.consumer.seek(
                &self.config.patients_topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(10),
            ) {
                // Typically the partition was revoked meanwhile: its new owner starts from the
                // committed offset, so nothing is lost.
                tracing::warn!(partition, offset, error = %error, "rewind failed");
            }
        }
    }

    fn record(&self, consumed: usize, tally: Tally) {
        let m = self.metrics;
        m.records_consumed.inc_by(consumed as u64);
        m.batch_size.observe(consumed as f64);
        m.records_produced.inc_by(tally.predictions.len() as u64);
        m.unseen_categories.inc_by(tally.unseen);
        for (level, latency_ms) in tally.predictions {
            m.predictions.with_label_values(&[level.as_str()]).inc();
            m.end_to_end_latency
                .observe(latency_ms.max(0) as f64 / 1000.0);
        }
        for reason in tally.dead_letters {
            m.records_dead_lettered
                .with_label_values(&[reason.code()])
                .inc();
        }
    }
}

/// The offset to commit per partition: one past the last record of the batch.
fn next_offsets(batch: &[OwnedMessage]) -> Result<TopicPartitionList, KafkaError> {
    let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in batch {
        let e = last.entry((m.topic(), m.partition())).or_insert(m.offset());
        *e = (*e).max(m.offset());
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in last {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
    }
    Ok(tpl)
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;

    use super::*;

    fn msg(partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(
            None,
            None,
            "patients".into(),
            Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    #[test]
    fn commits_one_past_the_last_offset_per_partition() {
        let batch = [msg(0, 5), msg(1, 9), msg(0, 6), msg(1, 10), msg(0, 7)];
        let tpl = next_offsets(&batch).unwrap();
        let got: Vec<_> = tpl
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect();
        assert_eq!(got, vec![(0, Offset::Offset(8)), (1, Offset::Offset(11))]);
    }
}
