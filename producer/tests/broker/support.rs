//! Helpers: the broker address, a fresh topic per test, reading a topic back whole, and the
//! producer binary as a child process.

use std::collections::HashSet;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
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

/// What a read_committed reader finds on `topic` from its start to its current end.
#[derive(Debug)]
pub struct Committed {
    /// Records.
    pub records: u64,
    /// Distinct keys among them.
    pub distinct_keys: usize,
}

/// Reads `topic` to its current end as a read_committed reader (heart-kafka's `read_to_end`),
/// so the count is exact: no fewer records and no more.
///
/// # Panics
/// If the end is not reached within [`TIMEOUT`].
pub fn read_committed(topic: &str) -> Committed {
    let kafka = heart_kafka::KafkaArgs::plaintext(bootstrap());
    let consumer: BaseConsumer = heart_kafka::client_config(
        &kafka,
        "heart-producer-broker-test",
        heart_kafka::Role::Reader,
        &[],
    )
    .unwrap()
    .create()
    .unwrap();
    let mut keys = HashSet::new();
    let summary = heart_kafka::read_to_end(
        &consumer,
        topic,
        &kafka.bootstrap_servers,
        TIMEOUT,
        &heart_kafka::ConnectionWatch::default(),
        &|| false,
        |m| {
            keys.insert(m.key().map(<[u8]>::to_vec));
        },
    )
    .unwrap_or_else(|e| panic!("reading {topic} to its end: {e}"));
    Committed {
        records: summary.records,
        distinct_keys: keys.len(),
    }
}

/// Records appended to `topic` so far (sum of high minus low watermarks), committed or not.
pub fn appended(consumer: &BaseConsumer, topic: &str) -> i64 {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .expect("metadata");
    md.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(5))
                .expect("watermarks");
            high - low
        })
        .sum()
}

/// A plain consumer for metadata and watermarks.
pub fn admin_consumer() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("consumer config is valid")
}

/// The `producer` binary running in the background, its stdout and stderr in files.
pub struct ProducerProcess {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl ProducerProcess {
    /// Starts `producer --bootstrap-servers <broker> <args>` with text logs at info.
    pub fn spawn(name: &str, args: &[&str]) -> Self {
        let dir = std::env::temp_dir();
        let unique = format!("heart-producer-{name}-{}", std::process::id());
        let stdout = dir.join(format!("{unique}.stdout"));
        let stderr = dir.join(format!("{unique}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_producer"))
            .args(["--bootstrap-servers", &bootstrap(), "--log-format", "text"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// What it printed to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What it printed to stderr (logs) so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Both outputs, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    /// Polls `condition` until it holds, failing if the process exits first or `timeout` passes.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&Self) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(self) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "producer exited ({status}) before {what}:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "not {what} within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {} failed", child.id());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "producer did not exit within {timeout:?} of SIGTERM:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ProducerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
