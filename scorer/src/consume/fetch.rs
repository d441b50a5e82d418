//! Stage 1, fetch: poll the patients topic, route each record into the open batch, hand full
//! (or old enough) batches to the output stage. Also the consumer's callbacks: a revoke first
//! finishes the work in flight for the partitions leaving, so their new owner starts exactly at
//! the committed offsets.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::score::Rules;
use heart_kafka::ConnectionWatch;
use heart_model::Model;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::ConsumeError;
use super::batch::Batch;
use super::handoff::Handoff;
use super::route::{OutputFraming, Router};
use crate::dead_letter::Source;
use crate::metrics::Metrics;
use crate::model_store::ModelStore;
use crate::status::{PipelineStatus, Stage};
use crate::writer_schemas::{Decoded, PatientDecoder};

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
    /// Partitions held at a record whose writer schema the registry cannot be asked about.
    pub held: Mutex<BTreeMap<i32, Hold>>,
    /// Where refusals (credentials, certificate) are reported.
    pub watch: ConnectionWatch,
    /// The fetch stage has paused every assigned partition (the output stage is behind).
    pub paused: AtomicBool,
    /// Assigned partitions that the statistics show not fetching (no start offset yet), and
    /// since when.
    pub unstarted: Mutex<Option<Unstarted>>,
}

/// Assigned partitions without a start offset, since `since`, as the statistics last `seen`.
#[derive(Debug, Clone)]
pub(crate) struct Unstarted {
    partitions: Vec<i32>,
    since: Instant,
    seen: Instant,
}

impl Unstarted {
    /// `current` (the assigned partitions not fetching now) against what was seen before: the
    /// wait goes on while any partition is in it.
    fn update(previous: Option<Self>, current: Vec<i32>, now: Instant) -> Option<Self> {
        if current.is_empty() {
            return None;
        }
        Some(Self {
            partitions: current,
            since: previous.map_or(now, |p| p.since),
            seen: now,
        })
    }
}

/// A partition paused at `offset`, whose record names registry id `id`.
#[derive(Debug)]
pub(crate) struct Hold {
    id: u32,
    offset: i64,
    since: Instant,
    next_try: Instant,
    backoff: Duration,
    error: String,
}

/// First and longest wait between registry retries while a partition is held.
const HOLD_BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));

