//! Broker helpers: connect with a bounded timeout (failing clearly without a broker), one
//! compacted topic per test, a trained model version, and reading a record back.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use heart_model::Algorithm;
use heart_schemas::ModelVersion;
use heart_trainer::config::KafkaSettings;
use heart_trainer::{data, train};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(15);

/// A reachable broker.
pub struct Broker {
    bootstrap: String,
}

impl Broker {
    /// Connects, or panics with what to do.
    pub fn connect() -> Self {
        let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS")
            .unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
        if let Err(e) = consumer.fetch_metadata(None, TIMEOUT) {
            panic!(
                "no Kafka broker reachable at KAFKA_BOOTSTRAP_SERVERS={bootstrap} within {TIMEOUT:?} ({e}); \
                 start one with scripts/kafka start"
            );
        }
        Self { bootstrap }
    }

    /// Creates a fresh compacted single-partition topic and returns settings pointing at it.
    pub fn new_topic(&self, test: &str) -> KafkaSettings {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let topic = format!("models-test-{test}-{}-{nanos}", std::process::id());
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .unwrap();
        let new =
            NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let results = rt
            .block_on(admin.create_topics(
                [&new],
                &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
            ))
            .unwrap();
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
        KafkaSettings::plaintext(&self.bootstrap, topic)
    }

    /// Writes `(key, value)` in one transaction of its own, then commits or aborts it; either
    /// way the topic then ends in a transaction marker.
    pub fn write_in_transaction(&self, topic: &str, key: &[u8], value: &[u8], commit: bool) {
        let kafka = heart_kafka::KafkaArgs::plaintext(&self.bootstrap);
        let id = format!("{topic}-writer-{commit}");
        let producer: BaseProducer = heart_kafka::client_config(
            &kafka,
            "heart-trainer-broker-test",
            heart_kafka::Role::TransactionalProducer {
                transactional_id: &id,
            },
            &[],
        )
        .unwrap()
        .create()
        .unwrap();
        producer.init_transactions(TIMEOUT).unwrap();
        producer.begin_transaction().unwrap();
        producer
            .send(BaseRecord::to(topic).key(key).payload(value))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(TIMEOUT).unwrap();
        if commit {
            producer.commit_transaction(TIMEOUT).unwrap();
        } else {
            producer.abort_transaction(TIMEOUT).unwrap();
        }
    }

    /// Reads the record at `offset` of partition 0: (key, value).
    pub fn read_one(&self, topic: &str, offset: i64) -> (Vec<u8>, Vec<u8>) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", "heart-trainer-broker-test")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let deadline = std::time::Instant::now() + TIMEOUT;
        while std::time::Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                let m = m.unwrap();
                return (
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().unwrap_or_default().to_vec(),
                );
            }
        }
        panic!("no record at {topic}/0@{offset} within {TIMEOUT:?}");
    }
}

/// The Cleveland file, read in place: `HEART_DATA` (`scripts/test` sets it), else the shared copy.
pub fn cleveland() -> PathBuf {
    std::env::var_os("HEART_DATA").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/data/processed.cleveland.data")
        },
        PathBuf::from,
    )
}

/// A logistic-regression model version trained on Cleveland (version 0), built once.
pub fn trained_version() -> ModelVersion {
    static VERSION: OnceLock<ModelVersion> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let data = data::load(&cleveland()).unwrap();
            let opts = train::TrainOptions {
                name: "heart-disease".into(),
                seed: 42,
                folds: 3,
                algorithms: vec![Algorithm::LogisticRegression],
            };
            let outcome = train::train(&data, &opts, &indicatif::ProgressBar::hidden()).unwrap();
            outcome
                .artifact
                .to_version(0, 1_700_000_000_000, heart_trainer::CODE_VERSION)
                .unwrap()
        })
        .clone()
}

/// Runs the trainer binary against `kafka`; panics with its output unless it succeeds.
pub fn run_trainer(args: &[&str], kafka: &KafkaSettings) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .env(
            "KAFKA_BOOTSTRAP_SERVERS",
            &kafka.connection.bootstrap_servers,
        )
        .env("TRAINER_TOPIC", &kafka.topic)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "trainer {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
