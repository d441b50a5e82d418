//! `producer tail`: the reference client for the predictions topic. Prints each [`Prediction`] as
//! a JSON line and, with `--summary`, totals and latencies at the end.
//!
//! Partitions are assigned explicitly (no group rebalance), so reading starts the moment
//! `assign` returns; with `--from-beginning` or `--count` every partition starts at its first
//! offset, so a script that waits for N predictions cannot miss any written before it started.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use heart_kafka::{ConnectionWatch, MetadataError};
use heart_registry::{Decoder, Registry};
use heart_schemas::topics::HEADER_REASON;
use heart_schemas::{DeadLetter, Prediction, RiskLevel};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn};

use crate::config::{KafkaSettings, TailArgs};
use crate::error::{ConfigError, TailError};
use crate::send::now_ms;
use crate::stats::{Latencies, LatencySummary, per_second};

/// How often to ask again for a topic that does not exist yet.
const METADATA_RETRY: Duration = Duration::from_millis(500);

/// What `tail` saw.
#[derive(Debug, Clone, PartialEq)]
pub struct TailSummary {
    /// Predictions received.
    pub predictions: u64,
    /// Distinct patient ids among them (fewer than `predictions` after a scorer replay).
    pub distinct_patients: u64,
    /// Predictions by risk level, every level listed, lowest first.
    pub by_risk_level: Vec<(RiskLevel, u64)>,
    /// Predictions by (model name, model version).
    pub by_model: BTreeMap<(String, i64), u64>,
    /// Seconds from the earliest event time among the predictions (when the producer sent the
    /// record) to the last prediction received: the whole pipeline, not just the read.
    pub elapsed_s: f64,
    /// Predictions per second over `elapsed_s`.
    pub records_per_s: f64,
    /// Receive time minus the record's event time.
    pub e2e_latency_ms: Option<LatencySummary>,
    /// Dead letters by reason code, when `--dead-letters` was given.
    pub dead_letters: Option<BTreeMap<String, u64>>,
    /// Messages that decoded as neither.
    pub undecodable: u64,
}

impl fmt::Display for TailSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "predictions: {} ({} distinct patients) in {:.2} s from the first record's event time to the last prediction: {:.0} records/s",
            self.predictions, self.distinct_patients, self.elapsed_s, self.records_per_s
        )?;
        let levels: Vec<String> = self
            .by_risk_level
            .iter()
            .map(|(level, n)| format!("{level} {n}"))
            .collect();
        writeln!(f, "by risk level: {}", levels.join(", "))?;
        let models: BTreeMap<String, u64> = self
            .by_model
            .iter()
            .map(|((name, version), n)| (format!("{name} v{version}"), *n))
            .collect();
        writeln!(f, "by model version: {}", join(&models))?;
        match &self.e2e_latency_ms {
            Some(l) => writeln!(
                f,
                "end-to-end latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.p50, l.p99, l.max
            )?,
            None => writeln!(f, "end-to-end latency: no predictions")?,
        }
        if let Some(dead) = &self.dead_letters {
            writeln!(
                f,
                "dead letters: {} ({})",
                dead.values().sum::<u64>(),
                join(dead)
            )?;
        }
        writeln!(f, "undecodable: {}", self.undecodable)
    }
}

