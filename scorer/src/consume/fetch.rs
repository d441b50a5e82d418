//! Stage 1, fetch: poll the patients topic, route each record into the open batch, hand full
//! (or old enough) batches to the output stage. Also the consumer's callbacks: a revoke first
//! finishes the work in flight for the partitions leaving, so their new owner starts exactly at
//! the committed offsets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use heart_model::Model;
use heart_schemas::RiskThresholds;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::ConsumeError;
use super::batch::Batch;
use super::handoff::Handoff;
use super::route::Router;
use crate::dead_letter::Source;
use crate::metrics::Metrics;
use crate::model_store::ModelStore;

/// The consumer's callbacks and the batch being filled (the revoke callback hands it over).
pub(crate) struct FetchContext {
    pub metrics: Metrics,
    pub topic: String,
    pub handoff: std::sync::Arc<Handoff>,
    /// The open batch. Only the fetch thread touches it: in its loop, and in the rebalance
    /// callbacks, which librdkafka runs inside that thread's `poll`.
    pub open: Mutex<Option<Batch>>,
    /// How long a revoke waits for in-flight batches to finish.
    pub revoke_wait: Duration,
}

impl FetchContext {
    fn take_open(&self) -> Option<Batch> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

impl ClientContext for FetchContext {
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
/// `consumer_lag` is measured from the committed offset, which it does not learn when offsets
/// are committed through the producer's transaction.
fn lag(p: &rdkafka::statistics::Partition) -> Option<i64> {
    // read_committed: the last stable offset is the end a consumer can reach.
    let end = [p.ls_offset, p.hi_offset].into_iter().find(|&o| o >= 0)?;
    let position = [p.app_offset, p.committed_offset, p.lo_offset]
        .into_iter()
        .find(|&o| o >= 0)?;
    Some((end - position).max(0))
}

impl ConsumerContext for FetchContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let ids = partition_ids(tpl);
                tracing::info!(partitions = ?ids, "partitions assigned");
                self.handoff.forget(&ids);
            }
            Rebalance::Revoke(tpl) => {
                let ids = partition_ids(tpl);
                tracing::info!(partitions = ?ids, "partitions revoked; finishing their batches");
                if let Some(batch) = self.take_open().filter(|b| !b.is_empty())
                    && let Err(records) = self.handoff.push(batch, &|| false)
                {
                    tracing::debug!(records, "open batch dropped: a rewind is pending");
                }
                if !self.handoff.drained(self.revoke_wait) {
                    tracing::warn!(
                        wait_ms = self.revoke_wait.as_millis() as u64,
                        "in-flight batches not finished before the revoke; the new owner re-reads them from the committed offsets"
                    );
                }
                self.handoff.forget(&ids);
                for id in &ids {
                    let _ = self
                        .metrics
                        .consumer_lag
                        .remove_label_values(&[&self.topic, &id.to_string()]);
                }
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

/// What the fetch stage works with.
pub(crate) struct FetchStage<'a> {
    pub consumer: &'a BaseConsumer<FetchContext>,
    pub store: &'a ModelStore,
    pub thresholds: RiskThresholds,
    pub max_output_bytes: usize,
    pub batch_max_records: usize,
    pub batch_linger: Duration,
    pub drain_timeout: Duration,
    pub drain_deadline: &'a OnceLock<Instant>,
    /// Shutdown (SIGTERM) or the output stage giving up.
    pub stop: &'a CancellationToken,
}

static BATCH_IDS: AtomicU64 = AtomicU64::new(1);

/// How long the fetch stage waits for room in the hand-off before it pauses fetching.
const PAUSE_AFTER: Duration = Duration::from_millis(200);

impl FetchStage<'_> {
    /// Pauses (or resumes) fetching of every assigned partition; returns the new state.
    fn set_paused(&self, pause: bool) -> bool {
        let result = self.consumer.assignment().and_then(|tpl| {
            if pause {
                self.consumer.pause(&tpl)
            } else {
                self.consumer.resume(&tpl)
            }
        });
        match result {
            Ok(()) => {
                tracing::debug!(
                    paused = pause,
                    "fetching paused while the output stage is behind"
                );
                self.consumer
                    .context()
                    .metrics
                    .fetch_paused
                    .set(i64::from(pause));
                pause
            }
            Err(error) => {
                tracing::warn!(error = %error, pause, "cannot pause or resume fetching");
                !pause
            }
        }
    }

