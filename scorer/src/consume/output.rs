//! Stage 3, output: each batch's records go to the producer; its offsets commit with them —
//! in the batch's transaction (exactly-once) or once every record is acknowledged
//! (at-least-once). A failed batch is retried from the committed offsets; a producer that can
//! no longer be used is recreated.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use heart_schemas::topics;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::ConsumeError;
use super::batch::{Batch, Topic};
use super::fetch::FetchContext;
use super::handoff::Handoff;
use super::txn::{Deliveries, Failure, OutputProducer, Pause, classify, is_record_too_large};
use crate::config::Config;
use crate::drift::Window;
use crate::metrics::Metrics;
use crate::model_store::ModelStore;
use crate::status::{PipelineStatus, Stage};

const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);
const PROBLEM_LOG_INTERVAL: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What the output stage works with.
pub(crate) struct OutputStage<'a> {
    pub config: &'a Config,
    pub consumer: &'a BaseConsumer<FetchContext>,
    pub handoff: &'a Handoff,
    pub metrics: &'a Metrics,
    pub status: &'a PipelineStatus,
    /// Set when shutdown begins: every Kafka call is bounded by it from then on.
    pub drain_deadline: &'a OnceLock<Instant>,
    /// Cancelled by this stage when it gives up, so the fetch stage stops too.
    pub stop: &'a CancellationToken,
    /// The models, for the training profile the drift window compares with.
    pub store: &'a ModelStore,
    /// The committed predictions' inputs (`--drift-window-records`); `None` until the first
    /// batch of a model with a profile, or when off.
    pub drift: RefCell<Option<Window>>,
}

/// Failures in a row, and since when, to tell a blip from a stall.
#[derive(Debug, Default)]
struct Health {
    failing_since: Option<Instant>,
    failures: u32,
    last_error: String,
    last_logged: Option<Instant>,
}