impl FetchContext {
    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, Hold>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take_open(&self) -> Option<Batch> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

impl ClientContext for FetchContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.watch.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.error(&error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let queued: u64 = topic.partitions.values().map(|p| p.fetchq_size).sum();
        self.metrics
            .fetch_queue_bytes
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
        let mut unstarted = Vec::new();
        for (id, p) in &topic.partitions {
            if *id < 0 || !p.desired {
                continue;
            }
            // A partition waits here while the group coordinator withholds its committed
            // offset, which it does as long as a transaction that commits it is open.
            if p.fetch_state != "active" {
                unstarted.push(*id);
            }
            if let Some(lag) = lag(p) {
                self.metrics
                    .consumer_lag
                    .with_label_values(&[&self.topic, &id.to_string()])
                    .set(lag);
            }
        }
        unstarted.sort_unstable();
        let mut slot = self
            .unstarted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Unstarted::update(slot.take(), unstarted, Instant::now());
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
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
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
                // librdkafka keeps a partition's pause across its revoke and a later
                // re-assignment: one paused when it left (the output stage behind, or held for
                // the registry) would come back paused with nobody to resume it.
                if let Err(error) = consumer.resume(tpl) {
                    tracing::warn!(error = %error, "cannot resume revoked partitions");
                }
                let mut held = self.held();
                for id in &ids {
                    held.remove(id);
                }
                self.metrics
                    .schema_registry_waiting_partitions
                    .set(held.len() as i64);
                drop(held);
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

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Newly assigned partitions join a paused fetch stage paused; it resumes them all.
        if let Rebalance::Assign(tpl) = rebalance
            && self.paused.load(Ordering::Relaxed)
            && let Err(error) = consumer.pause(tpl)
        {
            tracing::warn!(error = %error, "cannot pause newly assigned partitions");
        }
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
    pub rules: Rules,
    pub max_output_bytes: usize,
    pub framing: OutputFraming,
    pub batch_max_records: usize,
    pub batch_linger: Duration,
    pub drain_timeout: Duration,
    pub drain_deadline: &'a OnceLock<Instant>,
    /// Shutdown (SIGTERM) or the output stage giving up.
    pub stop: &'a CancellationToken,
    pub status: &'a PipelineStatus,
    /// How long partitions may wait for the registry, or an idle replica for any broker, before
    /// readiness turns off.
    pub stall_timeout: Duration,
}

static BATCH_IDS: AtomicU64 = AtomicU64::new(1);

/// How long the fetch stage waits for room in the hand-off before it pauses fetching.
const PAUSE_AFTER: Duration = Duration::from_millis(200);

/// After this long without a record, the fetch stage asks a broker for the topic's metadata
/// (at most once per [`PROBE_INTERVAL`], each bounded by [`PROBE_TIMEOUT`]): an idle replica
/// has no batch whose failure would show that the brokers are gone.
const PROBE_IDLE: Duration = Duration::from_secs(1);
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The statistics that show partitions not fetching come every 5 s (`statistics.interval.ms`):
/// a wait is reported after no less than two of them, and a view older than that (statistics
/// turned off) is not trusted.
const START_OFFSET_GRACE: Duration = Duration::from_secs(10);

/// Whether an idle replica can reach a broker.
#[derive(Debug)]
struct Reachability {
    /// When the fetch stage last saw no record (reset by every record).
    idle_since: Option<Instant>,
    last_probe: Instant,
    /// Since the first probe that failed, while they fail.
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
    /// When a broker last answered again after probes failed (or the stage started).
    answering_since: Instant,
}

impl Reachability {
    /// A broker answered (a probe, or a record).
    fn answered(&mut self) -> bool {
        let was_failing = self.failing_since.take().is_some();
        if was_failing {
            self.answering_since = Instant::now();
        }
        was_failing
    }
}

impl FetchStage<'_> {
    /// Pauses (or resumes) fetching of every assigned partition; returns the new state.
    fn set_paused(&self, pause: bool) -> bool {
        let result = self.consumer.assignment().and_then(|tpl| {
            if pause {
                self.consumer.pause(&tpl)
            } else {
                // Partitions held for the registry stay paused.
                let held = self.consumer.context().held();
                let mut free = TopicPartitionList::new();
                for e in tpl.elements() {
                    if !held.contains_key(&e.partition()) {
                        free.add_partition(e.topic(), e.partition());
                    }
                }
                self.consumer.resume(&free)
            }
        });
        match result {
            Ok(()) => {
                self.consumer
                    .context()
                    .paused
                    .store(pause, Ordering::Relaxed);
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

    /// Holds `partition` at the record at `offset`: pauses it and seeks back to the record, so
    /// that it is fetched again once the registry answers about `id`. Nothing after it in that
    /// partition is routed meanwhile, so order and offsets stay as they were.
    fn hold(&self, partition: i32, offset: i64, id: u32, error: &heart_registry::RegistryError) {
        let ctx = self.consumer.context();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&ctx.topic, partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(partition, error = %e, "cannot pause a partition held for the registry");
        }
        if let Err(e) = self.consumer.seek(
            &ctx.topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(5),
        ) {
            tracing::warn!(partition, offset, error = %e, "cannot seek back a held partition");
        }
        let now = Instant::now();
        let mut held = ctx.held();
        held.insert(
            partition,
            Hold {
                id,
                offset,
                since: now,
                next_try: now + HOLD_BACKOFF.0,
                backoff: HOLD_BACKOFF.0,
                error: error.to_string(),
            },
        );
        ctx.metrics
            .schema_registry_waiting_partitions
            .set(held.len() as i64);
        tracing::warn!(partition, offset, schema_id = id, error = %error, "partition waits for the schema registry");
    }

    /// Asks the registry again about the ids held partitions wait for; resumes those it
    /// answered. Turns readiness off while a partition has waited longer than the stall bound.
    fn retry_holds(&self, decoder: &mut PatientDecoder, reported: &mut Option<Instant>) {
        let ctx = self.consumer.context();
        let now = Instant::now();
        let mut held = ctx.held();
        if held.is_empty() {
            if reported.take().is_some() {
                self.status.set_problem(Stage::Registry, None);
                tracing::info!("schema registry answers again; no partition waits");
            }
            return;
        }
        let due: Vec<u32> = held
            .values()
            .filter(|h| h.next_try <= now)
            .map(|h| h.id)
            .collect();
        for id in due {
            match decoder.retry(id) {
                Ok(()) => {
                    let mut tpl = TopicPartitionList::new();
                    held.retain(|&partition, h| {
                        if h.id != id {
                            return true;
                        }
                        tpl.add_partition(&ctx.topic, partition);
                        tracing::info!(
                            partition,
                            offset = h.offset,
                            schema_id = id,
                            waited_ms = h.since.elapsed().as_millis() as u64,
                            "partition resumes"
                        );
                        false
                    });
                    if let Err(e) = self.consumer.resume(&tpl) {
                        tracing::warn!(error = %e, "cannot resume partitions held for the registry");
                    }
                }
                Err(error) => {
                    for h in held.values_mut().filter(|h| h.id == id) {
                        h.backoff = (h.backoff * 2).min(HOLD_BACKOFF.1);
                        h.next_try = Instant::now() + h.backoff;
                        h.error = error.to_string();
                    }
                }
            }
        }
        ctx.metrics
            .schema_registry_waiting_partitions
            .set(held.len() as i64);
        let Some(oldest) = held.values().min_by_key(|h| h.since) else {
            return;
        };
        let waited = oldest.since.elapsed();
        if waited < self.stall_timeout {
            return;
        }
        self.status.set_problem(
            Stage::Registry,
            Some(format!(
                "{} partition(s) wait for the schema registry, the longest for {} s; last error: {}",
                held.len(),
                waited.as_secs(),
                oldest.error
            )),
        );
        if reported.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
            tracing::error!(
                partitions = held.len(),
                waited_ms = waited.as_millis() as u64,
                error = %oldest.error,
                "records wait for the schema registry; check --schema-registry-url and the registry"
            );
            *reported = Some(Instant::now());
        }
    }

    /// While no record has arrived for [`PROBE_IDLE`], asks for the topic's metadata once per
    /// [`PROBE_INTERVAL`]; turns readiness off (and logs at error once per interval) when no
    /// broker has answered for `--stall-timeout-ms`, and on again at the first answer.
    fn probe_broker(&self, topic: &str, reach: &mut Reachability) {
        let Some(idle_since) = reach.idle_since else {
            return;
        };
        let now = Instant::now();
        if now - idle_since < PROBE_IDLE || now - reach.last_probe < PROBE_INTERVAL {
            return;
        }
        reach.last_probe = now;
        match self.consumer.fetch_metadata(Some(topic), PROBE_TIMEOUT) {
            Ok(_) => {
                if reach.answered() {
                    self.status.set_problem(Stage::Broker, None);
                    tracing::info!("a broker answers again");
                }
            }
            Err(error) => {
                let since = *reach.failing_since.get_or_insert(now);
                if now - since < self.stall_timeout {
                    return;
                }
                self.status.set_problem(
                    Stage::Broker,
                    Some(format!(
                        "no broker has answered for {} s (last error: {error}); check that the brokers in --bootstrap-servers run and are reachable",
                        (now - since).as_secs()
                    )),
                );
                if reach
                    .last_logged
                    .is_none_or(|t| now - t >= Duration::from_secs(30))
                {
                    tracing::error!(error = %error, "no broker reachable: not ready until one answers");
                    reach.last_logged = Some(now);
                }
            }
        }
    }

    /// Turns readiness off (and logs at error once per interval) while assigned partitions have
    /// had no start offset for `--stall-timeout-ms` (at least [`START_OFFSET_GRACE`]) with a
    /// broker answering (with none, the broker problem says it all); on again once they all
    /// fetch. `reported` is when the problem was last logged, `None` while there is none.
    fn watch_start_offsets(&self, reach: &Reachability, reported: &mut Option<Instant>) {
        let unstarted = self
            .consumer
            .context()
            .unstarted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let waiting = |u: &Unstarted| u.since.max(reach.answering_since).elapsed();
        let bound = self.stall_timeout.max(START_OFFSET_GRACE);
        let Some(u) = unstarted.filter(|u| {
            reach.failing_since.is_none()
                && u.seen.elapsed() < START_OFFSET_GRACE
                && waiting(u) >= bound
        }) else {
            if reported.take().is_some() {
                self.status.set_problem(Stage::Offsets, None);
                tracing::info!("every assigned partition fetches again");
            }
            return;
        };
        let waited = waiting(&u).as_secs();
        self.status.set_problem(
            Stage::Offsets,
            Some(format!(
                "partitions {:?} have had no start offset for {waited} s: the group coordinator withholds committed offsets while a transaction that commits them is open; one that a broker failure left open (hanging) stays so until aborted: kafka-transactions.sh find-hanging lists it, kafka-transactions.sh abort ends it",
                u.partitions
            )),
        );
        if reported.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
            tracing::error!(
                partitions = ?u.partitions,
                waited_s = waited,
                "assigned partitions do not start: their committed offsets stay unstable; check for hanging transactions (kafka-transactions.sh find-hanging)"
            );
            *reported = Some(Instant::now());
        }
    }

