//! `producer send`: paces records from a source, mixes in malformed ones, sends them with an
//! idempotent producer, and reports what the broker acknowledged.
//!
//! We use [`FutureProducer`] with a [`JoinSet`] of delivery futures capped at `--max-in-flight`,
//! rather than a `BaseProducer` polled by hand: each record's acknowledgement arrives as a future
//! we can time (the ack latency), the pacer and the shutdown token fit in one `select!`, and the
//! cap bounds memory and queueing delay. librdkafka still batches underneath (`linger.ms`), so
//! throughput is the same; the cost is one small task per record.
//!
//! Shutdown (SIGTERM/SIGINT cancel the token): reading the source stops at once, wherever the
//! loop is waiting (pacer, in-flight cap, full queue); the deliveries already handed to
//! librdkafka then get `--flush-timeout-ms` to resolve, and any still outstanding are reported as
//! unacknowledged rather than waited for. In a container the producer is PID 1, which the kernel
//! never terminates on an unhandled SIGTERM, so this is what `docker stop` relies on.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use heart_kafka::{ConnectionWatch, MetadataError};
use heart_registry::Registry;
use heart_schemas::{AvroRecord, Framing, PatientRecord, SpanIds, TraceParent};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn};

use crate::config::{FramingArg, KafkaSettings, SendArgs};
use crate::error::{ConfigError, SendError};
use crate::invalid::{InvalidKind, InvalidMix};
use crate::rate::Pacer;
use crate::source::Source;
use crate::stats::{Latencies, LatencySummary, per_second};

/// How often progress is logged while sending.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// What `send` did, printed at the end and written by `--summary-json`.
#[derive(Debug, Clone, Serialize)]
pub struct SendSummary {
    /// The topic.
    pub topic: String,
    /// Messages handed to the producer (valid and invalid).
    pub attempted: u64,
    /// Messages the broker acknowledged.
    pub sent: u64,
    /// Messages whose delivery failed.
    pub failed: u64,
    /// Messages still awaiting their acknowledgement when `--flush-timeout-ms` ran out after a
    /// shutdown request: they may or may not be on the topic.
    pub unacknowledged: u64,
    /// Malformed messages among the attempted, by kind (every kind listed).
    pub invalid: BTreeMap<InvalidKind, u64>,
    /// Failed deliveries by librdkafka error code.
    pub failures: BTreeMap<String, u64>,
    /// Seconds from the first send to the last acknowledgement.
    pub elapsed_s: f64,
    /// Acknowledged messages per second over `elapsed_s`.
    pub records_per_s: f64,
    /// Time from handing a message to the producer to its acknowledgement.
    pub ack_latency_ms: Option<LatencySummary>,
    /// Whether SIGTERM/SIGINT ended the run before the source or the acknowledgements did.
    pub interrupted: bool,
}

impl fmt::Display for SendSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unacknowledged = if self.unacknowledged > 0 {
            format!(", {} unacknowledged", self.unacknowledged)
        } else {
            String::new()
        };
        writeln!(
            f,
            "sent {} of {} messages to {} ({} failed{unacknowledged}) in {:.2} s: {:.0} records/s{}",
            self.sent,
            self.attempted,
            self.topic,
            self.failed,
            self.elapsed_s,
            self.records_per_s,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        )?;
        let kinds: Vec<String> = self
            .invalid
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        writeln!(
            f,
            "invalid: {} ({})",
            self.invalid.values().sum::<u64>(),
            kinds.join(", ")
        )?;
        if !self.failures.is_empty() {
            let codes: Vec<String> = self
                .failures
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            writeln!(f, "failures: {}", codes.join(", "))?;
        }
        match &self.ack_latency_ms {
            Some(l) => writeln!(
                f,
                "ack latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.p50, l.p99, l.max
            ),
            None => writeln!(f, "ack latency: no acknowledgements"),
        }
    }
}

/// Counts as deliveries resolve. Pure: no Kafka in it.
#[derive(Debug)]
struct Tally {
    attempted: u64,
    sent: u64,
    failed: u64,
    invalid: BTreeMap<InvalidKind, u64>,
    failures: BTreeMap<String, u64>,
    ack: Latencies,
    first_send: Option<Instant>,
    last_ack: Option<Instant>,
}

/// How one delivery ended.
#[derive(Debug)]
struct Delivered {
    /// `Err` holds the error code's name.
    outcome: Result<(), DeliveryFailure>,
    latency: Duration,
    at: Instant,
}

