//! MLflow tests: `trainer train` and `trainer eda` against a real MLflow tracking server, checked
//! through the server's REST API (and, where `MLFLOW_PYTHON` names a Python with mlflow, through
//! MLflow's own client).
//!
//! Needs `MLFLOW_TRACKING_URI`: a server started with `--serve-artifacts`, as `scripts/mlflow
//! start` does (scripts/test starts one and stops it again). Without it every test fails with a
//! message saying so; the two "down" tests need no server. The `publish --from-mlflow` test also
//! needs `KAFKA_BOOTSTRAP_SERVERS` (scripts/kafka start).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use heart_mlflow::{Auth, Client};
use heart_schemas::{AvroRecord as _, ModelVersion};
use support::{
    cleveland, kafka_topic, python_check, server, temp_dir, trainer, trainer_with_env, unique,
};

#[test]
fn train_logs_a_run_with_nested_candidates_artifacts_and_a_champion_model_version() {
    let (uri, client) = server();
    let experiment = unique("heart-risk-test");
    let model_name = unique("heart-disease-test");
    let out = temp_dir("train");
    let output = trainer(&[
        "train",
        "--data",
        cleveland().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--seed",
        "7",
        "--mlflow-uri",
        &uri,
        "--mlflow-experiment",
        &experiment,
        "--mlflow-model-name",
        &model_name,
    ]);
    let stdout = support::success(&output);

    // The alias points at the new version, whose run is the parent run.
    let mv = client
        .model_version_by_alias(&model_name, "champion")
        .unwrap();
    assert_eq!(mv.version, "1");
    // An MLflow 3 logged model, produced by the parent run and finalized.
    let model_id = mv.source.strip_prefix("models:/").unwrap();
    let logged = client.logged_model(model_id).unwrap();
    assert_eq!(logged.status, "LOGGED_MODEL_READY");
    assert_eq!(logged.source_run_id, mv.run_id);
    let model_root = client.source_artifact_uri(&mv.source).unwrap();
    assert_eq!(model_root, logged.artifact_uri);
    assert!(
        stdout.contains(&format!("mlflow: run {}", mv.run_id)),
        "{stdout}"
    );
    let run = client.get_run(&mv.run_id).unwrap();
    assert_eq!(run.info.status, "FINISHED");
    let data_sha = heart_model::sha256_hex(&std::fs::read(cleveland()).unwrap());
    assert_eq!(run.tag("data_sha256"), Some(data_sha.as_str()));
    assert_eq!(run.tag("seed"), Some("7"));
    assert_eq!(run.param("seed"), Some("7"));
    assert_eq!(run.param("folds"), Some("5"));
    let chosen = run.param("chosen_algorithm").unwrap().to_owned();
    let auc = run.metric("cv_roc_auc_mean").unwrap();
    assert!(auc >= 0.9, "cv_roc_auc_mean {auc}");
    assert!(run.metric("cv_roc_auc_std").unwrap() > 0.0);

    // One nested run per candidate, with its best params and a value per fold.
    let experiment_id = run.info.experiment_id.clone();
    let nested = client
        .search_runs(
            &experiment_id,
            &format!("tags.mlflow.parentRunId = '{}'", mv.run_id),
        )
        .unwrap();
    let mut names: Vec<String> = nested
        .iter()
        .map(|r| r.tag("mlflow.runName").unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "decision_tree",
            "gradient_boosting",
            "logistic_regression",
            "random_forest"
        ]
    );
    for r in &nested {
        let algorithm = r.param("algorithm").unwrap();
        assert_eq!(
            r.tag("chosen"),
            Some((algorithm == chosen).to_string().as_str())
        );
        assert_eq!(r.tag("data_sha256"), Some(data_sha.as_str()));
        let folds = client
            .metric_history(&r.info.run_id, "fold_roc_auc")
            .unwrap();
        let mut steps: Vec<i64> = folds.iter().map(|m| m.step).collect();
        steps.sort_unstable();
        assert_eq!(steps, [0, 1, 2, 3, 4], "{algorithm}");
        let mean = folds.iter().map(|m| m.value).sum::<f64>() / 5.0;
        let logged = r.metric("cv_roc_auc_mean").unwrap();
        assert!(
            (mean - logged).abs() < 1e-9,
            "{algorithm}: {mean} vs {logged}"
        );
    }
    let lr = nested
        .iter()
        .find(|r| r.param("algorithm") == Some("logistic_regression"))
        .unwrap();
    assert!(lr.param("C").is_some(), "logistic regression logs C");

    // Report, every plot, and the model directory.
    let root: Vec<String> = client
        .list_artifacts(&mv.run_id, "")
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    for file in [
        "report.json",
        "report.md",
        "roc_curves.png",
        "roc_folds.png",
        "confusion_logistic_regression.png",
        "confusion_decision_tree.png",
        "confusion_random_forest.png",
        "confusion_gradient_boosting.png",
        "reliability.png",
        "missing_fields.png",
    ] {
        assert!(root.iter().any(|p| p == file), "{file} not in {root:?}");
    }
    for file in ["input_example.json", "serving_input_example.json"] {
        let example = client.download_artifact(&model_root, file).unwrap();
        assert!(
            String::from_utf8(example).unwrap().contains("\"age\""),
            "{file}"
        );
    }

    // The MLmodel: custom flavor, run id, and the signature of 13 inputs and 2 outputs.
    let mlmodel =
        String::from_utf8(client.download_artifact(&model_root, "MLmodel").unwrap()).unwrap();
    assert!(mlmodel.contains("flavors:\n  heart_risk:\n"), "{mlmodel}");
    assert!(
        mlmodel.contains(&format!("run_id: {}", mv.run_id)),
        "{mlmodel}"
    );
    assert!(
        mlmodel.contains(&format!("model_id: {model_id}")),
        "{mlmodel}"
    );
    let inputs = yaml_json_scalar(&mlmodel, "  inputs: ");
    let names: Vec<&str> = inputs
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        heart_schemas::FIELDS
            .iter()
            .map(|f| f.name)
            .collect::<Vec<_>>()
    );
    let outputs = yaml_json_scalar(&mlmodel, "  outputs: ");
    assert_eq!(outputs[0]["name"], "probability");
    assert_eq!(outputs[1]["name"], "label");
    assert_eq!(outputs[1]["type"], "long");

    // The registered model.avro is the file train wrote.
    let avro = client.download_artifact(&model_root, "model.avro").unwrap();
    assert_eq!(avro, std::fs::read(out.join("model.avro")).unwrap());
    assert_eq!(ModelVersion::decode(&avro).unwrap().algorithm, chosen);

    // MLflow's own client reads the same model: signature and input example.
    python_check(
        &uri,
        &format!(
            r#"
import mlflow
info = mlflow.models.get_model_info("models:/{model_name}@champion")
assert list(info.flavors) == ["heart_risk"], info.flavors
assert info.model_id == "{model_id}", info.model_id
assert len(info.signature.inputs.input_names()) == 13, info.signature
assert info.signature.outputs.input_names() == ["probability", "label"], info.signature
model = mlflow.models.Model.load("models:/{model_name}@champion")
path = mlflow.artifacts.download_artifacts("models:/{model_name}@champion")
example = model.load_input_example(path)
assert example.shape == (1, 13), example
print("python ok")
"#
        ),
    );
}

