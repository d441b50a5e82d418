//! Reading a topic from its first offset to its end, as a compacted topic is read to rebuild
//! state (the scorer's model history, the trainer's version list).
//!
//! "The end" is where each partition stood when the read began. A partition is done when a
//! record at or past its last offset arrives, or when librdkafka reports its end
//! (`enable.partition.eof`, set by [`Role::Reader`](crate::Role::Reader)): the second covers an
//! empty partition, records compacted away meanwhile, and a partition whose last offsets are
//! transaction markers, which are never delivered as records.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;

use crate::watch::{ConnectionWatch, MetadataError, fetch_metadata};

/// Why a topic could not be read to its end.
#[derive(Debug, Error)]
pub enum ReadError {
    /// No broker answered the metadata request.
    #[error(
        "no Kafka broker answered at {bootstrap} within {ms} ms; is the broker up and KAFKA_BOOTSTRAP_SERVERS right?"
    )]
    Unreachable {
        /// The bootstrap servers tried.
        bootstrap: String,
        /// The bound.
        ms: u64,
        /// The client's error.
        source: KafkaError,
    },
    /// The cluster refused this client (credentials, certificate, protocol).
    #[error(transparent)]
    Refused(#[from] crate::watch::ConnectionFailure),
    /// The topic does not exist.
    #[error(
        "topic {topic:?} does not exist on {bootstrap}: create it (compacted), e.g. with `scripts/kafka start`"
    )]
    MissingTopic {
        /// The topic.
        topic: String,
        /// The bootstrap servers asked.
        bootstrap: String,
    },
    /// The end was not reached in time.
    #[error("could not read topic {topic:?} to its end within {ms} ms")]
    Timeout {
        /// The topic.
        topic: String,
        /// The bound.
        ms: u64,
    },
    /// Another client error.
    #[error("kafka error while reading topic {topic:?}")]
    Kafka {
        /// The topic.
        topic: String,
        /// The error.
        source: KafkaError,
    },
}

/// How long a topic may be absent from the metadata (just created) before it counts as missing.
const TOPIC_SETTLE: Duration = Duration::from_secs(3);

/// What a read to the end saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSummary {
    /// Partitions of the topic.
    pub partitions: usize,
    /// Records handed to the callback.
    pub records: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// A partition's watermarks. Right after a topic is created (or while its leader moves) the
/// broker answers "not leader" or "leader not available" for a moment; those are retried until
/// `deadline`, anything else is returned at once.
fn watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    deadline: Instant,
) -> Result<(i64, i64), KafkaError> {
    let mut backoff = Duration::from_millis(50);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match consumer.fetch_watermarks(topic, partition, left) {
            Err(e) if is_leader_moving(&e) && left > backoff => {
                tracing::debug!(topic, partition, error = %e, "watermarks: leader not ready, retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            answer => return answer,
        }
    }
}

fn is_leader_moving(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        e.rdkafka_error_code(),
        Some(
            Code::NotLeaderForPartition
                | Code::LeaderNotAvailable
                | Code::UnknownTopicOrPartition
                | Code::NotCoordinator
        )
    )
}

/// Assigns every partition of `topic` from its beginning and hands each record to `each` until
/// every partition has been read to where its end was when the read began. The assignment stays,
/// so the caller can keep polling for newer records.
///
/// `timeout` bounds each step (metadata, watermarks) and the whole read; `stop` is checked
/// between polls and ends the read early (returning what was read so far). `watch` is the
/// consumer's context (or the one it reports to): a refusal it sees ends the read at once.
///
/// # Errors
/// [`ReadError`]: refused, no broker, no such topic, the end not reached within `timeout`.
pub fn read_to_end<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    bootstrap: &str,
    timeout: Duration,
    watch: &ConnectionWatch,
    stop: &dyn Fn() -> bool,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> Result<ReadSummary, ReadError> {
    let started = Instant::now();
    let kafka = |source| ReadError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    // A topic created a moment ago can be missing from a broker's metadata, or listed without
    // a leader, for a few hundred milliseconds: look again for a short while before calling it
    // missing (a topic that really is missing then fails within the settle time, not the bound).
    let settle = started + timeout.min(TOPIC_SETTLE);
    let mut backoff = Duration::from_millis(50);
    let partitions: Vec<i32> = loop {
        let metadata = fetch_metadata(consumer.client(), Some(topic), timeout, watch, &|| {
            // Nothing is assigned yet: this only serves the error callbacks.
            let _ = consumer.poll(Duration::ZERO);
        })
        .map_err(|e| match e {
            MetadataError::Refused(failure) => ReadError::Refused(failure),
            MetadataError::Unreachable(source) => ReadError::Unreachable {
                bootstrap: bootstrap.to_owned(),
                ms: timeout.as_millis() as u64,
                source,
            },
        })?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if !partitions.is_empty() || Instant::now() + backoff > settle {
            break partitions;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(500));
    };
    if partitions.is_empty() {
        return Err(ReadError::MissingTopic {
            topic: topic.to_owned(),
            bootstrap: bootstrap.to_owned(),
        });
    }
    let mut assignment = TopicPartitionList::new();
    // partition -> the high watermark at start; a partition is dropped once read to it.
    let mut pending = BTreeMap::new();
    for &p in &partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .map_err(kafka)?;
        let (low, high) = watermarks(consumer, topic, p, started + timeout).map_err(kafka)?;
        if high > low {
            pending.insert(p, high);
        }
    }
    consumer.assign(&assignment).map_err(kafka)?;
    let mut records = 0;
    while !pending.is_empty() && !stop() {
        if started.elapsed() > timeout {
            return Err(ReadError::Timeout {
                topic: topic.to_owned(),
                ms: timeout.as_millis() as u64,
            });
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                let (partition, offset) = (message.partition(), message.offset());
                records += 1;
                each(&message);
                if pending
                    .get(&partition)
                    .is_some_and(|&end| offset + 1 >= end)
                {
                    pending.remove(&partition);
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                pending.remove(&partition);
            }
            Some(Err(error)) => {
                tracing::warn!(topic, error = %error, "read failed; retrying");
            }
        }
    }
    Ok(ReadSummary {
        partitions: partitions.len(),
        records,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaErrorCode as Code;

    use super::*;

    #[test]
    fn only_a_moving_leader_is_waited_out() {
        for code in [Code::NotLeaderForPartition, Code::LeaderNotAvailable] {
            assert!(
                is_leader_moving(&KafkaError::MetadataFetch(code)),
                "{code:?}"
            );
        }
        for code in [Code::TopicAuthorizationFailed, Code::BrokerTransportFailure] {
            assert!(
                !is_leader_moving(&KafkaError::MetadataFetch(code)),
                "{code:?}"
            );
        }
    }
}