#[derive(Debug)]
enum DeliveryFailure {
    Kafka(KafkaError),
    /// The producer went away before reporting.
    Canceled,
}

impl DeliveryFailure {
    fn code(&self) -> String {
        match self {
            Self::Kafka(e) => e
                .rdkafka_error_code()
                .map_or_else(|| "unknown".to_owned(), |c| format!("{c:?}")),
            Self::Canceled => "canceled".to_owned(),
        }
    }
}

impl Tally {
    fn new() -> Self {
        Self {
            attempted: 0,
            sent: 0,
            failed: 0,
            invalid: InvalidKind::ALL.iter().map(|k| (*k, 0)).collect(),
            failures: BTreeMap::new(),
            ack: Latencies::default(),
            first_send: None,
            last_ack: None,
        }
    }

    fn enqueued(&mut self, kind: Option<InvalidKind>, at: Instant) {
        self.attempted += 1;
        self.first_send.get_or_insert(at);
        if let Some(kind) = kind {
            *self.invalid.entry(kind).or_default() += 1;
        }
    }

    /// Records a resolved delivery; returns the failure, if any, for the caller to judge.
    fn resolved(&mut self, d: Delivered) -> Option<DeliveryFailure> {
        self.last_ack = Some(d.at);
        match d.outcome {
            Ok(()) => {
                self.sent += 1;
                self.ack.record(d.latency.as_secs_f64() * 1000.0);
                None
            }
            Err(failure) => {
                self.failed += 1;
                *self.failures.entry(failure.code()).or_default() += 1;
                Some(failure)
            }
        }
    }