#[test]
fn publish_from_mlflow_publishes_the_champion_as_the_next_version_and_tags_it() {
    let (uri, client) = server();
    let (bootstrap, topic) = kafka_topic("publish");
    let model_name = unique("heart-disease-publish-test");
    let out = temp_dir("publish");
    support::success(&trainer(&[
        "train",
        "--data",
        cleveland().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--folds",
        "2",
        "--mlflow-uri",
        &uri,
        "--mlflow-experiment",
        &unique("heart-risk-publish-test"),
        "--mlflow-model-name",
        &model_name,
    ]));
    let env = [
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()),
        ("TRAINER_TOPIC", topic.as_str()),
    ];
    let reference = format!("models:/{model_name}@champion");
    let stdout = support::success(&trainer_with_env(
        &["publish", "--from-mlflow", &reference, "--mlflow-uri", &uri],
        &env,
    ));
    let mv = client
        .model_version_by_alias(&model_name, "champion")
        .unwrap();
    assert!(
        stdout.contains(&format!("MLflow {model_name} version 1, run {}", mv.run_id))
            && stdout.contains("as version 1 to"),
        "{stdout}"
    );
    // The record on the topic names its MLflow source.
    let published = support::last_model_version(&bootstrap, &topic);
    assert_eq!(published.version, 1);
    assert_eq!(published.mlflow_run_id.as_deref(), Some(mv.run_id.as_str()));
    assert_eq!(published.mlflow_model_version, Some(1));
    let tags = client.model_version_tags(&model_name, "1").unwrap();
    let tag = |k: &str| tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
    assert_eq!(tag("kafka_topic"), Some(topic.clone()));
    assert_eq!(tag("kafka_version"), Some("1".to_owned()));
    let listed = support::success(&trainer_with_env(&["models"], &env));
    assert_eq!(
        listed.lines().count(),
        2,
        "header and one version:\n{listed}"
    );
    assert!(
        listed.contains(&model_name) || listed.contains("heart-disease"),
        "{listed}"
    );

    // A missing alias fails with MLflow's answer, and nothing is published.
    let output = trainer_with_env(
        &[
            "publish",
            "--from-mlflow",
            &format!("models:/{model_name}@nope"),
            "--mlflow-uri",
            &uri,
        ],
        &env,
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("get model version by alias"), "{stderr}");
}

