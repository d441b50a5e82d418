//! Helpers: the server from `MLFLOW_TRACKING_URI`, temp dirs, unique names, running the binary
//! and MLflow's Python client with full context on failure.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use heart_trainer::mlflow::{Auth, Client};

/// The Cleveland file, read in place.
pub fn cleveland() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/processed.cleveland.data")
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
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("MLFLOW_TRACKING_TOKEN")
        .output()
        .unwrap()
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
    let out = Command::new(&python)
        .args(["-c", script])
        .env("MLFLOW_TRACKING_URI", uri)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{python} check failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
