//! Follows the compacted models topic: catch up to its end at start, activate the newest valid
//! version, then verify and swap in every newer version as it is published.

use std::time::{Duration, Instant};

use heart_schemas::{AvroRecord, ModelVersion};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::model_store::{ModelStore, Offer};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// Why following the models topic stopped.
#[derive(Debug, Error)]
pub enum ModelUpdatesError {
    /// The client could not be created or a Kafka call failed.
    #[error("kafka error while reading the models topic")]
    Kafka(#[from] KafkaError),
    /// No broker answered.
    #[error(
        "no Kafka broker answered at {bootstrap} within {secs} s; is the broker up and KAFKA_BOOTSTRAP_SERVERS right?"
    )]
    Unreachable {
        /// The bootstrap servers tried.
        bootstrap: String,
        /// The bound.
        secs: u64,
        /// The client's error.
        source: KafkaError,
    },
    /// The topic does not exist.
    #[error(
        "models topic {topic:?} does not exist: create it (compacted), e.g. with `scripts/kafka start`"
    )]
    MissingTopic {
        /// The topic.
        topic: String,
    },
    /// Catching up took too long.
    #[error("could not read models topic {topic:?} to its end within {secs} s")]
    CatchUpTimeout {
        /// The topic.
        topic: String,
        /// The bound.
        secs: u64,
    },
}

/// Runs until `token` is cancelled. Blocking: call from a dedicated thread.
///
/// # Errors
/// [`ModelUpdatesError`] if the models topic cannot be read at start. Once caught up, broker
/// outages only delay updates (librdkafka reconnects) and the active model keeps serving.
#[tracing::instrument(name = "model_updates", skip_all, fields(topic = %config.models_topic))]
pub fn run(
    config: &Config,
    store: &ModelStore,
    metrics: &Metrics,
    token: &CancellationToken,
) -> Result<(), ModelUpdatesError> {
    let topic = config.models_topic.as_str();
    let consumer: BaseConsumer = config
        .to_rdkafka()
        .set("group.id", format!("{}-models", config.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|source| ModelUpdatesError::Unreachable {
            bootstrap: config.kafka.bootstrap_servers.clone(),
            secs: METADATA_TIMEOUT.as_secs(),
            source,
        })?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ModelUpdatesError::MissingTopic {
            topic: topic.to_owned(),
        });
    }
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for &p in &partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
        let (low, high) = consumer.fetch_watermarks(topic, p, METADATA_TIMEOUT)?;
        if high > low {
            ends.push((p, high));
        }
    }
    consumer.assign(&assignment)?;

    let history = catch_up(&consumer, &ends, metrics, token, topic)?;
    activate_newest(store, history);
    if store.current().is_none() {
        tracing::warn!(model_name = %config.model_name, "no valid model version yet; not ready until one is published");
    }

    while !token.is_cancelled() {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(error)) => {
                tracing::warn!(error = %error, "models topic read failed; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Some(Ok(msg)) => {
                let offset = msg.offset();
                if let Some(version) = decode(msg.payload(), offset, metrics) {
                    report(store.offer(version), offset);
                }
            }
        }
    }
    Ok(())
}

/// Reads every partition up to its high watermark as of startup.
fn catch_up(
    consumer: &BaseConsumer,
    ends: &[(i32, i64)],
    metrics: &Metrics,
    token: &CancellationToken,
    topic: &str,
) -> Result<Vec<(i64, ModelVersion)>, ModelUpdatesError> {
    let started = Instant::now();
    let mut pending: Vec<(i32, i64)> = ends.to_vec();
    let mut history = Vec::new();
    while !pending.is_empty() && !token.is_cancelled() {
        if started.elapsed() > CATCH_UP_TIMEOUT {
            return Err(ModelUpdatesError::CatchUpTimeout {
                topic: topic.to_owned(),
                secs: CATCH_UP_TIMEOUT.as_secs(),
            });
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(error)) => {
                tracing::warn!(error = %error, "models topic read failed; retrying")
            }
            Some(Ok(msg)) => {
                let (partition, offset) = (msg.partition(), msg.offset());
                if let Some(v) = decode(msg.payload(), offset, metrics) {
                    history.push((offset, v));
                }
                pending.retain(|&(p, high)| !(p == partition && offset + 1 >= high));
            }
        }
    }
    tracing::info!(
        versions = history.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "models topic read to its end"
    );
    Ok(history)
}

/// Tries versions newest first until one is valid, so a corrupt newest version does not leave
/// the scorer without a model when an older valid one exists.
fn activate_newest(store: &ModelStore, mut history: Vec<(i64, ModelVersion)>) {
    history.sort_by_key(|(_, v)| std::cmp::Reverse(v.version));
    for (offset, version) in history {
        if store.wants(&version).is_err() {
            continue;
        }
        if let Offer::Activated { .. } = report(store.offer(version), offset) {
            return;
        }
    }
}

fn decode(payload: Option<&[u8]>, offset: i64, metrics: &Metrics) -> Option<ModelVersion> {
    // A compaction tombstone (no payload) deletes a name; there is nothing to activate.
    let bytes = payload?;
    match ModelVersion::decode(bytes) {
        Ok(v) => Some(v),
        Err(error) => {
            metrics.model_swaps.with_label_values(&["rejected"]).inc();
            tracing::warn!(offset, error = %error, "model version rejected: cannot decode");
            None
        }
    }
}

fn report(offer: Offer, offset: i64) -> Offer {
    match &offer {
        Offer::Activated { version } => {
            tracing::info!(model_version = version, offset, "model activated");
        }
        Offer::Ignored { why } => tracing::debug!(offset, why, "model version ignored"),
        Offer::Rejected(error) => {
            tracing::warn!(offset, error = %crate::error::chain(error), "model version rejected; active model unchanged");
        }
    }
    offer
}
