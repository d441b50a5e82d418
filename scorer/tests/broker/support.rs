//! Broker test harness: topics, producing, reading back committed output, and scorer processes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use heart_schemas::{AvroRecord, DeadLetter, ModelVersion, PatientRecord, Prediction, topics};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

thread_local! {
    static BOOTSTRAP: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The broker under test: `KAFKA_BOOTSTRAP_SERVERS`, or a test's own broker inside
/// [`with_bootstrap`].
pub fn bootstrap() -> String {
    BOOTSTRAP
        .with(|b| b.borrow().clone())
        .or_else(|| std::env::var("KAFKA_BOOTSTRAP_SERVERS").ok())
        .unwrap_or_else(|| "127.0.0.1:9092".to_owned())
}

/// Runs `f` with [`bootstrap`] pointing at `servers` (this thread only).
pub fn with_bootstrap<T>(servers: &str, f: impl FnOnce() -> T) -> T {
    BOOTSTRAP.with(|b| *b.borrow_mut() = Some(servers.to_owned()));
    let out = f();
    BOOTSTRAP.with(|b| *b.borrow_mut() = None);
    out
}

/// A broker of a test's own, started with `scripts/kafka` (topics included) and stopped on drop.
pub struct OwnBroker {
    script: PathBuf,
    port: u16,
    controller: u16,
    state: PathBuf,
}

impl OwnBroker {
    pub fn start(
        script: &std::path::Path,
        port: u16,
        controller: u16,
        state: &std::path::Path,
    ) -> Self {
        let broker = Self {
            script: script.to_owned(),
            port,
            controller,
            state: state.to_owned(),
        };
        let out = broker.command("start").output().unwrap();
        assert!(
            out.status.success(),
            "scripts/kafka start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL: the broker dies without a shutdown; its data stays.
    pub fn kill(&self) {
        let out = self.command("kill").output().unwrap();
        assert!(
            out.status.success(),
            "scripts/kafka kill failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the broker again on the data a [`OwnBroker::kill`] left.
    pub fn resume(&self) {
        let out = self.command("resume").output().unwrap();
        assert!(
            out.status.success(),
            "scripts/kafka resume failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What an operator does about transactions a broker failure left open: aborts each one
    /// `kafka-transactions.sh find-hanging` lists on this broker, the outputs first and the
    /// group's offsets last (aborting the offsets first lets the replica start again, and its
    /// next commit, by the same producer id, would commit the hanging outputs too: duplicates).
    /// Returns those it aborted as `topic-partition@start-offset`; one that ended between the
    /// listing and the abort is left out.
    pub fn abort_hanging_transactions(&self) -> Vec<String> {
        let mut hanging: Vec<(String, String, String)> = Vec::new();
        for scope in [["--broker-id", "1"], ["--topic", "__consumer_offsets"]] {
            let find = [
                &["find-hanging", "--max-transaction-timeout", "0"],
                &scope[..],
            ]
            .concat();
            let out = self.transactions(&find).unwrap_or_else(|e| panic!("{e}"));
            for line in out.lines().skip(1) {
                let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
                let [topic, partition, .., start] = cols[..6] else {
                    panic!("unexpected find-hanging line: {line}");
                };
                let row = (topic.to_owned(), partition.to_owned(), start.to_owned());
                if !hanging.contains(&row) {
                    hanging.push(row);
                }
            }
        }
        hanging.sort_by_key(|(topic, ..)| topic == "__consumer_offsets");
        let mut aborted = Vec::new();
        for (topic, partition, start) in &hanging {
            let abort = [
                "abort",
                "--topic",
                topic,
                "--partition",
                partition,
                "--start-offset",
                start,
            ];
            match self.transactions(&abort) {
                Ok(_) => aborted.push(format!("{topic}-{partition}@{start}")),
                Err(e) if e.contains("Could not find any open transactions") => {}
                Err(e) => panic!("{e}"),
            }
        }
        aborted
    }

    /// Runs Kafka's `kafka-transactions.sh` against this broker: its standard output, or what
    /// it said on failure.
    fn transactions(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .command("run-class")
            .args([
                "org.apache.kafka.tools.TransactionsCommand",
                "--bootstrap-server",
                &self.bootstrap(),
            ])
            .args(args)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "kafka-transactions.sh {args:?} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn command(&self, verb: &str) -> Command {
        let mut c = Command::new(&self.script);
        c.arg(verb)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller.to_string())
            .env("KAFKA_STATE_DIR", &self.state)
            .env_remove("KAFKA_SASL_SSL_PORT")
            .env("KAFKA_HEAP", "-Xmx384m -Xms128m")
            // A resumed broker acts on its dead incarnation's registration until the controller
            // fences that one, this long after starting (Kafka's default: 9 s). Transaction
            // markers it sends meanwhile are skipped for good ("Couldn't find leader endpoint"),
            // leaving a commit open; fenced before its coordinators load (~1 s in), it has
            // nothing to skip.
            .env("KAFKA_BROKER_SESSION_TIMEOUT_MS", "600");
        c
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.command("stop").output();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Fails with a clear message unless a broker answers within 10 s.
pub fn require_broker() {
    let bs = bootstrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    if let Err(e) = consumer.fetch_metadata(None, Duration::from_secs(10)) {
        panic!(
            "no Kafka broker answered at {bs} within 10 s ({e}). These tests need a real broker: \
             run `scripts/kafka start` (or scripts/test, which starts one) and set \
             KAFKA_BOOTSTRAP_SERVERS."
        );
    }
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// Topics for one test.
pub struct Topics {
    pub patients: String,
    pub predictions: String,
    pub dead_letters: String,
    pub models: String,
    pub group: String,
}

/// Creates topic `name` with `partitions` partitions.
pub fn create_topic(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let new = [NewTopic::new(name, partitions, TopicReplication::Fixed(1))];
    for r in runtime()
        .block_on(admin.create_topics(&new, &AdminOptions::new()))
        .unwrap()
    {
        r.unwrap_or_else(|(topic, e)| panic!("cannot create topic {topic}: {e}"));
    }
}

impl Topics {
    /// Creates fresh topics: patients with `partitions` partitions, a compacted models topic.
    pub fn create(test: &str, partitions: i32) -> Self {
        require_broker();
        let t = Self {
            patients: unique(&format!("{test}-patients")),
            predictions: unique(&format!("{test}-predictions")),
            dead_letters: unique(&format!("{test}-dlq")),
            models: unique(&format!("{test}-models")),
            group: unique(&format!("{test}-group")),
        };
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .create()
            .unwrap();
        let compact = [("cleanup.policy", "compact")];
        let new = [
            NewTopic::new(&t.patients, partitions, TopicReplication::Fixed(1)),
            NewTopic::new(&t.predictions, partitions, TopicReplication::Fixed(1)),
            NewTopic::new(&t.dead_letters, 1, TopicReplication::Fixed(1)),
            NewTopic::new(&t.models, 1, TopicReplication::Fixed(1)).set(compact[0].0, compact[0].1),
        ];
        let results = runtime()
            .block_on(admin.create_topics(&new, &AdminOptions::new()))
            .unwrap();
        for r in results {
            r.unwrap_or_else(|(topic, e)| panic!("cannot create topic {topic}: {e}"));
        }
        t
    }
}

/// A key and a value, either possibly absent.
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// An idempotent producer kept for many sends (creating one waits for a producer id).
pub struct Sender {
    producer: FutureProducer,
    runtime: tokio::runtime::Runtime,
}

impl Sender {
    pub fn new() -> Self {
        Self::to(&bootstrap(), &[])
    }

    /// A sender to `servers` with extra producer properties (usable from any thread).
    pub fn to(servers: &str, properties: &[(&str, &str)]) -> Self {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", servers)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5");
        for (k, v) in properties {
            config.set(*k, *v);
        }
        Self {
            producer: config.create().unwrap(),
            runtime: runtime(),
        }
    }

    /// Produces `(key, value)` pairs and waits for every acknowledgement.
    pub fn send(&self, topic: &str, records: &[KeyValue]) {
        self.runtime.block_on(async {
            let mut pending = Vec::with_capacity(records.len());
            for (key, value) in records {
                let mut r: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
                if let Some(k) = key {
                    r = r.key(k.as_slice());
                }
                if let Some(v) = value {
                    r = r.payload(v.as_slice());
                }
                pending.push(self.producer.send_result(r).map_err(|(e, _)| e).unwrap());
            }
            for p in pending {
                p.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
        });
    }

    /// Produces patient records keyed by patient id.
    pub fn send_patients(&self, topic: &str, records: &[PatientRecord]) {
        self.send(topic, &patient_pairs(records));
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(10));
    }
}

/// Produces `(key, value)` pairs with a one-off producer and waits for every acknowledgement.
pub fn produce(topic: &str, records: &[KeyValue]) {
    Sender::new().send(topic, records);
}

fn patient_pairs(records: &[PatientRecord]) -> Vec<KeyValue> {
    records
        .iter()
        .map(|r| {
            (
                Some(r.patient_id.clone().into_bytes()),
                Some(r.encode().unwrap()),
            )
        })
        .collect()
}

/// Sends `records` from a thread of its own at about `per_second`, in chunks; the handle
/// returns once every record is acknowledged.
pub fn stream(
    topic: &str,
    records: Vec<KeyValue>,
    per_second: usize,
) -> std::thread::JoinHandle<()> {
    let (topic, servers) = (topic.to_owned(), bootstrap());
    std::thread::spawn(move || {
        let sender = Sender::to(&servers, &[]);
        let chunk = (per_second / 20).max(1);
        let started = Instant::now();
        for (i, part) in records.chunks(chunk).enumerate() {
            let due = started + Duration::from_secs_f64((i * chunk) as f64 / per_second as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            sender.send(&topic, part);
        }
    })
}

/// Patient records as `(key, value)` pairs keyed by patient id.
pub fn pairs(records: &[PatientRecord]) -> Vec<KeyValue> {
    patient_pairs(records)
}

/// Asserts every key in `keys` has exactly one record in `out`, and nothing else is there.
pub fn assert_exactly_once(out: &[Received], keys: &BTreeSet<String>) {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for r in out {
        *count.entry(r.key_str()).or_default() += 1;
    }
    let duplicated: Vec<_> = count.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        duplicated.is_empty(),
        "duplicates visible to read_committed: {duplicated:?}"
    );
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| !count.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} records without output, e.g. {missing:?}",
        keys.len() - count.len().min(keys.len()),
        keys.len()
    );
    let foreign: Vec<_> = count
        .keys()
        .filter(|k| !keys.contains(*k))
        .take(5)
        .collect();
    assert!(foreign.is_empty(), "unexpected outputs: {foreign:?}");
}

/// Produces patient records keyed by patient id.
pub fn produce_patients(topic: &str, records: &[PatientRecord]) {
    produce(topic, &patient_pairs(records));
}

/// Publishes a model version keyed by its name.
pub fn publish_model(topic: &str, version: &ModelVersion) {
    produce(
        topic,
        &[(
            Some(topics::model_key(&version.name, version.version).into_bytes()),
            Some(version.encode().unwrap()),
        )],
    );
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub partition: i32,
    pub headers: BTreeMap<String, String>,
}

impl Received {
    pub fn key_str(&self) -> String {
        String::from_utf8(self.key.clone().unwrap_or_default()).unwrap()
    }
    pub fn prediction(&self) -> Prediction {
        Prediction::decode(self.value.as_deref().unwrap()).unwrap()
    }
    pub fn dead_letter(&self) -> DeadLetter {
        DeadLetter::decode(self.value.as_deref().unwrap()).unwrap()
    }
}

/// Reads a topic from the beginning as a read_committed consumer until `expected` records were
/// seen, then keeps reading for `settle` to catch duplicates. Panics after `timeout`.
pub fn read_committed(
    topic: &str,
    expected: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<Received> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("reader"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let mut reached: Option<Instant> = None;
    loop {
        if let Some(at) = reached {
            if at.elapsed() >= settle {
                return out;
            }
        } else if started.elapsed() > timeout {
            panic!(
                "read {} of {expected} expected records from {topic} within {timeout:?}",
                out.len()
            );
        }
        if let Some(msg) = consumer.poll(Duration::from_millis(100)) {
            let msg = msg.unwrap();
            let headers = msg
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Received {
                key: msg.key().map(<[u8]>::to_vec),
                value: msg.payload().map(<[u8]>::to_vec),
                partition: msg.partition(),
                headers,
            });
        }
        if reached.is_none() && out.len() >= expected {
            reached = Some(Instant::now());
        }
    }
}

/// The UCI Cleveland file: `HEART_DATA`, else the shared copy beside the checkout.
pub fn cleveland_path() -> PathBuf {
    std::env::var("HEART_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/data/processed.cleveland.data")
        })
}

/// The UCI Cleveland rows as records `cleveland-<line>` (read from the shared data file).
pub fn cleveland() -> Vec<PatientRecord> {
    let path = cleveland_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {} ({e}); set HEART_DATA", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let cols: Vec<Option<f64>> = line
                .split(',')
                .map(|c| c.trim().parse::<f64>().ok())
                .collect();
            let features: [Option<f64>; 13] = cols[..13].try_into().unwrap();
            PatientRecord::from_features(
                format!("cleveland-{}", i + 1),
                1_700_000_000_000,
                &features,
            )
        })
        .collect()
}

/// `producer send` of the Cleveland rows to `topic`, with `extra` flags (`--count`, `--loop`,
/// `--shift`, `--trace`, ...).
pub fn send_cleveland(topic: &str, extra: &[&str]) {
    let data = cleveland_path();
    let mut args = vec!["send", "--topic", topic, "--source", "uci", "--data"];
    args.push(data.to_str().unwrap());
    args.extend_from_slice(extra);
    run_producer(&args);
}

/// A binary of the workspace (`producer`, `trainer`), beside this test's own.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join(name);
    assert!(
        bin.exists(),
        "{} is not built; run the tests with --workspace",
        bin.display()
    );
    bin
}

/// Runs `producer` with `args` against the test broker and waits for it; panics with its
/// output unless it succeeds.
pub fn run_producer(args: &[&str]) {
    let bin = workspace_bin("producer");
    let out = Command::new(&bin)
        .args(args)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "producer {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A scorer process on a free loopback port.
pub struct Scorer {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

impl Scorer {
    /// Starts the scorer binary on `topics` with the given transactional id and extra flags.
    pub fn start(topics: &Topics, transactional_id: &str, extra: &[&str]) -> Self {
        Self::start_with_bootstrap(topics, transactional_id, extra, &bootstrap())
    }

    /// As [`Scorer::start`], against the broker at `servers`.
    pub fn start_with_bootstrap(
        topics: &Topics,
        transactional_id: &str,
        extra: &[&str],
        servers: &str,
    ) -> Self {
        Self::start_with_env(
            topics,
            transactional_id,
            extra,
            &[("KAFKA_BOOTSTRAP_SERVERS", servers)],
        )
    }

    /// As [`Scorer::start`], with `env` set on top of the test defaults (`RUST_LOG=info`, the
    /// test broker): a SASL_SSL connection, another log level.
    pub fn start_with_env(
        topics: &Topics,
        transactional_id: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("{}.log", unique("scorer")));
        let file = File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_scorer"))
            .args([
                "--patients-topic",
                &topics.patients,
                "--predictions-topic",
                &topics.predictions,
                "--dead-letter-topic",
                &topics.dead_letters,
                "--models-topic",
                &topics.models,
                "--group-id",
                &topics.group,
                "--transactional-id",
                transactional_id,
                "--http-addr",
                &format!("127.0.0.1:{port}"),
                "--log-format",
                "text",
            ])
            .args(extra)
            // Short timeouts keep rebalances quick; a test may set its own.
            .env("SCORER_SESSION_TIMEOUT_MS", "6000")
            .env("SCORER_DRAIN_TIMEOUT_MS", "5000")
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap())
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            port,
            log,
        }
    }

    /// The scorer's log so far (for assertion messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("scorer exited early with {status}:\n{}", self.log_text());
            }
            if http(self.port, "GET", "/readyz", None).is_some_and(|(s, _)| s == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("scorer not ready within {timeout:?}:\n{}", self.log_text());
    }

    /// The value of an unlabelled metric, or of the first series whose labels contain `labels`.
    pub fn metric(&self, name: &str, labels: &str) -> Option<f64> {
        let (_, text) = http(self.port, "GET", "/metrics", None)?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| {
                let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
                (series == name || series.starts_with(&format!("{name}{{")))
                    && series.contains(labels)
            })
            .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
    }

    /// Polls `cond` on this scorer's metrics until it holds.
    pub fn wait_metric(
        &self,
        name: &str,
        labels: &str,
        cond: impl Fn(f64) -> bool,
        timeout: Duration,
    ) -> f64 {
        let started = Instant::now();
        loop {
            if let Some(v) = self.metric(name, labels).filter(|v| cond(*v)) {
                return v;
            }
            if started.elapsed() > timeout {
                panic!(
                    "metric {name}{{{labels}}} = {:?} never met the condition within {timeout:?}:\n{}",
                    self.metric(name, labels),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL: no drain, no commit, no leave-group.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "scorer still running after {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                panic!(
                    "scorer did not exit within {timeout:?} of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Scorer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 client: (status, body), or None if the server does not answer.
pub fn http(port: u16, method: &str, path: &str, json: Option<&str>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let body = json.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}
