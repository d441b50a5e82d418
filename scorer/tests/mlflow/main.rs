//! `scorer score-file --from-mlflow` against a real MLflow server: a model version registered
//! the way `trainer train --mlflow-uri` registers one (an MLflow 3 logged model with an alias)
//! is fetched, verified and used, and the failures a user meets say what to do.
//!
//! Needs `MLFLOW_TRACKING_URI`: a server started with `--serve-artifacts`, as `scripts/mlflow
//! start` runs one (`scripts/test` does). Without it every test fails with that message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/fixtures.rs"]
mod fixtures;
#[path = "../broker/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use heart_mlflow::registered::MODEL_FILE;
use heart_mlflow::{Auth, Client};
use heart_schemas::AvroRecord as _;
use serde_json::Value;

fn server() -> (String, Client) {
    let uri = std::env::var("MLFLOW_TRACKING_URI")
        .expect("MLFLOW_TRACKING_URI: start a server with scripts/mlflow start");
    let client = Client::new(&uri, Auth::None, Duration::from_secs(30));
    (uri, client)
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        heart_schemas::now_ms()
    )
}

/// Registers `model` as version N of `name` with alias `champion`, as the trainer does.
fn register(client: &Client, name: &str, model: &[u8]) -> String {
    register_as(client, name, model, "champion")
}

/// [`register`] with another alias.
fn register_as(client: &Client, name: &str, model: &[u8], alias: &str) -> String {
    let experiment = client.experiment_id(&unique("scorer-mlflow")).unwrap();
    let run = client.create_run(&experiment, "train", None, &[]).unwrap();
    let logged = client
        .create_logged_model(&experiment, "model", &run.run_id, "heart_risk", &[], &[])
        .unwrap();
    client
        .upload_artifact(&logged.artifact_uri, MODEL_FILE, model)
        .unwrap();
    client
        .finalize_logged_model(&logged.model_id, true)
        .unwrap();
    client.ensure_registered_model(name).unwrap();
    let mv = client
        .create_model_version(name, &logged.model_id, &run.run_id, &[])
        .unwrap();
    client.set_alias(name, alias, &mv.version).unwrap();
    client.end_run(&run.run_id, "FINISHED").unwrap();
    mv.version
}

fn input() -> PathBuf {
    let path = std::env::temp_dir().join(format!("heart-scorer-mlflow-{}.csv", std::process::id()));
    std::fs::write(
        &path,
        "patient_id,age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal\n\
         a,63,1,4,130,250,0,0,150,0,1,2,0,3\n\
         b,41,0,2,120,200,0,0,170,0,0,1,0,3\n",
    )
    .unwrap();
    path
}

