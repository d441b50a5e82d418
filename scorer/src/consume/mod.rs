//! The Kafka pipeline, one stage a file; a batch travels through them in this order:
//!
//! ```text
//! [patients] ─▶ fetch ──records──▶ route ──outputs──▶ handoff ─▶ output ─▶ [predictions]
//!               (poll, batch)      (score or          (bounded    (produce;  [dead-letters]
//!                                   dead-letter)       queue)      txn.rs: commit offsets
//!                                                                  in the transaction)
//! ```
//!
//! Fetch and route run on one thread, output on another, so the next batch is fetched and
//! scored while the previous one's deliveries and commit complete. The hand-off between them
//! is bounded (`--max-in-flight-batches`), so a slow output side stops the fetching instead of
//! buffering. A failed batch is never retried inside its transaction: the transaction aborts,
//! every later batch already fetched is discarded, and fetching rewinds to the committed
//! offsets (librdkafka's `examples/transactions.c`).
//!
//! Exactly-once, the output stage has `--transactional-producers` (2) that take turns, one
//! commit group each. A transaction that starts the moment the previous one committed finds
//! its markers still being written: the broker answers CONCURRENT_TRANSACTIONS and librdkafka
//! retries after a fixed 20 ms. The other producer's last transaction ended a commit earlier.
//! Commits stay strictly one after another, so the offsets committed only ever move forward
//! (the group coordinator also orders transactional offset commits by their place in its log).

mod batch;
mod fetch;
mod handoff;
mod output;
mod route;
mod txn;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use heart_schemas::EncodeError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Delivery, OutputFramingArg};
use crate::metrics::Metrics;
use crate::model_store::ModelStore;
use crate::score::Rules;
use crate::status::{PipelineStatus, Stage};
use crate::writer_schemas::PatientDecoder;
use fetch::{FetchContext, FetchStage};
use handoff::Handoff;
use heart_registry::{Registry, RegistryError};
use heart_schemas::{AvroRecord, DeadLetter, Framing, Prediction};
use output::OutputStage;
use route::OutputFraming;
use txn::OutputProducer;

/// The producer's `message.max.bytes` unless the user sets it.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Why the pipeline stopped with an error (a clean drain returns `Ok`).
#[derive(Debug, Error)]
pub enum ConsumeError {
    /// Creating or configuring a Kafka client failed.
    #[error("kafka client setup failed")]
    Setup(#[source] KafkaError),
    /// The client configuration is invalid.
    #[error(transparent)]
    Config(#[from] heart_kafka::ClientConfigError),
    /// The producer became unusable and could not be recreated.
    #[error(
        "the output producer could not be recreated after {attempts} attempts; this replica exits so it can be restarted"
    )]
    Recovery {
        /// Attempts made (--recovery-attempts).
        attempts: u32,
        /// The last error.
        source: KafkaError,
    },
    /// A record could not be encoded (a bug, not bad input).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The output subjects could not be resolved in the Schema Registry.
    #[error("output schema {subject:?} in the schema registry: {source}")]
    OutputSchema {
        /// The subject.
        subject: String,
        /// Why.
        source: heart_registry::RegistryError,
    },
    /// A pipeline thread panicked.
    #[error("the pipeline's {stage} stage panicked")]
    Panicked {
        /// Which stage.
        stage: &'static str,
    },
}

/// Raises the calling thread's niceness, before any Kafka client exists, so that the output
/// thread and librdkafka's threads inherit it (Linux niceness is per thread).
fn lower_priority(niceness: u8) {
    if niceness == 0 {
        return;
    }
    // thread-priority maps its 0..=99 scale onto niceness 19..=-20, truncating.
    let value = (99 * (19 - i32::from(niceness.min(19))) / 39) as u8;
    let result = thread_priority::ThreadPriorityValue::try_from(value)
        .map_err(|e| e.to_string())
        .and_then(|v| {
            thread_priority::set_current_thread_priority(
                thread_priority::ThreadPriority::Crossplatform(v),
            )
            .map_err(|e| format!("{e:?}"))
        });
    if let Err(error) = result {
        tracing::warn!(
            niceness,
            error,
            "cannot lower the pipeline's priority; it runs at normal priority"
        );
    }
}