fn join<K: fmt::Display>(counts: &BTreeMap<K, u64>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Counts as messages arrive. Pure: no Kafka in it.
#[derive(Debug)]
struct Tally {
    predictions: u64,
    patients: HashSet<String>,
    /// Counts in [`RiskLevel::ALL`] order.
    by_risk_level: [u64; 3],
    by_model: BTreeMap<(String, i64), u64>,
    e2e: Latencies,
    /// Earliest event time seen, ms since the epoch.
    first_event_ms: Option<i64>,
    /// Latest receive time, ms since the epoch.
    last_received_ms: Option<i64>,
    dead_letters: Option<BTreeMap<String, u64>>,
    undecodable: u64,
}

impl Tally {
    fn new(dead_letters: bool) -> Self {
        Self {
            predictions: 0,
            patients: HashSet::new(),
            by_risk_level: [0; 3],
            by_model: BTreeMap::new(),
            e2e: Latencies::default(),
            first_event_ms: None,
            last_received_ms: None,
            dead_letters: dead_letters.then(BTreeMap::new),
            undecodable: 0,
        }
    }

    fn prediction(&mut self, p: &Prediction, received_ms: i64) {
        self.predictions += 1;
        self.patients.insert(p.patient_id.clone());
        if let Some(i) = RiskLevel::ALL.iter().position(|l| *l == p.risk_level) {
            self.by_risk_level[i] += 1;
        }
        *self
            .by_model
            .entry((p.model_name.clone(), p.model_version))
            .or_default() += 1;
        #[allow(clippy::cast_precision_loss)] // latencies are far below 2^52 ms
        self.e2e.record((received_ms - p.event_time) as f64);
        self.first_event_ms = Some(
            self.first_event_ms
                .map_or(p.event_time, |t| t.min(p.event_time)),
        );
        self.last_received_ms = Some(
            self.last_received_ms
                .map_or(received_ms, |t| t.max(received_ms)),
        );
    }

    fn dead_letter(&mut self, reason: String) {
        if let Some(counts) = &mut self.dead_letters {
            *counts.entry(reason).or_default() += 1;
        }
    }

    /// What `--count` counts: predictions, plus dead letters when they are read.
    fn counted(&self) -> u64 {
        let dead: u64 = self.dead_letters.iter().flat_map(BTreeMap::values).sum();
        self.predictions + dead + self.undecodable
    }

    fn summary(&self) -> TailSummary {
        #[allow(clippy::cast_precision_loss)] // spans are far below 2^52 ms
        let elapsed_s = match (self.first_event_ms, self.last_received_ms) {
            (Some(first), Some(last)) => (last - first).max(0) as f64 / 1000.0,
            _ => 0.0,
        };
        TailSummary {
            predictions: self.predictions,
            distinct_patients: u64::try_from(self.patients.len()).unwrap_or(u64::MAX),
            by_risk_level: RiskLevel::ALL.into_iter().zip(self.by_risk_level).collect(),
            by_model: self.by_model.clone(),
            elapsed_s,
            records_per_s: per_second(self.predictions, elapsed_s),
            e2e_latency_ms: self.e2e.summary(),
            dead_letters: self.dead_letters.clone(),
            undecodable: self.undecodable,
        }
    }
}

/// Where reading starts.
fn start_offset(args: &TailArgs) -> Offset {
    if args.from_beginning || args.count.is_some() {
        Offset::Beginning
    } else if args.group.is_some() {
        Offset::Stored
    } else {
        Offset::End
    }
}

/// Reads predictions until `--count`, `--timeout-s` or a cancelled `shutdown` (SIGTERM/SIGINT),
/// printing them unless `--quiet`. A shutdown is a normal end: the summary is printed and the
/// result is `Ok`.
///
/// # Errors
/// No broker or topic within the connect timeout, a fatal consumer error, a closed stdout, or
/// (after printing the summary) `--count` not reached within `--timeout-s`.
#[instrument(skip_all, fields(topic = %args.topic))]
pub(crate) async fn run(
    kafka: &KafkaSettings,
    registry: Option<Arc<Registry>>,
    args: &TailArgs,
    shutdown: CancellationToken,
) -> Result<TailSummary, TailError> {
    let mut decoders = Decoders {
        predictions: Decoder::new(registry.clone()),
        dead_letters: Decoder::new(registry),
    };
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("heart-tail-{}-{}", std::process::id(), now_ms()));
    let watch = ConnectionWatch::new(&kafka.connection);
    let consumer: StreamConsumer<ConnectionWatch> = args
        .consumer_config(kafka, &group)
        .map_err(ConfigError::from)?
        .create_with_context(watch.clone())
        .map_err(TailError::Consumer)?;
    let consumer = Arc::new(consumer);

    let offset = start_offset(args);
    let mut topics = vec![args.topic.as_str()];
    if args.dead_letters {
        topics.push(args.dead_letter_topic.as_str());
    }
    let mut assignment = TopicPartitionList::new();
    for topic in &topics {
        let found = tokio::select! {
            biased;
            () = shutdown.cancelled() => return finish(args, &Tally::new(args.dead_letters), false),
            found = partitions(&consumer, &watch, kafka, topic) => found?,
        };
        for partition in found {
            assignment
                .add_partition_offset(topic, partition, offset)
                .map_err(TailError::Consumer)?;
        }
    }
    consumer.assign(&assignment).map_err(TailError::Consumer)?;
    info!(partitions = assignment.count(), start = ?offset, group, count = ?args.count, "assigned");

    let deadline = args
        .timeout_s
        .map(|s| Instant::now() + Duration::from_secs(s));
    let expired = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    let mut tally = Tally::new(args.dead_letters);
    let mut timed_out = false;
    let mut stdout = std::io::stdout();
    loop {
        if args.count.is_some_and(|n| tally.counted() >= n) {
            break;
        }
        let received = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = &mut expired => {
                timed_out = true;
                break;
            }
            received = consumer.recv() => received,
        };
        match received {
            Ok(message) => {
                if let Some(p) = handle(&message, args, &mut decoders, &mut tally)
                    && !args.quiet
                {
                    let line = serde_json::to_string(&p).unwrap_or_default();
                    writeln!(stdout, "{line}").map_err(TailError::Stdout)?;
                }
            }
            Err(err) => {
                if let Some(failure) = watch.failure() {
                    return Err(TailError::Refused(failure));
                }
                if let Some((code, reason)) = consumer.client().fatal_error() {
                    warn!(?code, reason, "fatal consumer error");
                    return Err(TailError::Receive(err));
                }
                warn!(error = %err, "receive failed; retrying");
            }
        }
    }

    finish(args, &tally, timed_out)
}

