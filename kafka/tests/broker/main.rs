//! Broker tests of the Kafka layer. Needs a real broker at `KAFKA_BOOTSTRAP_SERVERS`
//! (`scripts/test` starts one with `scripts/kafka start`); fails with a clear message without.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use heart_kafka::{KafkaArgs, Role, client_config, read_to_end};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn args() -> KafkaArgs {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| {
        panic!("KAFKA_BOOTSTRAP_SERVERS is not set: start a broker with `scripts/kafka start`")
    });
    KafkaArgs::plaintext(bootstrap)
}

/// A fresh compacted topic of `partitions` partitions.
fn topic(name: &str, partitions: i32) -> String {
    let topic = format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let admin: AdminClient<DefaultClientContext> = client_config(&args(), "t", Role::Reader, &[])
        .unwrap()
        .create()
        .unwrap();
    let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in rt.block_on(admin.create_topics([&new], &opts)).unwrap() {
        r.unwrap_or_else(|(t, e)| {
            panic!("cannot create topic {t} (is a broker at KAFKA_BOOTSTRAP_SERVERS?): {e}")
        });
    }
    topic
}

fn read_all(topic: &str) -> Vec<(i32, i64, Vec<u8>)> {
    let a = args();
    let consumer: BaseConsumer = client_config(&a, "t", Role::Reader, &[])
        .unwrap()
        .create()
        .unwrap();
    let mut seen = Vec::new();
    let summary = read_to_end(
        &consumer,
        topic,
        &a.bootstrap_servers,
        Duration::from_secs(20),
        &heart_kafka::ConnectionWatch::default(),
        &|| false,
        |m| {
            seen.push((
                m.partition(),
                m.offset(),
                m.payload().unwrap_or_default().to_vec(),
            ))
        },
    )
    .unwrap_or_else(|e| panic!("read_to_end {topic}: {e}"));
    assert_eq!(summary.records, seen.len() as u64);
    seen
}

#[test]
fn an_empty_topic_is_read_to_its_end_at_once() {
    let t = topic("empty", 3);
    let started = std::time::Instant::now();
    assert!(read_all(&t).is_empty());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn every_record_up_to_the_end_is_read() {
    let t = topic("plain", 2);
    let producer: BaseProducer = client_config(&args(), "t", Role::IdempotentProducer, &[])
        .unwrap()
        .create()
        .unwrap();
    for i in 0..50 {
        let key = format!("k{i}");
        producer
            .send(BaseRecord::to(&t).key(&key).payload(&key).partition(i % 2))
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let seen = read_all(&t);
    assert_eq!(seen.len(), 50);
}

#[test]
fn a_topic_ending_in_transaction_markers_is_read_to_its_end() {
    let t = topic("txn", 1);
    let mut cfg = client_config(
        &args(),
        "t",
        Role::TransactionalProducer {
            transactional_id: &format!("{t}-tx"),
        },
        &[],
    )
    .unwrap();
    cfg.set("transaction.timeout.ms", "10000");
    let producer: BaseProducer = cfg.create().unwrap();
    producer.init_transactions(Duration::from_secs(20)).unwrap();
    // A committed transaction, then an aborted one: the topic ends in an abort marker, and the
    // last data records are never delivered to a read_committed reader.
    for (payloads, commit) in [(&["a", "b"][..], true), (&["x", "y", "z"][..], false)] {
        producer.begin_transaction().unwrap();
        for p in payloads {
            producer
                .send(BaseRecord::to(&t).key("k").payload(*p))
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        if commit {
            producer
                .commit_transaction(Duration::from_secs(10))
                .unwrap();
        } else {
            producer.abort_transaction(Duration::from_secs(10)).unwrap();
        }
    }
    let seen = read_all(&t);
    let values: Vec<_> = seen.iter().map(|(_, _, v)| v.clone()).collect();
    assert_eq!(values, vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn a_missing_topic_is_a_clear_error() {
    let a = args();
    let consumer: BaseConsumer = client_config(&a, "t", Role::Reader, &[])
        .unwrap()
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    let err = read_to_end(
        &consumer,
        "no-such-topic-heart-kafka",
        &a.bootstrap_servers,
        Duration::from_secs(10),
        &heart_kafka::ConnectionWatch::default(),
        &|| false,
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
