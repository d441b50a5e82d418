//! Publishing: model versions on the compacted models topic, keyed by name and version.
//!
//! Versions are assigned here: read the topic to its end, take the highest version for the name,
//! publish max + 1. That assumes one publisher per model name at a time (two concurrent
//! publishers could pick the same number; the scorer keeps whichever arrives last).

use std::path::Path;

use heart_kafka::{ClientConfigError, ConnectionWatch, Role, client_config, read_to_end};
use heart_model::Model;
use heart_schemas::{AvroRecord, ModelVersion};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use serde::Serialize;
use tracing::{info, warn};

use crate::config::KafkaSettings;
use crate::error::PublishError;

/// The librdkafka `client.id` of both clients.
const CLIENT_ID: &str = "heart-trainer";

/// Every trainer client gives up on a broker connection within the Kafka bound (librdkafka
/// accepts no less than 1000 ms here).
fn tuning(kafka: &KafkaSettings) -> Vec<(&'static str, String)> {
    vec![(
        "socket.connection.setup.timeout.ms",
        kafka.kafka_timeout_ms.max(1000).to_string(),
    )]
}

/// The publisher: an idempotent producer whose deliveries time out with the Kafka bound.
///
/// # Errors
/// [`ClientConfigError`] for a malformed `--kafka-property` or one setting an owned key.
pub fn producer_config(kafka: &KafkaSettings) -> Result<ClientConfig, ClientConfigError> {
    let mut tuning = tuning(kafka);
    tuning.push(("message.timeout.ms", kafka.kafka_timeout_ms.to_string()));
    client_config(
        &kafka.connection,
        CLIENT_ID,
        Role::IdempotentProducer,
        &tuning,
    )
}

/// The lister: an assign-only read_committed reader that never commits ([`read_to_end`]).
///
/// # Errors
/// [`ClientConfigError`] for a malformed `--kafka-property` or one setting an owned key.
pub fn reader_config(kafka: &KafkaSettings) -> Result<ClientConfig, ClientConfigError> {
    client_config(&kafka.connection, CLIENT_ID, Role::Reader, &tuning(kafka))
}

/// One model version found on the topic.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Model name.
    pub name: String,
    /// Version.
    pub version: i64,
    /// Algorithm.
    pub algorithm: String,
    /// Created at, ms since the epoch.
    pub created_at: i64,
    /// Trainer version.
    pub code_version: String,
    /// Mean cross-validated ROC-AUC, if recorded.
    pub roc_auc: Option<f64>,
}

/// A published version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The version assigned.
    pub version: i64,
    /// Where it landed.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// Reads a model file and publishes it (see [`publish`]).
///
/// # Errors
/// [`PublishError`] if the file is unreadable, fails verification, or Kafka fails.
pub fn publish_file(path: &Path, kafka: &KafkaSettings) -> Result<Published, PublishError> {
    let bytes = std::fs::read(path).map_err(|source| PublishError::Read {
        path: path.to_owned(),
        source,
    })?;
    let version = ModelVersion::decode(&bytes).map_err(|source| PublishError::Decode {
        path: path.to_owned(),
        source,
    })?;
    publish(version, kafka)
}

/// Verifies `version` as the scorer would (checksum, structure, golden vectors), assigns it the
/// next version number for its name and produces it, keyed `<name>/<version>`, with an
/// idempotent producer.
///
/// # Errors
/// [`PublishError::Verify`] for an artifact that fails its own checks (nothing is published), or
/// the Kafka error.
pub fn publish(version: ModelVersion, kafka: &KafkaSettings) -> Result<Published, PublishError> {
    Model::load(version.clone())?;
    let existing = list(kafka)?;
    let max = existing
        .iter()
        .filter(|l| l.name == version.name)
        .map(|l| l.version)
        .max()
        .unwrap_or(0);
    let mut version = version;
    version.version = max + 1;
    let bytes = version.encode()?;
    let watch = ConnectionWatch::new(&kafka.connection);
    let producer: FutureProducer<ConnectionWatch> = producer_config(kafka)?
        .create_with_context(watch.clone())
        .map_err(|e| kafka_error("create producer", kafka, e))?;
    let key = heart_schemas::topics::model_key(&version.name, version.version);
    let record = FutureRecord::to(&kafka.topic)
        .key(key.as_bytes())
        .payload(&bytes);
    let delivery = runtime()?
        .block_on(producer.send(record, kafka.timeout()))
        .map_err(|(e, _)| match watch.failure() {
            Some(failure) => PublishError::Refused(failure),
            None => kafka_error("produce", kafka, e),
        })?;
    info!(
        topic = %kafka.topic,
        partition = delivery.partition,
        offset = delivery.offset,
        model_version = version.version,
        "model published"
    );
    Ok(Published {
        version: version.version,
        partition: delivery.partition,
        offset: delivery.offset,
    })
}

