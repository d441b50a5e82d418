//! Helpers: the broker address, a fresh topic per test, and reading a topic back whole.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// How long any broker operation in a test may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// `KAFKA_BOOTSTRAP_SERVERS`, or the address `scripts/kafka start` uses.
pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// Creates a topic named after the test, unique per run, and waits until it is usable.
///
/// # Panics
/// With a message saying how to start a broker, if none answers within 10 s.
pub async fn fresh_topic(test: &str, partitions: i32) -> String {
    let bootstrap = bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client config is valid");
    if let Err(err) = admin.inner().fetch_metadata(None, Duration::from_secs(10)) {
        panic!(
            "no Kafka broker answered at {bootstrap} within 10 s ({err}). These tests need a \
             broker: run scripts/kafka start, or set KAFKA_BOOTSTRAP_SERVERS"
        );
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("producer-test-{test}-{}-{nanos}", std::process::id());
    let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create_topics request");
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("cannot create topic {topic}: {code}"));
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let md = admin
            .inner()
            .fetch_metadata(Some(&name), Duration::from_secs(5))
            .expect("metadata for the new topic");
        let ready = md.topics().iter().any(|t| {
            t.name() == name
                && t.error().is_none()
                && t.partitions().len() == usize::try_from(partitions).unwrap()
                && t.partitions().iter().all(|p| p.leader() >= 0)
        });
        if ready {
            return name;
        }
        assert!(
            Instant::now() < deadline,
            "topic {name} not ready within {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One message read back: key and value.
#[derive(Debug)]
pub struct Read {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Reads `topic` from the beginning of every partition until `want` messages arrived.
///
/// # Panics
/// If fewer arrive within [`TIMEOUT`], saying how many did.
pub fn read_all(topic: &str, want: usize) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer config is valid");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    while out.len() < want {
        assert!(
            Instant::now() < deadline,
            "read {} of {want} messages from {topic} within {TIMEOUT:?}",
            out.len()
        );
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            let m = result.expect("consume");
            out.push(Read {
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
            });
        }
    }
    out
}