/// Logs and (with `--summary`) prints the summary; `--count` not reached within `--timeout-s`
/// is an error, reported after the summary.
fn finish(args: &TailArgs, tally: &Tally, timed_out: bool) -> Result<TailSummary, TailError> {
    let summary = tally.summary();
    info!(predictions = summary.predictions, timed_out, "done");
    if args.summary {
        let text = summary.to_string();
        let written = if args.quiet {
            write!(std::io::stdout(), "{text}")
        } else {
            write!(std::io::stderr(), "{text}")
        };
        written.map_err(TailError::Stdout)?;
    }
    match (args.count, args.timeout_s) {
        (Some(wanted), Some(timeout_s)) if timed_out && tally.counted() < wanted => {
            Err(TailError::CountNotReached {
                received: tally.counted(),
                wanted,
                timeout_s,
            })
        }
        _ => Ok(summary),
    }
}

/// Decoders of both framings, for the two topics tail reads.
struct Decoders {
    predictions: Decoder<Prediction>,
    dead_letters: Decoder<DeadLetter>,
}

/// Decodes one message into the tally; returns the prediction to print, if it was one. A
/// registry id met for the first time costs one blocking registry request (bounded by
/// --schema-registry-timeout-ms); tail is a reference client, so that is acceptable here.
fn handle(
    message: &BorrowedMessage<'_>,
    args: &TailArgs,
    decoders: &mut Decoders,
    tally: &mut Tally,
) -> Option<Prediction> {
    let payload = message.payload().unwrap_or_default();
    if message.topic() == args.topic {
        match decoders.predictions.decode(payload) {
            Ok((p, _)) if args.since_ms.is_some_and(|since| p.event_time < since) => {}
            Ok((p, _)) => {
                tally.prediction(&p, now_ms());
                return Some(p);
            }
            Err(err) => {
                tally.undecodable += 1;
                warn!(partition = message.partition(), offset = message.offset(), error = %err, "undecodable prediction");
            }
        }
    } else {
        match decoders.dead_letters.decode(payload) {
            Ok((d, _)) => tally.dead_letter(d.reason),
            Err(err) => match reason_header(message) {
                Some(reason) => tally.dead_letter(reason),
                None => {
                    tally.undecodable += 1;
                    debug!(offset = message.offset(), error = %err, "undecodable dead letter");
                }
            },
        }
    }
    None
}