    /// The report; `unacknowledged` deliveries were still outstanding at the end.
    fn summary(self, topic: &str, unacknowledged: u64, interrupted: bool) -> SendSummary {
        let elapsed_s = match (self.first_send, self.last_ack) {
            (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        SendSummary {
            topic: topic.to_owned(),
            attempted: self.attempted,
            sent: self.sent,
            failed: self.failed,
            unacknowledged,
            invalid: self.invalid,
            failures: self.failures,
            elapsed_s,
            records_per_s: per_second(self.sent, elapsed_s),
            ack_latency_ms: self.ack.summary(),
            interrupted,
        }
    }
}

/// One message to send.
struct Outgoing {
    key: String,
    value: Vec<u8>,
    invalid: Option<InvalidKind>,
    /// `traceparent` to stamp (`--trace`).
    trace: Option<String>,
}

/// Sends every record of the source, then waits for all acknowledgements and prints the report.
/// A cancelled `shutdown` stops sending and bounds that wait by `--flush-timeout-ms`.
///
/// Returns the summary even when deliveries failed or were left unacknowledged; the caller
/// decides the exit code.
///
/// # Errors
/// A bad source, no broker, a topic that does not exist, a message librdkafka refuses outright,
/// a fatal producer error, or a summary file that cannot be written.
#[instrument(skip_all, fields(topic = %args.topic, source = %args.source))]
pub(crate) async fn run(
    kafka: &KafkaSettings,
    registry: Option<Arc<Registry>>,
    args: &SendArgs,
    shutdown: CancellationToken,
) -> Result<SendSummary, SendError> {
    let mut source = Source::open(args)?;
    let framing = framing(registry, args).await?;
    let watch = ConnectionWatch::new(&kafka.connection);
    let producer: FutureProducer<ConnectionWatch> = args
        .producer_config(kafka)
        .map_err(ConfigError::from)?
        .create_with_context(watch.clone())
        .map_err(SendError::Create)?;
    tokio::select! {
        biased;
        // Nothing sent yet: the loop below ends at once and reports that.
        () = shutdown.cancelled() => {}
        checked = check_topic(&producer, &watch, kafka, &args.topic) => checked?,
    }
    info!(
        count = ?source.len_hint(),
        rate = args.rate,
        invalid_ratio = args.invalid_ratio,
        max_in_flight = args.max_in_flight,
        "sending"
    );

    let progress = progress_bar(source.len_hint());
    let mut pacer = Pacer::new(args.rate, Instant::now());
    let mut mix = InvalidMix::new(args.invalid_ratio, args.seed);
    let mut in_flight: JoinSet<Delivered> = JoinSet::new();
    let mut tally = Tally::new();
    let mut next_log = Instant::now() + LOG_INTERVAL;
    let mut pending = source.next();
    let traces = args.trace.then(SpanIds::new);

    'send: while let Some(row) = &pending {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = pacer.tick() => {}
        }
        let message = match mix.maybe_next(&row.record)? {
            Some(bad) => Outgoing {
                key: bad.key,
                value: bad.value,
                invalid: Some(bad.kind),
                trace: traces.as_ref().map(new_trace),
            },
            None => {
                let Some(row) = pending.take() else { break };
                let record = args
                    .shift
                    .iter()
                    .fold(row.stamped(now_ms()), |r, shift| shift.apply(r));
                pending = source.next();
                let mut value = Vec::with_capacity(96);
                record.encode_framed_into(framing, &mut value)?;
                Outgoing {
                    value,
                    key: record.patient_id,
                    invalid: None,
                    trace: traces.as_ref().map(new_trace),
                }
            }
        };
        while in_flight.len() >= args.max_in_flight {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break 'send,
                settled = settle_one(&mut in_flight, &mut tally, &producer, &progress) => settled?,
            }
        }
        let queued = enqueue(
            &producer,
            &args.topic,
            message,
            &mut in_flight,
            &mut tally,
            &progress,
            &shutdown,
        )
        .await?;
        if !queued {
            break;
        }
        while let Some(done) = in_flight.try_join_next() {
            settle(done, &mut tally, &producer, &progress)?;
        }
        if Instant::now() >= next_log {
            next_log += LOG_INTERVAL;
            info!(
                sent = tally.sent,
                failed = tally.failed,
                in_flight = in_flight.len(),
                "progress"
            );
        }
    }

    // Every delivery resolves within message.timeout.ms, so without a shutdown request this
    // ends; after one, what is still outstanding at the flush bound is reported, not awaited.
    let flush_from = |in_flight: &JoinSet<Delivered>| {
        info!(
            in_flight = in_flight.len(),
            flush_timeout_ms = args.flush_timeout_ms,
            "shutdown requested; flushing outstanding deliveries"
        );
        Instant::now() + args.flush_timeout()
    };
    let mut flush_deadline = shutdown.is_cancelled().then(|| flush_from(&in_flight));
    while !in_flight.is_empty() {
        match flush_deadline {
            None => tokio::select! {
                biased;
                () = shutdown.cancelled() => flush_deadline = Some(flush_from(&in_flight)),
                settled = settle_one(&mut in_flight, &mut tally, &producer, &progress) => settled?,
            },
            Some(deadline) => {
                let settled = tokio::time::timeout_at(
                    deadline,
                    settle_one(&mut in_flight, &mut tally, &producer, &progress),
                )
                .await;
                match settled {
                    Ok(settled) => settled?,
                    Err(_elapsed) => break,
                }
            }
        }
    }
    let unacknowledged = u64::try_from(in_flight.len()).unwrap_or(u64::MAX);
    if unacknowledged > 0 {
        warn!(
            unacknowledged,
            flush_timeout_ms = args.flush_timeout_ms,
            "deliveries still unacknowledged at the flush bound"
        );
    }
    in_flight.abort_all();
    progress.finish_and_clear();

    let summary = tally.summary(&args.topic, unacknowledged, flush_deadline.is_some());
    info!(
        sent = summary.sent,
        failed = summary.failed,
        unacknowledged = summary.unacknowledged,
        interrupted = summary.interrupted,
        elapsed_ms = (summary.elapsed_s * 1000.0).round(),
        "done"
    );
    print!("{summary}");
    if let Some(path) = &args.summary_json {
        write_summary(path, &summary)?;
    }
    Ok(summary)
}

/// Hands one message to librdkafka, waiting while its queue is full. `Ok(false)`: `shutdown`
/// was cancelled while waiting, and the message was not sent.
/// A new trace for one record: its root span is the send.
fn new_trace(ids: &SpanIds) -> String {
    TraceParent::start(ids.trace_id(), ids.next()).to_string()
}