    /// Polls and routes until stopped, then hands over the open batch (drain).
    ///
    /// # Errors
    /// [`ConsumeError::Encode`] if an output cannot be encoded (a bug, not bad input).
    pub fn run(&self) -> Result<(), ConsumeError> {
        let ctx = self.consumer.context();
        let handoff = &*ctx.handoff;
        let topic = ctx.topic.as_str();
        let mut epoch = 0;
        let mut model: Option<std::sync::Arc<Model>> = None;
        let mut opened_at = Instant::now();
        let mut errors = heart_kafka::Throttle::new(Duration::from_secs(10));
        let mut now_ms = heart_schemas::now_ms();
        let mut paused = false;
        while !self.stop.is_cancelled() {
            if let Some(rewind) = handoff.take_rewind() {
                ctx.take_open();
                epoch += 1;
                for (partition, offset) in &rewind.targets {
                    if let Err(error) = self.consumer.seek(
                        topic,
                        *partition,
                        Offset::Offset(*offset),
                        Duration::from_secs(5),
                    ) {
                        // Typically revoked meanwhile: the new owner starts from the commit.
                        tracing::warn!(partition, offset, error = %error, "rewind seek failed");
                    }
                }
                tracing::info!(
                    partitions = rewind.targets.len(),
                    epoch,
                    "rewound to the committed offsets"
                );
            }
            let open = ctx
                .open
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_some();
            // With a batch open, come back soon to see whether the output stage went idle.
            let timeout = if paused {
                Duration::from_millis(10)
            } else if open {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(100)
            };
            let mut full = false;
            if paused {
                full = true;
            }
            match self.consumer.poll(timeout) {
                None => {}
                Some(Err(error)) => {
                    if let Some(suppressed) = errors.allow() {
                        tracing::warn!(error = %error, suppressed, "consume error");
                    }
                }
                Some(Ok(message)) => {
                    let mut guard = ctx
                        .open
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if guard.is_none() {
                        let Some(current) = self.store.current() else {
                            // The store never empties once a model is active.
                            continue;
                        };
                        opened_at = Instant::now();
                        let id = BATCH_IDS.fetch_add(1, Ordering::Relaxed);
                        *guard = Some(Batch::new(
                            id,
                            epoch,
                            current.version_number(),
                            self.batch_max_records,
                        ));
                        model = Some(current);
                    }
                    let (Some(batch), Some(model)) = (guard.as_mut(), model.as_deref()) else {
                        continue;
                    };
                    let (partition, offset) = (message.partition(), message.offset());
                    let cap = handoff.on_record(partition, offset);
                    let router = Router {
                        model,
                        thresholds: &self.thresholds,
                        max_output_bytes: self.max_output_bytes,
                    };
                    let source = Source {
                        topic,
                        partition,
                        offset,
                        key: message.key(),
                        value: message.payload(),
                    };
                    // `scored_at` to the millisecond, without a clock read per record.
                    if batch.len() % 64 == 0 {
                        now_ms = heart_schemas::now_ms();
                    }
                    router.route(source, cap, now_ms, batch)?;
                    full = batch.len() >= self.batch_max_records;
                }
            }
            // Full, or the output stage is waiting for work: under load it is busy, so batches
            // grow while the previous one commits.
            let due = full || (open && opened_at.elapsed() >= self.batch_linger && handoff.idle());
            // Waiting for room is normal at full speed (the output stage is the slower one);
            // only a longer stall pauses fetching, so that polling can go on serving statistics
            // and rebalance callbacks while the open batch stays where a revoke finds it.
            if due && (paused && handoff.has_room() || !paused && handoff.wait_room(PAUSE_AFTER)) {
                if let Some(batch) = ctx.take_open() {
                    let records = batch.len();
                    let filled_ms = opened_at.elapsed().as_secs_f64() * 1e3;
                    let _ = handoff.push(batch, &|| self.stop.is_cancelled());
                    tracing::debug!(records, filled_ms, "batch handed over");
                }
            } else if due && !paused {
                paused = self.set_paused(true);
            }
            if paused && handoff.has_room() {
                paused = self.set_paused(false);
            }
        }
        // Drain: the open batch is finished too, within the drain bound.
        let deadline = *self
            .drain_deadline
            .get_or_init(|| Instant::now() + self.drain_timeout);
        if let Some(batch) = ctx.take_open().filter(|b| !b.is_empty()) {
            let _ = handoff.push(batch, &|| Instant::now() >= deadline);
        }
        Ok(())
    }
}
