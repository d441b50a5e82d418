//! Helpers: the server from `MLFLOW_TRACKING_URI`, a models topic on `KAFKA_BOOTSTRAP_SERVERS`, temp dirs, unique names, running the binary
//! and MLflow's Python client with full context on failure.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use heart_mlflow::{Auth, Client};

/// The Cleveland file, read in place: `HEART_TEST_DATA` or `HEART_DATA` (`scripts/test` sets it),
/// else the shared copy.
pub fn cleveland() -> PathBuf {
    std::env::var_os("HEART_TEST_DATA")
        .or_else(|| std::env::var_os("HEART_DATA"))
        .map_or_else(
            || {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../../shared/data/processed.cleveland.data")
            },
            PathBuf::from,
        )
}

/// The tracking server under test and a client for it; panics with what to do when there is none.
pub fn server() -> (String, Client) {
    let uri = std::env::var("MLFLOW_TRACKING_URI").unwrap_or_else(|_| {
        panic!(
            "MLFLOW_TRACKING_URI is not set: start a server with `scripts/mlflow start` and run \
             `MLFLOW_TRACKING_URI=$(scripts/mlflow url) cargo test -p heart-trainer --test mlflow` \
             (scripts/test does this)"
        )
    });
    let client = Client::new(&uri, Auth::None, Duration::from_secs(30));
    if let Err(err) = client.health() {
        panic!("no MLflow server at MLFLOW_TRACKING_URI={uri}: {err}");
    }
    (uri, client)
}

/// `prefix` made unique to this test process, so reruns against one server do not collide.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "heart-trainer-mlflow-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the trainer binary with the MLflow environment removed (tests pass flags).
pub fn trainer(args: &[&str]) -> Output {
    trainer_with_env(args, &[])
}

/// As [`trainer`], with extra environment variables.
pub fn trainer_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("MLFLOW_TRACKING_TOKEN")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `KAFKA_BOOTSTRAP_SERVERS` and a fresh compacted models topic on that broker; panics with what
/// to do when there is no broker.
pub fn kafka_topic(test: &str) -> (String, String) {
    use rdkafka::ClientConfig;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;

    let timeout = Duration::from_secs(15);
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| {
        panic!("KAFKA_BOOTSTRAP_SERVERS is not set: start a broker with scripts/kafka start")
    });
    let topic = unique(&format!("models-mlflow-{test}"));
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for r in rt
        .block_on(admin.create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(timeout)),
        ))
        .unwrap_or_else(|e| panic!("no Kafka broker at KAFKA_BOOTSTRAP_SERVERS={bootstrap}: {e}"))
    {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
    (bootstrap, topic)
}

/// Panics with the output unless the run succeeded; returns stdout.
pub fn success(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "trainer failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `script` with the Python in `MLFLOW_PYTHON` (one with mlflow installed, e.g.
/// `scripts/mlflow python`), against `uri`; does nothing when it is unset.
pub fn python_check(uri: &str, script: &str) {
    let Ok(python) = std::env::var("MLFLOW_PYTHON") else {
        eprintln!("MLFLOW_PYTHON unset: skipping the check through MLflow's Python client");
        return;
    };
    python_run(&python, uri, &["-c", script]);
}

/// Runs `python` with `args` against the tracking server `uri`; panics with its output unless
/// it succeeds.
pub fn python_run(python: &str, uri: &str, args: &[&str]) {
    let out = Command::new(python)
        .args(args)
        .env("MLFLOW_TRACKING_URI", uri)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{python} {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The last record on partition 0 of `topic`, decoded.
pub fn last_model_version(bootstrap: &str, topic: &str) -> heart_schemas::ModelVersion {
    use heart_schemas::AvroRecord as _;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("mlflow-test-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(msg)) => {
                last = Some(heart_schemas::ModelVersion::decode(msg.payload().unwrap()).unwrap());
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None if last.is_some() => break,
            None => {}
        }
    }
    last.unwrap_or_else(|| panic!("no record on {topic} within 20 s"))
}