    /// Polls and routes until stopped, then hands over the open batch (drain).
    ///
    /// # Errors
    /// [`ConsumeError::Encode`] if an output cannot be encoded (a bug, not bad input).
    pub fn run(&self, decoder: &mut PatientDecoder) -> Result<(), ConsumeError> {
        let ctx = self.consumer.context();
        let handoff = &*ctx.handoff;
        let topic = ctx.topic.as_str();
        let mut epoch = 0;
        let mut model: Option<std::sync::Arc<Model>> = None;
        let mut shadow: Option<std::sync::Arc<Model>> = None;
        let mut opened_at = Instant::now();
        let mut errors = heart_kafka::Throttle::new(Duration::from_secs(10));
        let mut now_ms = heart_schemas::now_ms();
        let mut clock_stale = false;
        let mut paused = false;
        let mut registry_reported = None;
        let mut offsets_reported = None;
        let mut offsets_checked = Instant::now();
        let mut reach = Reachability {
            idle_since: None,
            last_probe: Instant::now(),
            failing_since: None,
            last_logged: None,
            answering_since: Instant::now(),
        };
        while !self.stop.is_cancelled() {
            self.retry_holds(decoder, &mut registry_reported);
            self.probe_broker(topic, &mut reach);
            // The statistics it reads change every few seconds; the loop turns per record.
            if offsets_checked.elapsed() >= PROBE_INTERVAL {
                self.watch_start_offsets(&reach, &mut offsets_reported);
                offsets_checked = Instant::now();
            }
            if let Some(rewind) = handoff.take_rewind() {
                ctx.take_open();
                epoch += 1;
                // A commit that failed on the client may have succeeded on the broker (the
                // broker died before answering): the group's committed offsets are the truth,
                // the ones this replica tracked are only the fallback.
                let mut asked = TopicPartitionList::new();
                for (partition, _) in &rewind.targets {
                    asked.add_partition(topic, *partition);
                }
                // Nothing owned (revoked meanwhile): no need to ask a coordinator that may be
                // the broker that went away.
                let stored = (asked.count() > 0)
                    .then(|| {
                        self.consumer
                            .committed_offsets(asked, Duration::from_secs(10))
                            .ok()
                    })
                    .flatten();
                for (partition, tracked) in &rewind.targets {
                    let offset = stored
                        .as_ref()
                        .and_then(|t| t.find_partition(topic, *partition))
                        .and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        })
                        .map_or(*tracked, |o| o.max(*tracked));
                    if let Err(error) = self.consumer.seek(
                        topic,
                        *partition,
                        Offset::Offset(offset),
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
                // The clock is read once per 64 records under load; after a wait it is stale.
                None => {
                    clock_stale = true;
                    reach.idle_since.get_or_insert_with(Instant::now);
                }
                Some(Err(error)) => {
                    if let Some(suppressed) = errors.allow() {
                        tracing::warn!(error = %error, suppressed, "consume error");
                    }
                }
                Some(Ok(message)) => {
                    reach.idle_since = None;
                    if reach.answered() {
                        self.status.set_problem(Stage::Broker, None);
                        tracing::info!("records arrive again: a broker is reachable");
                    }
                    let (partition, offset) = (message.partition(), message.offset());
                    // Fetched before the hold took effect: it is fetched again after it.
                    if ctx.held().contains_key(&partition) {
                        continue;
                    }
                    let decoded = match decoder.decode(message.payload()) {
                        Decoded::Ready(decoded) => decoded,
                        Decoded::Wait { id, error } => {
                            self.hold(partition, offset, id, &error);
                            continue;
                        }
                    };
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
                        let mut batch =
                            Batch::new(id, epoch, current.version_number(), self.batch_max_records);
                        shadow = self.store.shadow();
                        batch.shadow_version = shadow.as_ref().map(|m| m.version_number());
                        *guard = Some(batch);
                        model = Some(current);
                    }
                    let (Some(batch), Some(model)) = (guard.as_mut(), model.as_deref()) else {
                        continue;
                    };
                    let cap = handoff.on_record(partition, offset);
                    let router = Router {
                        model,
                        shadow: shadow.as_deref(),
                        rules: &self.rules,
                        max_output_bytes: self.max_output_bytes,
                        framing: self.framing,
                    };
                    let source = Source {
                        topic,
                        partition,
                        offset,
                        key: message.key(),
                        value: message.payload(),
                        trace: trace_context(&message),
                    };
                    // `scored_at` to the millisecond, without a clock read per record.
                    if clock_stale || batch.len() % 64 == 0 {
                        now_ms = heart_schemas::now_ms();
                        clock_stale = false;
                    }
                    router.route(source, decoded, cap, now_ms, batch)?;
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

/// The record's `traceparent` header, if valid (an invalid one is ignored, as W3C says).
fn trace_context(
    message: &rdkafka::message::BorrowedMessage<'_>,
) -> Option<heart_schemas::TraceParent> {
    use rdkafka::message::{Headers, Message};
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == heart_schemas::trace::HEADER)
        .and_then(|h| heart_schemas::TraceParent::parse(h.value?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_for_start_offsets_lasts_while_any_partition_waits() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        let first = Unstarted::update(None, vec![0, 1], t0).unwrap();
        assert_eq!(first.since, t0);
        // One partition started, the other still waits: the wait keeps its beginning.
        let later = Unstarted::update(Some(first), vec![1], t1).unwrap();
        assert_eq!((later.partitions.as_slice(), later.since), (&[1][..], t0));
        assert!(Unstarted::update(Some(later), Vec::new(), t1).is_none());
        // A new wait begins anew.
        assert_eq!(Unstarted::update(None, vec![2], t1).unwrap().since, t1);
    }
}