impl OutputStage<'_> {
    /// Runs until the fetch stage has closed the hand-off and every batch in it is done.
    ///
    /// # Errors
    /// [`ConsumeError::Recovery`] when the producer could not be recreated within
    /// `--recovery-attempts`.
    ///
    /// `producers` take turns, one commit group each ([`Config::output_producers`]); the
    /// groups still commit one at a time and in order.
    pub fn run(&self, mut producers: Vec<OutputProducer>) -> Result<(), ConsumeError> {
        let result = self.run_loop(&mut producers);
        if result.is_err() {
            self.stop.cancel();
        }
        result
    }

    fn run_loop(&self, producers: &mut [OutputProducer]) -> Result<(), ConsumeError> {
        let mut min_epoch = 0;
        let mut health = Health::default();
        let (mut summary_at, mut since_summary) = (Instant::now(), 0u64);
        let mut turn = 0;
        loop {
            let Some(batch) = self.handoff.pop(Duration::from_millis(100)) else {
                self.check_stall(&mut health);
                if self.handoff.is_closed() {
                    return Ok(());
                }
                producers.iter().for_each(OutputProducer::serve);
                continue;
            };
            if batch.epoch < min_epoch {
                self.handoff.finish(batch.id, None);
                continue;
            }
            let mut group = Vec::new();
            let producer = &mut producers[turn];
            let outcome = self.deliver(producer, batch, min_epoch, &mut group);
            let records: usize = group.iter().map(Batch::len).sum();
            match outcome {
                Ok(()) => {
                    for b in &group {
                        self.handoff.finish(b.id, Some(&b.next_offsets));
                        self.record(b);
                    }
                    self.handoff.prune_caps();
                    if producer.transactional() {
                        self.metrics
                            .transactions
                            .with_label_values(&["committed"])
                            .inc();
                    }
                    since_summary += records as u64;
                    // The next group goes to a producer whose last transaction ended a whole
                    // commit ago, so its markers are most likely written by now.
                    turn = (turn + 1) % producers.len();
                    if health.failing_since.take().is_some() {
                        self.status.set_problem(Stage::Output, None);
                        tracing::info!(failures = health.failures, "pipeline recovered");
                    }
                    health = Health::default();
                }
                Err(failure) => {
                    let epoch = group.iter().map(|b| b.epoch).max().unwrap_or(min_epoch);
                    for b in &group {
                        self.handoff.finish(b.id, None);
                    }
                    min_epoch = epoch + 1;
                    self.handoff.request_rewind(epoch);
                    if producer.transactional() {
                        self.metrics
                            .transactions
                            .with_label_values(&["aborted"])
                            .inc();
                    }
                    let kind = match failure {
                        Failure::Retry(_) => "retry",
                        Failure::Reset(_) => "reset",
                    };
                    self.metrics.batch_failures.with_label_values(&[kind]).inc();
                    self.on_failure(&mut health, &failure, records);
                    if self.draining() {
                        tracing::warn!(
                            records,
                            error = failure.why(),
                            "batch not committed while draining; its records are left for the partitions' next owner"
                        );
                        continue;
                    }
                    if let Failure::Reset(why) = &failure {
                        *producer = self.reset(producer, why)?;
                    }
                    self.backoff(health.failures);
                }
            }
            if summary_at.elapsed() >= SUMMARY_INTERVAL {
                tracing::info!(
                    records = since_summary,
                    records_per_second = since_summary as f64 / summary_at.elapsed().as_secs_f64(),
                    model_version = group.last().map(|b| b.model_version),
                    "scored"
                );
                (summary_at, since_summary) = (Instant::now(), 0);
            }
        }
    }

    /// Writes `first`, and every further batch already waiting (up to `--commit-max-records`),
    /// then commits their offsets with them: one transaction, or one offset commit, for the
    /// group. Batches fetched while the group's records are acknowledged join the next group,
    /// so under load one commit's round trips are shared by many records, while at a trickle a
    /// batch of one record commits at once. `group` receives the batches written.
    fn deliver(
        &self,
        producer: &OutputProducer,
        first: Batch,
        min_epoch: u64,
        group: &mut Vec<Batch>,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let timeout = self.call_timeout();
        let group_id = first.id;
        // In the group before anything can fail: the caller finishes every batch in it.
        group.push(first);
        let txn = producer
            .begin(group_id, timeout)
            .map_err(|e| match classify(&e) {
                // A transaction cannot begin: the producer is in a state only a new one leaves.
                Failure::Retry(why) if producer.transactional() => Failure::Reset(why),
                other => other,
            })?;
        let deadline = Instant::now() + timeout;
        let mut sent = 0;
        let mut next = 0;
        while let Some(batch) = group.get(next) {
            self.send(producer, batch, group_id, sent, deadline)?;
            sent += batch.len();
            next += 1;
            if sent >= self.config.commit_max_records {
                break;
            }
            while let Some(b) = self.handoff.pop(Duration::ZERO) {
                if b.epoch >= min_epoch {
                    group.push(b);
                    break;
                }
                self.handoff.finish(b.id, None);
            }
        }
        let enqueued = Instant::now();
        txn.await_deliveries(deadline.saturating_duration_since(Instant::now()))
            .map_err(|(failure, too_large)| {
                for i in too_large {
                    if let Some((b, o)) = locate(group, i as usize) {
                        let size = b.value(o).len() + b.key(o).map_or(0, <[u8]>::len);
                        self.handoff.add_cap(o.partition, o.offset, size / 2);
                    }
                }
                failure
            })?;
        let acked = Instant::now();
        let offsets = offsets(&self.config.patients_topic, group)?;
        if producer.transactional() {
            let metadata = self
                .consumer
                .group_metadata()
                .ok_or_else(|| Failure::Retry("the consumer has no group metadata yet".into()))?;
            txn.send_offsets(&offsets, &metadata)
                .map_err(|e| classify(&e))?;
            txn.commit().map_err(|e| classify(&e))?;
        } else {
            drop(txn);
            self.consumer
                .commit(&offsets, CommitMode::Sync)
                .map_err(|e| {
                    Failure::Retry(format!(
                        "offset commit failed: {}",
                        heart_kafka::telemetry::chain(&e)
                    ))
                })?;
        }
        tracing::debug!(
            batches = group.len(),
            records = sent,
            enqueue_ms = (enqueued - started).as_secs_f64() * 1e3,
            ack_ms = (acked - enqueued).as_secs_f64() * 1e3,
            commit_ms = acked.elapsed().as_secs_f64() * 1e3,
            "committed"
        );
        Ok(())
    }

    /// Hands one batch's records to the producer. `first_index` is the index of its first
    /// record within the group (delivery opaques carry group and index).
    fn send(
        &self,
        producer: &OutputProducer,
        batch: &Batch,
        group_id: u64,
        first_index: usize,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let version = batch.model_version.to_string();
        let shadow_version = batch
            .shadow_version
            .map(|v| v.to_string())
            .unwrap_or_default();
        for (i, output) in batch.outputs.iter().enumerate() {
            let (topic, header) = match output.topic {
                Topic::Predictions => (
                    self.config.predictions_topic.as_str(),
                    Header {
                        key: topics::HEADER_MODEL_VERSION,
                        value: Some(version.as_str()),
                    },
                ),
                Topic::DeadLetters => (
                    self.config.dead_letter_topic.as_str(),
                    Header {
                        key: topics::HEADER_REASON,
                        value: Some(output.reason.map_or("", |r| r.code())),
                    },
                ),
                Topic::Shadow => (
                    self.config.shadow_topic.as_str(),
                    Header {
                        key: topics::HEADER_MODEL_VERSION,
                        value: Some(shadow_version.as_str()),
                    },
                ),
            };
            let value = batch.value(output);
            let opaque = Deliveries::opaque(group_id, first_index + i);
            let mut headers = OwnedHeaders::new_with_capacity(2).insert(header);
            let trace = output.trace.map(|t| t.to_string());
            if let Some(trace) = &trace {
                headers = headers.insert(Header {
                    key: heart_schemas::trace::HEADER,
                    value: Some(trace.as_str()),
                });
            }
            let mut record = BaseRecord::with_opaque_to(topic, opaque)
                .payload(value)
                .headers(headers);
            if let Some(key) = batch.key(output) {
                record = record.key(key);
            }
            let mut pause = Pause::new();
            loop {
                match producer.inner.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        if Instant::now() >= deadline {
                            return Err(Failure::Retry("the producer queue stayed full".into()));
                        }
                        record = back;
                        pause.wait(&producer.inner);
                    }
                    Err((error, _))
                        if error.rdkafka_error_code().is_some_and(is_record_too_large) =>
                    {
                        let size = value.len() + batch.key(output).map_or(0, <[u8]>::len);
                        self.handoff
                            .add_cap(output.partition, output.offset, size / 2);
                        return Err(Failure::Retry(format!(
                            "output of {size} bytes for partition {} offset {} refused as too large; it will be cut",
                            output.partition, output.offset
                        )));
                    }
                    Err((error, _)) => return Err(classify(&error)),
                }
            }
        }
        Ok(())
    }

    /// Recreates the producer, with backoff, up to `--recovery-attempts` times.
    fn reset(&self, old: &OutputProducer, why: &str) -> Result<OutputProducer, ConsumeError> {
        tracing::warn!(error = why, "producer unusable; recreating it");
        let attempts = self.config.recovery_attempts;
        let mut last = None;
        for attempt in 1..=attempts {
            match old.recreate(self.call_timeout()) {
                Ok(p) => {
                    self.metrics.producer_resets.inc();
                    tracing::info!(attempt, "producer recreated");
                    return Ok(p);
                }
                Err(error) => {
                    tracing::warn!(attempt, attempts, error = %heart_kafka::telemetry::chain(&error), "producer recreation failed");
                    last = Some(error);
                    if self.draining() {
                        break;
                    }
                    self.backoff(attempt);
                }
            }
        }
        Err(ConsumeError::Recovery {
            attempts,
            source: last.unwrap_or(KafkaError::Canceled),
        })
    }

    fn on_failure(&self, health: &mut Health, failure: &Failure, records: usize) {
        health.failing_since.get_or_insert_with(Instant::now);
        health.failures += 1;
        health.last_error = failure.why().to_owned();
        tracing::warn!(
            records,
            error = failure.why(),
            "batch not committed; rewinding to retry"
        );
        self.check_stall(health);
    }

    /// Turns readiness off, and logs at error (once per interval), while no batch has committed
    /// for `--stall-timeout-ms` since the first failure — whether or not batches keep coming.
    fn check_stall(&self, health: &mut Health) {
        let Some(since) = health.failing_since else {
            return;
        };
        let now = Instant::now();
        if now - since < Duration::from_millis(self.config.stall_timeout_ms) {
            return;
        }
        self.status.set_problem(
            Stage::Output,
            Some(format!(
                "no batch committed for {} s ({} failures); last error: {}",
                (now - since).as_secs(),
                health.failures,
                health.last_error
            )),
        );
        if health
            .last_logged
            .is_none_or(|t| now - t >= PROBLEM_LOG_INTERVAL)
        {
            tracing::error!(
                failures = health.failures,
                error = %health.last_error,
                "pipeline stalled: not ready until a batch commits"
            );
            health.last_logged = Some(now);
        }
    }

    fn backoff(&self, failures: u32) {
        let exp = BACKOFF_MIN.saturating_mul(1 << failures.min(8).saturating_sub(1));
        let wait = exp.min(BACKOFF_MAX);
        let until = Instant::now() + wait;
        while Instant::now() < until && !self.draining() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn draining(&self) -> bool {
        self.drain_deadline.get().is_some()
    }

    /// The bound of one Kafka call: the transaction timeout, or what is left of the drain.
    fn call_timeout(&self) -> Duration {
        let normal = Duration::from_millis(self.config.transaction_timeout_ms);
        match self.drain_deadline.get() {
            Some(d) => normal
                .min(d.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(1)),
            None => normal,
        }
    }

    /// Applies a committed batch to the metrics.
    fn record(&self, batch: &Batch) {
        let m = self.metrics;
        m.records_consumed.inc_by(batch.inputs() as u64);
        m.batch_size.observe(batch.inputs() as f64);
        m.score_duration.observe(batch.score_seconds);
        m.records_produced.inc_by(batch.predictions());
        m.unseen_categories.inc_by(batch.unseen_categories);
        m.count_imputed(&batch.imputed);
        m.count_explanations(&batch.explanations);
        for (level, n) in heart_schemas::RiskLevel::ALL.iter().zip(batch.levels) {
            if n > 0 {
                m.predictions.with_label_values(&[level.as_str()]).inc_by(n);
            }
        }
        let now = heart_schemas::now_ms();
        for t in &batch.event_times {
            m.end_to_end_latency
                .observe((now - t).max(0) as f64 / 1000.0);
        }
        for reason in &batch.dead_letters {
            m.records_dead_lettered
                .with_label_values(&[reason.code()])
                .inc();
        }
        self.watch_drift(batch);
        let shadow = &batch.shadow;
        if shadow.outputs > 0 {
            m.shadow_predictions.inc_by(shadow.outputs as u64);
            m.shadow_label_agreements.inc_by(shadow.label_agreements);
            m.shadow_risk_level_agreements
                .inc_by(shadow.risk_level_agreements);
            for d in &shadow.differences {
                m.shadow_abs_probability_difference.inc_by(d.abs());
                m.shadow_probability_difference.observe(*d);
            }
        }
    }

    /// Adds a committed batch's inputs to the drift window and exports its numbers. A new model
    /// version starts a new window against its own profile; batches of an older one are left
    /// out.
    fn watch_drift(&self, batch: &Batch) {
        let capacity = self.config.drift_window_records;
        if capacity == 0 || batch.drift.is_empty() {
            return;
        }
        let mut slot = self.drift.borrow_mut();
        if slot
            .as_ref()
            .is_none_or(|w| w.model_version() != batch.model_version)
        {
            let Some(model) = self
                .store
                .current()
                .filter(|m| m.version_number() == batch.model_version)
            else {
                return;
            };
            let Some(profile) = model.artifact.profile.as_ref() else {
                return;
            };
            *slot = Some(Window::new(batch.model_version, profile, capacity));
        }
        if let Some(window) = slot.as_mut() {
            for row in &batch.drift {
                window.push(*row);
            }
            self.metrics.set_drift(&window.drift());
        }
    }
}

/// The offsets a group of batches commits: one past its last record, per partition.
fn offsets(topic: &str, group: &[Batch]) -> Result<TopicPartitionList, Failure> {
    let mut next: std::collections::BTreeMap<i32, i64> = std::collections::BTreeMap::new();
    for b in group {
        for (&p, &o) in &b.next_offsets {
            let e = next.entry(p).or_insert(o);
            *e = (*e).max(o);
        }
    }
    let mut tpl = TopicPartitionList::with_capacity(next.len());
    for (&partition, &next) in &next {
        tpl.add_partition_offset(topic, partition, Offset::Offset(next))
            .map_err(|e| Failure::Retry(e.to_string()))?;
    }
    Ok(tpl)
}

/// The output at `index` within a group, and its batch.
fn locate(group: &[Batch], mut index: usize) -> Option<(&Batch, &super::batch::Output)> {
    for b in group {
        if index < b.len() {
            return b.outputs.get(index).map(|o| (b, o));
        }
        index -= b.len();
    }
    None
}