fn score_file(uri: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scorer"))
        .env_remove("SCORER_MODEL_FILE")
        .args(["score-file", "--mlflow-uri", uri, "--input"])
        .arg(input())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn score_file_scores_with_the_registered_champion() {
    let (uri, client) = server();
    let name = unique("heart-disease-score-file");
    let model = fixtures::model_version(11, 1.5);
    register(&client, &name, &model.encode().unwrap());

    let out = score_file(
        &uri,
        &["--from-mlflow", &format!("models:/{name}@champion")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for p in &lines {
        assert_eq!(p["model_version"], 11, "{p}");
    }
    // The same model from a file gives the same probabilities.
    let file =
        std::env::temp_dir().join(format!("heart-scorer-mlflow-{}.avro", std::process::id()));
    std::fs::write(&file, model.encode().unwrap()).unwrap();
    let local = score_file(&uri, &["--model-file", file.to_str().unwrap()]);
    assert!(local.status.success());
    let local: Vec<Value> = String::from_utf8(local.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (a, b) in lines.iter().zip(&local) {
        assert_eq!(a["probability"], b["probability"]);
    }
}

#[test]
fn a_missing_alias_or_a_bad_model_file_fails_with_the_reference_named() {
    let (uri, client) = server();
    let name = unique("heart-disease-score-file-bad");
    let missing = score_file(
        &uri,
        &["--from-mlflow", &format!("models:/{name}@champion")],
    );
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(
        stderr.contains(&format!("models:/{name}@champion")) && stderr.contains("HTTP 404"),
        "{stderr}"
    );

    register(&client, &name, b"not an avro model");
    let bad = score_file(
        &uri,
        &["--from-mlflow", &format!("models:/{name}@champion")],
    );
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains("is not an Avro ModelVersion"), "{stderr}");
}

#[test]
fn from_mlflow_needs_a_server_and_excludes_a_model_file() {
    let no_server = Command::new(env!("CARGO_BIN_EXE_scorer"))
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("SCORER_MODEL_FILE")
        .args([
            "score-file",
            "--from-mlflow",
            "models:/m@champion",
            "--input",
            "-",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&no_server.stderr);
    assert!(!no_server.status.success());
    assert!(
        stderr.contains("--from-mlflow needs --mlflow-uri"),
        "{stderr}"
    );

    let both = Command::new(env!("CARGO_BIN_EXE_scorer"))
        .env_remove("SCORER_MODEL_FILE")
        .args([
            "score-file",
            "--from-mlflow",
            "models:/m@champion",
            "--model-file",
            "x",
        ])
        .args(["--input", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert_eq!(both.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

const WAIT: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(2);

fn patients(prefix: &str, n: usize) -> Vec<heart_schemas::PatientRecord> {
    (0..n)
        .map(|i| heart_schemas::PatientRecord {
            patient_id: format!("{prefix}-{i}"),
            event_time: heart_schemas::now_ms(),
            ..fixtures::patient(30 + (i % 50) as i32)
        })
        .collect()
}

/// Issue [9]: `--shadow-from-mlflow models:/NAME@challenger` shadows the version the alias
/// names (its predictions name the registry version), follows the alias when it moves and
/// stops when it is removed, while the champion from the models topic answers throughout.
/// Needs the test broker too (KAFKA_BOOTSTRAP_SERVERS), as scripts/test runs it.
#[test]
fn a_challenger_named_by_a_registry_alias_is_shadowed_and_followed() {
    let (uri, client) = server();
    let name = unique("heart-disease-challenger");
    let t = support::Topics::create("mlflow-shadow", 3);
    let shadow_topic = support::unique("shadow-predictions");
    support::create_topic(&shadow_topic, 3);
    support::publish_model(&t.models, &fixtures::model_version(1, 1.0));
    let challenger = |weight: f64| fixtures::model_version(0, weight).encode().unwrap();
    let first: i64 = register_as(&client, &name, &challenger(-1.0), "challenger")
        .parse()
        .unwrap();
    let reference = format!("models:/{name}@challenger");
    let mut scorer = support::Scorer::start(
        &t,
        &support::unique("tx"),
        &[
            "--shadow-from-mlflow",
            &reference,
            "--mlflow-uri",
            &uri,
            "--shadow-refresh-ms",
            "300",
            "--shadow-topic",
            &shadow_topic,
        ],
    );
    scorer.wait_ready(WAIT);
    let version = |scorer: &support::Scorer, v: i64| {
        scorer.wait_metric("scorer_shadow_model_version", "", |m| m == v as f64, WAIT);
    };
    version(&scorer, first);

    let sent = |prefix: &str, n: usize| {
        let records = patients(prefix, n);
        support::produce_patients(&t.patients, &records);
        records
            .into_iter()
            .map(|r| r.patient_id)
            .collect::<BTreeSet<_>>()
    };
    let mut keys = sent("first", 100);
    let shadow = support::read_committed(&shadow_topic, 100, WAIT, SETTLE);
    support::assert_exactly_once(&shadow, &keys);
    for r in &shadow {
        assert_eq!(r.prediction().model_version, first, "the registry version");
        assert_eq!(
            r.headers[heart_schemas::topics::HEADER_MODEL_VERSION],
            first.to_string()
        );
    }

    // The alias moves to a new version: the shadow follows without a restart.
    let second: i64 = register_as(&client, &name, &challenger(0.5), "challenger")
        .parse()
        .unwrap();
    version(&scorer, second);
    let moved = sent("second", 100);
    keys.extend(moved.iter().cloned());
    let shadow = support::read_committed(&shadow_topic, 200, WAIT, SETTLE);
    support::assert_exactly_once(&shadow, &keys);
    for r in shadow.iter().filter(|r| moved.contains(&r.key_str())) {
        assert_eq!(r.prediction().model_version, second, "{}", r.key_str());
    }

    // The alias goes: no more shadow predictions, the champion goes on.
    client.delete_alias(&name, "challenger").unwrap();
    version(&scorer, 0);
    keys.extend(sent("after", 50));
    let champion = support::read_committed(&t.predictions, 250, WAIT, SETTLE);
    support::assert_exactly_once(&champion, &keys);
    assert!(champion.iter().all(|r| r.prediction().model_version == 1));
    let shadow = support::read_committed(&shadow_topic, 200, WAIT, SETTLE);
    assert_eq!(shadow.len(), 200, "nothing shadowed once the alias is gone");
    assert_eq!(
        scorer.metric("scorer_shadow_refresh_failures_total", ""),
        Some(0.0),
        "{}",
        scorer.log_text()
    );
}