#[test]
fn eda_logs_its_summary_and_plots_as_a_run() {
    let (uri, client) = server();
    let out = temp_dir("eda");
    let output = trainer(&[
        "eda",
        "--data",
        cleveland().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--mlflow-uri",
        &uri,
        "--mlflow-experiment",
        &unique("heart-risk-eda-test"),
    ]);
    let stdout = support::success(&output);
    let run_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("mlflow: eda run "))
        .unwrap_or_else(|| panic!("no run id in {stdout}"));
    let listed: Vec<String> = client
        .list_artifacts(run_id, "")
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    for file in [
        "summary.md",
        "summary.json",
        "class_balance.png",
        "correlation.png",
        "class_distributions.png",
        "hist_age.png",
    ] {
        assert!(listed.iter().any(|p| p == file), "{file} not in {listed:?}");
    }
    assert_eq!(client.get_run(run_id).unwrap().info.status, "FINISHED");
}

#[test]
fn train_fails_fast_with_a_clear_message_when_mlflow_is_down() {
    let out = temp_dir("down");
    let started = Instant::now();
    let output = trainer(&[
        "train",
        "--data",
        cleveland().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--mlflow-uri",
        "http://127.0.0.1:1",
    ]);
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("mlflow at http://127.0.0.1:1 is unreachable")
            && stderr.contains("--mlflow-optional"),
        "{stderr}"
    );
    assert!(!out.join("model.avro").exists(), "trained anyway");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn train_goes_on_without_tracking_when_mlflow_is_down_and_optional() {
    let out = temp_dir("optional");
    let output = trainer(&[
        "train",
        "--data",
        cleveland().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--folds",
        "2",
        "--mlflow-uri",
        "http://127.0.0.1:1",
        "--mlflow-optional",
    ]);
    let stdout = support::success(&output);
    assert!(!stdout.contains("mlflow: run"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("mlflow unavailable"), "{stderr}");
    assert!(out.join("model.avro").is_file());
}

#[test]
fn a_client_with_a_token_talks_to_an_open_server() {
    // The test server has no auth, so it ignores the bearer header; this checks it is well formed.
    let (uri, _) = server();
    let client = Client::new(&uri, Auth::Token("unused".into()), Duration::from_secs(10));
    client.health().unwrap();
    assert!(!client.server_version().unwrap().is_empty());
}

/// The JSON in a single-quoted YAML scalar on the line starting with `prefix`.
fn yaml_json_scalar(yaml: &str, prefix: &str) -> serde_json::Value {
    let line = yaml
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {yaml}"));
    serde_json::from_str(line.trim_matches('\'')).unwrap()
}

#[test]
fn a_scikit_learn_pipeline_registered_in_mlflow_is_exported_and_imported() {
    let (uri, _client) = server();
    let Ok(python) = std::env::var("MLFLOW_PYTHON") else {
        eprintln!("MLFLOW_PYTHON unset: skipping the scikit-learn pipeline logged through mlflow");
        return;
    };
    let dir = temp_dir("sklearn");
    let name = unique("heart-sklearn");
    let sklearn = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sklearn");
    let data = cleveland();
    // What a Python team does: fit, log with mlflow.sklearn, register, point the alias at it.
    // MLflow 3 saves with skops, which asks to be told that a tree's types are trusted.
    let script = format!(
        r#"
import sys
sys.path.insert(0, {sklearn:?})
import mlflow, mlflow.sklearn, train_example
x, y = train_example.load({data:?})
pipeline = train_example.pipeline("random_forest").fit(x, y)
mlflow.set_experiment({experiment:?})
with mlflow.start_run():
    info = mlflow.sklearn.log_model(pipeline, name="model", registered_model_name={name:?},
                                    pip_requirements=["scikit-learn"],
                                    skops_trusted_types=["numpy.dtype", "sklearn.tree._tree.Tree"])
mlflow.MlflowClient().set_registered_model_alias({name:?}, "champion", info.registered_model_version)
"#,
        sklearn = sklearn.display().to_string(),
        data = data.display().to_string(),
        experiment = unique("heart-sklearn-test"),
    );
    let python_run = |args: &[&str]| support::python_run(&python, &uri, args);
    python_run(&["-c", &script]);
    let export = dir.join("export.json");
    let reference = format!("models:/{name}@champion");
    python_run(&[
        sklearn.join("export.py").to_str().unwrap(),
        &reference,
        "--data",
        data.to_str().unwrap(),
        "--out",
        export.to_str().unwrap(),
    ]);
    let model = dir.join("model.avro");
    let stdout = support::success(&trainer(&[
        "import-sklearn",
        "--sklearn",
        export.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]));
    assert!(stdout.contains("golden vectors reproduce"), "{stdout}");
    let version = ModelVersion::decode(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(version.algorithm, "random_forest");
    let loaded = heart_model::Model::load(version).unwrap();
    let origin = &loaded.artifact.hyperparameters;
    assert_eq!(origin.get("origin.source"), Some(&reference), "{origin:?}");
    assert_eq!(
        origin.get("origin.library").map(String::as_str),
        Some("scikit-learn")
    );
    assert!(
        loaded.artifact.profile.is_some(),
        "drift and explanations need the profile"
    );
}