/// Reads the models topic from the beginning to where its end was when the read began, as a
/// read_committed consumer: an empty topic, or one whose last offsets are transaction markers,
/// is read to its end at once.
///
/// # Errors
/// [`PublishError::ReadTopic`] if no broker answers, the topic is missing or its end is not reached
/// within the Kafka bound; [`PublishError::Client`] or [`PublishError::Kafka`] if the consumer
/// cannot be created.
pub fn list(kafka: &KafkaSettings) -> Result<Vec<Listed>, PublishError> {
    let watch = ConnectionWatch::new(&kafka.connection);
    let consumer: BaseConsumer<ConnectionWatch> = reader_config(kafka)?
        .create_with_context(watch.clone())
        .map_err(|e| kafka_error("create consumer", kafka, e))?;
    let mut listed = Vec::new();
    read_to_end(
        &consumer,
        &kafka.topic,
        &kafka.connection.bootstrap_servers,
        kafka.timeout(),
        &watch,
        &|| false,
        |m| {
            // A tombstone (no payload) deletes a name; compaction removes it eventually.
            let Some(payload) = m.payload() else { return };
            match ModelVersion::decode(payload) {
                Ok(v) => listed.push(Listed {
                    partition: m.partition(),
                    offset: m.offset(),
                    roc_auc: v.metrics.get("cv.roc_auc.mean").copied(),
                    name: v.name,
                    version: v.version,
                    algorithm: v.algorithm,
                    created_at: v.created_at,
                    code_version: v.code_version,
                }),
                Err(error) => warn!(
                    topic = %kafka.topic,
                    partition = m.partition(),
                    offset = m.offset(),
                    error = %error,
                    "skipping a message that is not a model version"
                ),
            }
        },
    )?;
    Ok(listed)
}

fn runtime() -> Result<tokio::runtime::Runtime, PublishError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PublishError::Runtime)
}

fn kafka_error(operation: &'static str, kafka: &KafkaSettings, source: KafkaError) -> PublishError {
    PublishError::Kafka {
        operation,
        brokers: kafka.connection.bootstrap_servers.clone(),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn kafka() -> KafkaSettings {
        let mut k = KafkaSettings::plaintext("127.0.0.1:1", "models");
        k.kafka_timeout_ms = 500;
        k
    }

    #[test]
    fn security_settings_and_extra_properties_pass_through() {
        let mut k = kafka();
        k.connection.security_protocol = Some("sasl_ssl".into());
        k.connection.sasl_password = Some("secret".into());
        k.connection.properties = vec![
            "debug=eos".into(),
            "msg".into(),
            "socket.keepalive.enable=true".into(),
            "socket.connection.setup.timeout.ms=2000".into(),
        ];
        let c = reader_config(&k).unwrap();
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.password"), Some("secret"));
        assert_eq!(c.get("debug"), Some("eos,msg"));
        assert_eq!(c.get("socket.keepalive.enable"), Some("true"));
        // A property overrides the trainer's own default.
        assert_eq!(c.get("socket.connection.setup.timeout.ms"), Some("2000"));
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
        assert_eq!(c.get("enable.partition.eof"), Some("true"));
    }

    #[test]
    fn producer_is_idempotent_with_acks_all_and_times_out_with_the_bound() {
        let c = producer_config(&kafka()).unwrap();
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("message.timeout.ms"), Some("500"));
        assert_eq!(c.get("bootstrap.servers"), Some("127.0.0.1:1"));
    }

    #[test]
    fn owned_keys_are_refused() {
        let mut k = kafka();
        k.connection.properties = vec!["acks=1".into()];
        assert!(matches!(
            producer_config(&k),
            Err(ClientConfigError::Owned { ref key, .. }) if key == "acks"
        ));
        k.connection.properties = vec!["enable.auto.commit=true".into()];
        assert!(matches!(
            reader_config(&k),
            Err(ClientConfigError::Owned { ref key, .. }) if key == "enable.auto.commit"
        ));
    }

    #[test]
    fn an_artifact_failing_verification_is_refused_before_any_kafka_call() {
        let v = ModelVersion {
            name: "heart-disease".into(),
            version: 0,
            algorithm: "logistic_regression".into(),
            created_at: 0,
            code_version: "t".into(),
            metrics: Default::default(),
            feature_spec: vec![],
            payload_format: heart_model::PAYLOAD_FORMAT_V1.into(),
            payload: vec![1, 2, 3],
            checksum: "not the checksum".into(),
            mlflow_run_id: None,
            mlflow_model_version: None,
        };
        // The broker address is unreachable: reaching Kafka would be a different error.
        assert!(matches!(
            publish(v, &kafka()),
            Err(PublishError::Verify(
                heart_model::ModelLoadError::ChecksumMismatch { .. }
            ))
        ));
    }
}