async fn enqueue(
    producer: &FutureProducer<ConnectionWatch>,
    topic: &str,
    message: Outgoing,
    in_flight: &mut JoinSet<Delivered>,
    tally: &mut Tally,
    progress: &ProgressBar,
    shutdown: &CancellationToken,
) -> Result<bool, SendError> {
    let mut record = FutureRecord::to(topic)
        .key(message.key.as_bytes())
        .payload(message.value.as_slice());
    if let Some(trace) = &message.trace {
        record = record.headers(OwnedHeaders::new_with_capacity(1).insert(Header {
            key: heart_schemas::trace::HEADER,
            value: Some(trace.as_str()),
        }));
    }
    let delivery = loop {
        match producer.send_result(record) {
            Ok(delivery) => break delivery,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                // The local queue drains as the broker acknowledges: wait for one, then retry.
                record = back;
                let room = async {
                    if in_flight.is_empty() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        Ok(())
                    } else {
                        settle_one(in_flight, tally, producer, progress).await
                    }
                };
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return Ok(false),
                    made = room => made?,
                }
            }
            Err((source, _)) => {
                return Err(SendError::Enqueue {
                    topic: topic.to_owned(),
                    source,
                });
            }
        }
    };
    let started = Instant::now();
    tally.enqueued(message.invalid, started);
    in_flight.spawn(async move {
        let outcome = match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((err, _))) => Err(DeliveryFailure::Kafka(err)),
            Err(_) => Err(DeliveryFailure::Canceled),
        };
        let at = Instant::now();
        Delivered {
            outcome,
            latency: at.saturating_duration_since(started),
            at,
        }
    });
    Ok(true)
}

/// Waits for the next delivery to resolve and records it.
async fn settle_one(
    in_flight: &mut JoinSet<Delivered>,
    tally: &mut Tally,
    producer: &FutureProducer<ConnectionWatch>,
    progress: &ProgressBar,
) -> Result<(), SendError> {
    match in_flight.join_next().await {
        Some(done) => settle(done, tally, producer, progress),
        None => Ok(()),
    }
}

/// Records a resolved delivery; a fatal producer error ends the run.
fn settle(
    done: Result<Delivered, tokio::task::JoinError>,
    tally: &mut Tally,
    producer: &FutureProducer<ConnectionWatch>,
    progress: &ProgressBar,
) -> Result<(), SendError> {
    progress.inc(1);
    let delivered = done.unwrap_or_else(|_| Delivered {
        // The task only awaits a channel; it cannot panic, but count it rather than lose it.
        outcome: Err(DeliveryFailure::Canceled),
        latency: Duration::ZERO,
        at: Instant::now(),
    });
    let Some(failure) = tally.resolved(delivered) else {
        return Ok(());
    };
    if let Some((code, reason)) = producer.client().fatal_error() {
        return Err(SendError::Fatal { code, reason });
    }
    if tally.failed == 1 {
        warn!(error = %failure.code(), "delivery failed; further failures are logged at debug");
    } else {
        debug!(error = %failure.code(), "delivery failed");
    }
    progress.set_message(format!("{} failed", tally.failed));
    Ok(())
}

/// Fails fast when the broker does not answer or the topic is missing.
/// The header to write: for `--framing confluent`, the id of this build's PatientRecord schema
/// under `<topic>-value`, registered first unless `--schema-registry-auto-register false`.
async fn framing(registry: Option<Arc<Registry>>, args: &SendArgs) -> Result<Framing, SendError> {
    let (FramingArg::Confluent, Some(registry)) = (args.framing, registry) else {
        return Ok(Framing::SingleObject);
    };
    let subject = heart_registry::value_subject(&args.topic);
    let auto_register = args.schema_registry_auto_register;
    let lookup_subject = subject.clone();
    // A blocking HTTP call, once: off the runtime's threads.
    let id = tokio::task::spawn_blocking(move || {
        let schema = PatientRecord::schema_info().text;
        if auto_register {
            registry.register(&lookup_subject, schema)
        } else {
            registry.lookup(&lookup_subject, schema)
        }
    })
    .await
    .map_err(|e| SendError::Registry {
        subject: subject.clone(),
        source: heart_registry::RegistryError::Config(e.to_string()),
    })?
    .map_err(|source| SendError::Registry {
        subject: subject.clone(),
        source,
    })?;
    info!(
        subject,
        schema_id = id,
        "records carry the schema registry id"
    );
    Ok(Framing::Confluent { id })
}

async fn check_topic(
    producer: &FutureProducer<ConnectionWatch>,
    watch: &ConnectionWatch,
    kafka: &KafkaSettings,
    topic: &str,
) -> Result<(), SendError> {
    let watch = watch.clone();
    let timeout = kafka.connect_timeout();
    let client = producer.clone();
    let name = topic.to_owned();
    // fetch_metadata blocks the calling thread.
    let metadata = tokio::task::spawn_blocking(move || {
        heart_kafka::fetch_metadata(client.client(), Some(&name), timeout, &watch, &|| {}).map(
            |m| {
                m.topics()
                    .iter()
                    .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
            },
        )
    })
    .await
    .unwrap_or(Err(MetadataError::Unreachable(KafkaError::Canceled)));
    match metadata {
        Ok(true) => Ok(()),
        Ok(false) => Err(SendError::NoTopic {
            topic: topic.to_owned(),
        }),
        Err(MetadataError::Refused(failure)) => Err(SendError::Refused(failure)),
        Err(MetadataError::Unreachable(source)) => Err(SendError::Connect {
            bootstrap: kafka.connection.bootstrap_servers.clone(),
            timeout_ms: kafka.connect_timeout_ms,
            source,
        }),
    }
}