fn reason_header(message: &BorrowedMessage<'_>) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == HEADER_REASON)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The topic's partitions, waiting up to the connect timeout for the broker and the topic.
async fn partitions(
    consumer: &Arc<StreamConsumer<ConnectionWatch>>,
    watch: &ConnectionWatch,
    kafka: &KafkaSettings,
    topic: &str,
) -> Result<Vec<i32>, TailError> {
    let timeout = kafka.connect_timeout();
    let give_up = Instant::now() + timeout;
    loop {
        let client = Arc::clone(consumer);
        let name = topic.to_owned();
        let watch = watch.clone();
        // fetch_metadata blocks the calling thread.
        let fetched = tokio::task::spawn_blocking(move || {
            heart_kafka::fetch_metadata(client.client(), Some(&name), timeout, &watch, &|| {}).map(
                |m| {
                    m.topics()
                        .iter()
                        .filter(|t| t.name() == name && t.error().is_none())
                        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                        .collect::<Vec<i32>>()
                },
            )
        })
        .await
        .unwrap_or(Err(MetadataError::Unreachable(KafkaError::Canceled)));
        match fetched {
            Ok(ids) if !ids.is_empty() => return Ok(ids),
            Ok(_) if Instant::now() < give_up => {
                debug!(topic, "topic not there yet");
                tokio::time::sleep(METADATA_RETRY).await;
            }
            Ok(_) => {
                return Err(TailError::NoTopic {
                    topic: topic.to_owned(),
                    timeout_ms: kafka.connect_timeout_ms,
                });
            }
            Err(MetadataError::Refused(failure)) => return Err(TailError::Refused(failure)),
            Err(MetadataError::Unreachable(source)) => {
                return Err(TailError::Connect {
                    bootstrap: kafka.connection.bootstrap_servers.clone(),
                    timeout_ms: kafka.connect_timeout_ms,
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn prediction(id: &str, level: RiskLevel, version: i64, event_time: i64) -> Prediction {
        Prediction {
            patient_id: id.to_owned(),
            event_time,
            scored_at: event_time,
            probability: 0.5,
            label: 1,
            risk_level: level,
            model_name: "logreg".to_owned(),
            model_version: version,
            imputed_fields: heart_schemas::FieldSet::EMPTY,
            explanation: None,
        }
    }

    fn tail_args(extra: &[&str]) -> TailArgs {
        let config = crate::Config::parse_from(["producer", "tail"].iter().chain(extra));
        match config.command {
            crate::config::Command::Tail(args) => args,
            crate::config::Command::Send(_) => unreachable!(),
        }
    }

    #[test]
    fn tally_counts_levels_models_patients_and_latency() {
        let mut tally = Tally::new(true);
        tally.prediction(&prediction("a", RiskLevel::High, 1, 1000), 1010);
        tally.prediction(&prediction("b", RiskLevel::Low, 1, 1000), 1030);
        tally.prediction(&prediction("a", RiskLevel::High, 2, 1000), 1020);
        tally.dead_letter("out_of_range".to_owned());
        let s = tally.summary();
        assert_eq!((s.predictions, s.distinct_patients), (3, 2));
        assert_eq!(
            s.by_risk_level,
            [
                (RiskLevel::Low, 1),
                (RiskLevel::Medium, 0),
                (RiskLevel::High, 2)
            ]
        );
        assert_eq!(s.by_model[&("logreg".to_owned(), 1)], 2);
        // 3 predictions from the first event (1000 ms) to the last receive (1030 ms).
        assert!(
            (s.records_per_s - 100.0).abs() < 1e-9,
            "{}",
            s.records_per_s
        );
        assert_eq!(s.e2e_latency_ms.map(|l| (l.p50, l.p99)), Some((20.0, 30.0)));
        let text = s.to_string();
        assert!(
            text.contains("by risk level: LOW 1, MEDIUM 0, HIGH 2\n"),
            "{text}"
        );
        assert!(
            text.contains("by model version: logreg v1 2, logreg v2 1\n"),
            "{text}"
        );
        assert!(
            text.contains("dead letters: 1 (out_of_range 1)\n"),
            "{text}"
        );
    }

    #[test]
    fn without_dead_letters_the_summary_omits_them() {
        let s = Tally::new(false).summary();
        assert!(!s.to_string().contains("dead letters"));
        assert!(s.to_string().contains("end-to-end latency: no predictions"));
    }

    #[test]
    fn count_reads_from_the_beginning_so_nothing_is_missed() {
        assert_eq!(
            start_offset(&tail_args(&["--count", "303"])),
            Offset::Beginning
        );
        assert_eq!(
            start_offset(&tail_args(&["--from-beginning"])),
            Offset::Beginning
        );
        assert_eq!(start_offset(&tail_args(&["--group", "g"])), Offset::Stored);
        assert_eq!(start_offset(&tail_args(&[])), Offset::End);
    }
}
