//! Follows the compacted models topic: read it to its end at start, activate the newest valid
//! version, then verify and swap in every newer version as it is published.

use std::time::Duration;

use heart_kafka::{ConnectionWatch, ReadError, Role, client_config, read_to_end};
use heart_schemas::{AvroRecord, ModelVersion};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::model_store::{ModelStore, Offer};

const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// How long to wait before reading again when the cluster refused the replica.
const REFUSED_RETRY: Duration = Duration::from_secs(2);

/// Why following the models topic stopped.
#[derive(Debug, Error)]
pub enum ModelUpdatesError {
    /// The client could not be configured or created.
    #[error("cannot create the models topic reader")]
    Client(#[from] heart_kafka::ClientConfigError),
    /// The client could not be created.
    #[error("cannot create the models topic reader")]
    Kafka(#[from] KafkaError),
    /// The topic could not be read to its end at start.
    #[error(transparent)]
    Read(#[from] ReadError),
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
    watch: &ConnectionWatch,
    token: &CancellationToken,
) -> Result<(), ModelUpdatesError> {
    let topic = config.models_topic.as_str();
    watch.identify(&config.kafka);
    let consumer: BaseConsumer<ConnectionWatch> =
        client_config(&config.kafka, "heart-scorer-models", Role::Reader, &[])?
            .create_with_context(watch.clone())?;
    let mut history = Vec::new();
    // A cluster that refuses the replica's credentials may accept them later (a user created,
    // a certificate fixed): keep asking, not ready meanwhile; the watch logs why.
    let summary = loop {
        let read = read_to_end(
            &consumer,
            topic,
            &config.kafka.bootstrap_servers,
            CATCH_UP_TIMEOUT,
            watch,
            &|| token.is_cancelled(),
            |msg| {
                if let Some(v) = decode(msg.payload(), msg.offset(), metrics) {
                    history.push((msg.offset(), v));
                }
            },
        );
        match read {
            Err(ReadError::Refused(_)) => {
                if !crate::consume::sleep_unless_cancelled(REFUSED_RETRY, token) {
                    return Ok(());
                }
            }
            other => break other?,
        }
    };
    tracing::info!(
        versions = history.len(),
        elapsed_ms = summary.elapsed.as_millis() as u64,
        "models topic read to its end"
    );
    activate_newest(store, history);
    if store.current().is_none() {
        tracing::warn!(model_name = %config.model_name, "no valid model version yet; not ready until one is published");
    }

    let mut errors = heart_kafka::Throttle::new(Duration::from_secs(10));
    while !token.is_cancelled() {
        match consumer.poll(Duration::from_millis(200)) {
            None | Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(error)) => {
                if let Some(suppressed) = errors.allow() {
                    tracing::warn!(error = %error, suppressed, "models topic read failed; retrying");
                }
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

/// Tries versions newest first until one is valid, so a corrupt newest version does not leave
/// the scorer without a model when an older valid one exists; the shadow version, older or
/// newer, is loaded on the way (once one is active, `wants` refuses every other older one).
fn activate_newest(store: &ModelStore, mut history: Vec<(i64, ModelVersion)>) {
    history.sort_by_key(|(_, v)| std::cmp::Reverse(v.version));
    for (offset, version) in history {
        if store.wants(&version).is_ok() {
            report(store.offer(version), offset);
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
        Offer::Shadowed { version } => {
            tracing::info!(model_version = version, offset, "shadow model loaded");
        }
        Offer::Ignored { why } => tracing::debug!(offset, why, "model version ignored"),
        Offer::Rejected(error) => {
            tracing::warn!(offset, error = %heart_kafka::telemetry::chain(error), "model version rejected; active model unchanged");
        }
    }
    offer
}