/// Runs the pipeline until `token` is cancelled, then drains: the batch in hand is finished and
/// committed, and the consumer leaves the group. Blocking: call from a dedicated thread.
///
/// Waits for the model store to hold a model before subscribing, so no record is consumed that
/// cannot be scored.
///
/// # Errors
/// [`ConsumeError`] when a client cannot be created or the producer cannot be recovered.
#[tracing::instrument(name = "consume", skip_all, fields(topic = %config.patients_topic, group = %config.group_id))]
pub fn run(
    config: &Config,
    rules: Rules,
    store: &ModelStore,
    metrics: &Metrics,
    status: &PipelineStatus,
    token: &CancellationToken,
) -> Result<(), ConsumeError> {
    while store.current().is_none() {
        if token.is_cancelled() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let registry = config
        .registry()
        .map_err(|e| ConsumeError::OutputSchema {
            subject: String::new(),
            source: e,
        })?
        .map(Arc::new);
    let framing = match (&registry, config.output_framing) {
        (Some(registry), OutputFramingArg::Confluent) => {
            match output_framing(config, registry, status, token)? {
                Some(framing) => framing,
                None => return Ok(()),
            }
        }
        _ => OutputFraming::default(),
    };
    let mut decoder = PatientDecoder::new(registry, metrics.clone());
    lower_priority(config.pipeline_niceness);
    let transactional = config.delivery == Delivery::ExactlyOnce;
    let max_output_bytes = config
        .producer_config(0)?
        .get("message.max.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
    let call_timeout = Duration::from_millis(config.transaction_timeout_ms);
    let watch = status.connection().clone();
    watch.identify(&config.kafka);
    let producers = (0..config.output_producers())
        .map(|i| {
            OutputProducer::create(config.producer_config(i)?, transactional, watch.clone())
                .map_err(ConsumeError::Setup)
        })
        .collect::<Result<Vec<_>, ConsumeError>>()?;
    if !wait_for_output_topics(config, &producers[0], status, token) {
        return Ok(());
    }
    for producer in &producers {
        producer
            .init(call_timeout.max(Duration::from_secs(30)))
            .map_err(ConsumeError::Setup)?;
    }

    let handoff = Arc::new(Handoff::new(config.max_in_flight_batches));
    let context = FetchContext {
        metrics: metrics.clone(),
        topic: config.patients_topic.clone(),
        handoff: Arc::clone(&handoff),
        open: Mutex::new(None),
        revoke_wait: call_timeout,
        held: Mutex::default(),
        watch,
        paused: AtomicBool::new(false),
        unstarted: Mutex::new(None),
    };
    let consumer: BaseConsumer<FetchContext> = config
        .consumer_config()?
        .create_with_context(context)
        .map_err(ConsumeError::Setup)?;
    consumer
        .subscribe(&[&config.patients_topic])
        .map_err(ConsumeError::Setup)?;
    tracing::info!(delivery = ?config.delivery, max_output_bytes, "consumer subscribed");
    status.set_running(true);

    let stop = token.child_token();
    let drain_deadline = OnceLock::new();
    let result = std::thread::scope(|scope| {
        let output = OutputStage {
            config,
            consumer: &consumer,
            handoff: &handoff,
            metrics,
            status,
            drain_deadline: &drain_deadline,
            stop: &stop,
            store,
            drift: std::cell::RefCell::new(None),
        };
        let out = std::thread::Builder::new()
            .name("output".into())
            .spawn_scoped(scope, move || output.run(producers))
            .map_err(|_| ConsumeError::Panicked { stage: "output" })?;
        let fetch = FetchStage {
            consumer: &consumer,
            store,
            rules,
            max_output_bytes,
            framing,
            batch_max_records: config.batch_max_records,
            batch_linger: Duration::from_millis(config.batch_linger_ms),
            drain_timeout: config.drain_timeout(),
            drain_deadline: &drain_deadline,
            stop: &stop,
            status,
            stall_timeout: Duration::from_millis(config.stall_timeout_ms),
        };
        let fetched = fetch.run(&mut decoder);
        // Whatever stopped the fetch stage, the output stage finishes what it was handed.
        drain_deadline.get_or_init(|| std::time::Instant::now() + config.drain_timeout());
        handoff.close();
        let output = out
            .join()
            .map_err(|_| ConsumeError::Panicked { stage: "output" })?;
        fetched.and(output)
    });
    status.set_running(false);
    // Leave the group now, so the partitions move to another replica at once. (Closing the
    // consumer can block while no broker answers; the process-wide drain bound covers that.)
    consumer.unsubscribe();
    drop(consumer);
    if result.is_ok() {
        tracing::info!("drained and left the consumer group");
    }
    result
}

/// Waits, not ready, until the topics the pipeline writes exist. Without them librdkafka holds
/// every output until `message.timeout.ms` and each batch fails with "not acknowledged", which
/// names no topic. A cluster that refuses this replica (credentials, certificate) is waited
/// out too: readiness says why, and the connection watch logs it once per interval. A broker
/// that does not answer is not waited for here: the pipeline's own retries and readiness
/// cover it. False if shut down meanwhile.
fn wait_for_output_topics(
    config: &Config,
    producer: &OutputProducer,
    status: &PipelineStatus,
    token: &CancellationToken,
) -> bool {
    const RECHECK: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(30);
    let mut topics = vec![
        config.predictions_topic.as_str(),
        config.dead_letter_topic.as_str(),
    ];
    if config.has_shadow() {
        topics.push(config.shadow_topic.as_str());
    }
    let mut logged: Option<std::time::Instant> = None;
    let watch = status.connection();
    loop {
        let mut turned_away = false;
        let refused: Vec<String> = topics
            .iter()
            .filter_map(|topic| {
                let metadata = match heart_kafka::fetch_metadata(
                    producer.inner.client(),
                    Some(topic),
                    Duration::from_secs(5),
                    watch,
                    // Nothing polls the producer before the pipeline starts: serve its errors.
                    &|| producer.inner.poll(Duration::ZERO),
                ) {
                    Ok(m) => m,
                    Err(heart_kafka::MetadataError::Refused(_)) => {
                        turned_away = true;
                        return None;
                    }
                    Err(heart_kafka::MetadataError::Unreachable(_)) => return None,
                };
                let t = metadata.topics().iter().find(|t| t.name() == *topic)?;
                t.error()
                    .map(|e| format!("{topic} ({})", RDKafkaErrorCode::from(e)))
            })
            .collect();
        if refused.is_empty() && !turned_away {
            status.set_problem(Stage::Topics, None);
            return true;
        }
        if refused.is_empty() {
            // The watch's failure is the readiness problem meanwhile.
            if !sleep_unless_cancelled(RECHECK, token) {
                return false;
            }
            continue;
        }
        let problem = format!(
            "cannot write output topic {}: create it (scripts/kafka start creates the project's \
             topics) or point --predictions-topic / --dead-letter-topic / --shadow-topic at one \
             that exists",
            refused.join(", ")
        );
        if logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            tracing::error!(topics = ?refused, "{problem}; not ready, checking again every second");
            logged = Some(std::time::Instant::now());
        }
        status.set_problem(Stage::Topics, Some(problem));
        if !sleep_unless_cancelled(RECHECK, token) {
            return false;
        }
    }
}

/// Sleeps `wait` in short steps; false as soon as `token` is cancelled.
pub(crate) fn sleep_unless_cancelled(wait: Duration, token: &CancellationToken) -> bool {
    let until = std::time::Instant::now() + wait;
    while std::time::Instant::now() < until {
        if token.is_cancelled() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !token.is_cancelled()
}

/// The registry ids of this build's Prediction and DeadLetter schemas under their topics'
/// subjects (TopicNameStrategy), registered first with `--schema-registry-auto-register`. While
/// the registry is unavailable it retries, not ready; `None` if shut down meanwhile.
///
/// # Errors
/// [`ConsumeError::OutputSchema`] when the registry answers that a subject lacks the schema (or
/// refuses it): the message says which, and what to do.
fn output_framing(
    config: &Config,
    registry: &Registry,
    status: &PipelineStatus,
    token: &CancellationToken,
) -> Result<Option<OutputFraming>, ConsumeError> {
    let id = |topic: &str, schema: &str| -> Result<Option<u32>, ConsumeError> {
        let subject = heart_registry::value_subject(topic);
        let mut backoff = Duration::from_millis(200);
        loop {
            let result = if config.schema_registry_auto_register {
                registry.register(&subject, schema)
            } else {
                registry.lookup(&subject, schema)
            };
            match result {
                Ok(id) => {
                    status.set_problem(Stage::Registry, None);
                    tracing::info!(subject, schema_id = id, "output schema resolved");
                    return Ok(Some(id));
                }
                Err(error) if error.is_transient() => {
                    status.set_problem(
                        Stage::Registry,
                        Some(format!(
                            "output subject {subject} cannot be resolved: {error}"
                        )),
                    );
                    tracing::warn!(subject, error = %error, "schema registry unavailable; retrying");
                    let deadline = std::time::Instant::now() + backoff;
                    while std::time::Instant::now() < deadline {
                        if token.is_cancelled() {
                            return Ok(None);
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(error) => {
                    let source = match error {
                        RegistryError::NotFound {
                            what,
                            code,
                            message,
                        } => RegistryError::NotFound {
                            what: format!(
                                "{what}: register this build's schema under {subject:?} (schemas/avro/), or start with --schema-registry-auto-register"
                            ),
                            code,
                            message,
                        },
                        other => other,
                    };
                    return Err(ConsumeError::OutputSchema { subject, source });
                }
            }
        }
    };
    let Some(prediction) = id(&config.predictions_topic, Prediction::schema_info().text)? else {
        return Ok(None);
    };
    let Some(dead_letter) = id(&config.dead_letter_topic, DeadLetter::schema_info().text)? else {
        return Ok(None);
    };
    Ok(Some(OutputFraming {
        prediction: Framing::Confluent { id: prediction },
        dead_letter: Framing::Confluent { id: dead_letter },
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    /// The niceness of the calling thread, from /proc (field 19 of its stat line).
    fn niceness() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_pipeline_thread_gets_the_niceness_asked_for() {
        for want in [5u8, 10, 19] {
            let got = std::thread::spawn(move || {
                super::lower_priority(want);
                niceness()
            })
            .join()
            .unwrap();
            assert_eq!(got, i32::from(want));
        }
    }
}
