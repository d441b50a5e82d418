//! Publishing: model versions on the compacted models topic, keyed by model name.
//!
//! Versions are assigned here: read the topic to its end, take the highest version for the name,
//! publish max + 1. That assumes one publisher per model name at a time (two concurrent
//! publishers could pick the same number; the scorer keeps whichever arrives last).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use heart_model::Model;
use heart_schemas::{AvroRecord, ModelVersion};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::Serialize;
use tracing::{info, warn};

use crate::config::KafkaArgs;
use crate::error::PublishError;

/// What a client is for; decides the role-specific settings in [`client_config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Idempotent producer, acks from all in-sync replicas.
    Producer,
    /// Reads the topic from the beginning without a consumer group offset.
    Reader,
}

/// The one place the rdkafka configuration is built.
fn client_config(kafka: &KafkaArgs, role: Role) -> ClientConfig {
    let timeout = kafka.kafka_timeout_ms.to_string();
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", "heart-trainer")
        .set("socket.connection.setup.timeout.ms", &timeout);
    for (key, value) in kafka.passthrough() {
        c.set(key, value);
    }
    match role {
        Role::Producer => {
            c.set("enable.idempotence", "true")
                .set("acks", "all")
                .set("message.timeout.ms", &timeout);
        }
        Role::Reader => {
            // Offsets are never committed: every read starts at the beginning.
            c.set("group.id", "heart-trainer-reader")
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("auto.offset.reset", "earliest");
        }
    }
    c
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
pub fn publish_file(path: &Path, kafka: &KafkaArgs) -> Result<Published, PublishError> {
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
/// next version number for its name and produces it, keyed by name, with an idempotent producer.
///
/// # Errors
/// [`PublishError::Verify`] for an artifact that fails its own checks (nothing is published), or
/// the Kafka error.
pub fn publish(version: ModelVersion, kafka: &KafkaArgs) -> Result<Published, PublishError> {
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
    let producer: FutureProducer = client_config(kafka, Role::Producer)
        .create()
        .map_err(|e| kafka_error("create producer", kafka, e))?;
    let timeout = Duration::from_millis(kafka.kafka_timeout_ms);
    let record = FutureRecord::to(&kafka.topic)
        .key(version.name.as_bytes())
        .payload(&bytes);
    let delivery = runtime()?
        .block_on(producer.send(record, timeout))
        .map_err(|(e, _)| kafka_error("produce", kafka, e))?;
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

/// Reads the models topic from the beginning to its current end.
///
/// # Errors
/// [`PublishError::NoTopic`] if the topic is missing, [`PublishError::Timeout`] if its end is
/// not reached in time, or the Kafka error.
pub fn list(kafka: &KafkaArgs) -> Result<Vec<Listed>, PublishError> {
    let timeout = Duration::from_millis(kafka.kafka_timeout_ms);
    let consumer: BaseConsumer = client_config(kafka, Role::Reader)
        .create()
        .map_err(|e| kafka_error("create consumer", kafka, e))?;
    let metadata = consumer
        .fetch_metadata(Some(&kafka.topic), timeout)
        .map_err(|e| kafka_error("fetch metadata", kafka, e))?;
    let no_topic = || PublishError::NoTopic {
        topic: kafka.topic.clone(),
        brokers: kafka.bootstrap_servers.clone(),
    };
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == kafka.topic)
        .ok_or_else(no_topic)?;
    if topic.error().is_some() || topic.partitions().is_empty() {
        return Err(no_topic());
    }
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in topic.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(&kafka.topic, p.id(), timeout)
            .map_err(|e| kafka_error("fetch watermarks", kafka, e))?;
        if high > low {
            assignment
                .add_partition_offset(&kafka.topic, p.id(), Offset::Beginning)
                .map_err(|e| kafka_error("assign", kafka, e))?;
            ends.insert(p.id(), high);
        }
    }
    let mut listed = Vec::new();
    if ends.is_empty() {
        return Ok(listed);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| kafka_error("assign", kafka, e))?;
    let deadline = Instant::now() + timeout;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(PublishError::Timeout {
                topic: kafka.topic.clone(),
                timeout_ms: kafka.kafka_timeout_ms,
            });
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = message.map_err(|e| kafka_error("consume", kafka, e))?;
        if ends
            .get(&m.partition())
            .is_some_and(|&end| m.offset() + 1 >= end)
        {
            ends.remove(&m.partition());
        }
        // A tombstone (no payload) deletes a name; compaction removes it eventually.
        let Some(payload) = m.payload() else { continue };
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
    }
    Ok(listed)
}

fn runtime() -> Result<tokio::runtime::Runtime, PublishError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PublishError::Runtime)
}

fn kafka_error(operation: &'static str, kafka: &KafkaArgs, source: KafkaError) -> PublishError {
    PublishError::Kafka {
        operation,
        brokers: kafka.bootstrap_servers.clone(),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn kafka() -> KafkaArgs {
        KafkaArgs {
            bootstrap_servers: "127.0.0.1:1".into(),
            topic: "models".into(),
            kafka_timeout_ms: 500,
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            properties: Vec::new(),
        }
    }

    #[test]
    fn security_settings_and_extra_properties_pass_through() {
        let mut k = kafka();
        k.security_protocol = Some("sasl_ssl".into());
        k.sasl_password = Some("secret".into());
        k.properties = vec![
            "debug=eos".into(),
            "msg".into(),
            "socket.keepalive.enable=true".into(),
        ];
        let c = client_config(&k, Role::Reader);
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.password"), Some("secret"));
        assert_eq!(c.get("debug"), Some("eos,msg"));
        assert_eq!(c.get("socket.keepalive.enable"), Some("true"));
    }

    #[test]
    fn producer_is_idempotent_with_acks_all() {
        let c = client_config(&kafka(), Role::Producer);
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("bootstrap.servers"), Some("127.0.0.1:1"));
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
            payload_format: heart_model::PAYLOAD_FORMAT.into(),
            payload: vec![1, 2, 3],
            checksum: "not the checksum".into(),
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