/// A bar on stderr when it is a terminal; hidden otherwise (logs and CI).
fn progress_bar(len: Option<u64>) -> ProgressBar {
    use std::io::IsTerminal;
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let (bar, template) = match len {
        Some(n) => (
            ProgressBar::with_draw_target(Some(n), target),
            "{elapsed_precise} [{wide_bar}] {pos}/{len} acked ({per_sec}) {msg}",
        ),
        None => (
            ProgressBar::with_draw_target(None, target),
            "{elapsed_precise} {pos} acked ({per_sec}) {msg}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

fn write_summary(path: &std::path::Path, summary: &SendSummary) -> Result<(), SendError> {
    let error = |source| SendError::Summary {
        path: path.to_owned(),
        source,
    };
    let json = serde_json::to_vec_pretty(summary).map_err(|e| error(e.into()))?;
    std::fs::write(path, json).map_err(error)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(ok: bool, ms: u64, at: Instant) -> Delivered {
        Delivered {
            outcome: if ok {
                Ok(())
            } else {
                Err(DeliveryFailure::Kafka(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageTimedOut,
                )))
            },
            latency: Duration::from_millis(ms),
            at,
        }
    }

    #[test]
    fn tally_counts_sent_failed_invalid_and_rate() {
        let t0 = Instant::now();
        let mut tally = Tally::new();
        tally.enqueued(None, t0);
        tally.enqueued(Some(InvalidKind::EmptyValue), t0);
        tally.enqueued(None, t0);
        assert!(tally.resolved(delivered(true, 2, t0)).is_none());
        assert!(tally.resolved(delivered(true, 4, t0)).is_none());
        let failure = tally.resolved(delivered(false, 9, t0 + Duration::from_secs(2)));
        assert_eq!(
            failure.map(|f| f.code()).as_deref(),
            Some("MessageTimedOut")
        );
        let s = tally.summary("patients", 0, false);
        assert_eq!((s.attempted, s.sent, s.failed), (3, 2, 1));
        assert_eq!(s.invalid[&InvalidKind::EmptyValue], 1);
        assert_eq!(s.invalid[&InvalidKind::NotAvro], 0);
        assert_eq!(s.failures["MessageTimedOut"], 1);
        assert_eq!(s.elapsed_s, 2.0);
        assert_eq!(s.records_per_s, 1.0);
        assert_eq!(s.ack_latency_ms.map(|l| l.p99), Some(4.0));
    }

    #[test]
    fn report_is_human_readable_and_json_names_kinds() {
        let mut tally = Tally::new();
        let t0 = Instant::now();
        tally.enqueued(Some(InvalidKind::OutOfRange), t0);
        tally.resolved(delivered(true, 3, t0 + Duration::from_millis(500)));
        let s = tally.summary("patients", 0, false);
        let text = s.to_string();
        assert!(
            text.starts_with(
                "sent 1 of 1 messages to patients (0 failed) in 0.50 s: 2 records/s\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "invalid: 1 (not_avro 0, truncated_avro 0, out_of_range 1, empty_value 0)"
            ),
            "{text}"
        );
        assert!(
            text.contains("ack latency: p50 3.0 ms, p99 3.0 ms"),
            "{text}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["invalid"]["out_of_range"], 1);
        assert_eq!(json["ack_latency_ms"]["p50"], 3.0);
    }

    #[test]
    fn a_report_cut_short_by_the_flush_bound_counts_the_unacknowledged() {
        let t0 = Instant::now();
        let mut tally = Tally::new();
        for _ in 0..3 {
            tally.enqueued(None, t0);
        }
        tally.resolved(delivered(true, 1, t0 + Duration::from_secs(1)));
        let s = tally.summary("patients", 2, true);
        let text = s.to_string();
        assert!(
            text.starts_with(
                "sent 1 of 3 messages to patients (0 failed, 2 unacknowledged) in 1.00 s: 1 records/s (interrupted)\n"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            (&json["sent"], &json["unacknowledged"], &json["interrupted"]),
            (&1.into(), &2.into(), &true.into())
        );
    }
}
