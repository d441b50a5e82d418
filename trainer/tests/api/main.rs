//! API tests without a broker: the `trainer` binary end to end on the Cleveland file (read from
//! its path, never copied), and the artifact it writes checked by the scorer's loader.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod data_script;
mod support;

use heart_model::{Model, ModelLoadError};
use heart_schemas::{AvroRecord, ModelVersion};
use support::{cleveland, run_trainer, temp_dir};

#[test]
fn train_writes_report_plots_and_a_verifying_model_that_meets_the_bar() {
    let out = temp_dir("train");
    let stdout = run_trainer(&[
        "train",
        "--data",
        cleveland().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("| model |"),
        "prints the CV table:\n{stdout}"
    );
    for file in [
        "report.json",
        "report.md",
        "model.avro",
        "candidates/logistic_regression.avro",
        "candidates/decision_tree.avro",
        "candidates/random_forest.avro",
        "candidates/gradient_boosting.avro",
        "roc_curves.png",
        "roc_folds.png",
        "confusion_logistic_regression.png",
        "confusion_decision_tree.png",
        "confusion_random_forest.png",
        "confusion_gradient_boosting.png",
        "reliability.png",
        "missing_fields.png",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    for model in [
        "logistic_regression",
        "decision_tree",
        "random_forest",
        "gradient_boosting",
    ] {
        let m = &report["models"][model];
        assert!(m["best_params"].is_object(), "{model} best_params");
        for metric in ["roc_auc", "accuracy", "precision", "recall", "f1", "brier"] {
            assert!(m["cv"][metric]["mean"].is_f64(), "{model} {metric} mean");
            assert!(m["cv"][metric]["std"].is_f64(), "{model} {metric} std");
        }
        let calibration = &m["calibration"];
        assert_eq!(calibration["brier"]["mean"], m["cv"]["brier"]["mean"]);
        assert!(calibration["platt_brier"]["mean"].is_f64(), "{model} platt");
        assert_eq!(calibration["reliability"].as_array().unwrap().len(), 10);
    }
    let masks = report["missing_fields"]["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 16, "none, 13 fields, 2 groups");
    assert_eq!(masks[0]["name"], "none");
    assert_eq!(
        masks[0]["roc_auc"]["mean"],
        report["best"]["cv"]["roc_auc"]["mean"]
    );
    let best = report["best"]["model"].as_str().unwrap();
    let best_auc = report["models"][best]["cv"]["roc_auc"]["mean"]
        .as_f64()
        .unwrap();
    assert!(
        best_auc >= 0.915,
        "chosen {best} has mean CV ROC-AUC {best_auc}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("0.919") && md.contains("0.917") && md.contains("0.918"));
    assert!(md.contains("| Brier |") && md.contains("## Missing fields"));

    let bytes = std::fs::read(out.join("model.avro")).unwrap();
    let version = ModelVersion::decode(&bytes).unwrap();
    assert_eq!(version.version, 0, "unpublished");
    assert_eq!(version.name, "heart-disease");
    assert_eq!(version.algorithm, best);
    let model = Model::load(version.clone()).unwrap();
    assert_eq!(
        model.artifact.training_data_sha256,
        "a74b7efa387bc9d108d7d0115d831fe9b414b29ae7124f331b622b4efa0427c8"
    );
    assert!(model.artifact.cv_metrics["cv.roc_auc.mean"] >= 0.915);

    let mut tampered = version;
    let mid = tampered.payload.len() / 2;
    tampered.payload[mid] ^= 0x01;
    assert!(matches!(
        Model::load(tampered),
        Err(ModelLoadError::ChecksumMismatch { .. })
    ));
}

#[test]
fn train_algorithm_ships_that_kind_and_writes_every_candidate_loadable() {
    let out = temp_dir("train-algorithm");
    run_trainer(&[
        "train",
        "--data",
        cleveland().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--folds",
        "3",
        "--algorithm",
        "decision_tree",
    ]);
    let load = |file: &str| {
        let bytes = std::fs::read(out.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        Model::load(ModelVersion::decode(&bytes).unwrap()).unwrap()
    };
    let shipped = load("model.avro");
    assert_eq!(shipped.version.algorithm, "decision_tree");
    for model in [
        "logistic_regression",
        "decision_tree",
        "random_forest",
        "gradient_boosting",
    ] {
        let candidate = load(&format!("candidates/{model}.avro"));
        assert_eq!(candidate.version.algorithm, model);
        assert_eq!(candidate.version.version, 0, "unpublished");
        if model == "decision_tree" {
            assert_eq!(candidate.version.checksum, shipped.version.checksum);
        }
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["best"]["model"], "decision_tree");
    assert_eq!(
        report["artifact"]["candidates"].as_array().unwrap().len(),
        4
    );

    let gb = out.join("gb");
    run_trainer(&[
        "train",
        "--data",
        cleveland().to_str().unwrap(),
        "--out",
        gb.to_str().unwrap(),
        "--folds",
        "3",
        "--algorithm",
        "gradient_boosting",
    ]);
    let bytes = std::fs::read(gb.join("model.avro")).unwrap();
    let boosted = Model::load(ModelVersion::decode(&bytes).unwrap()).unwrap();
    assert_eq!(boosted.version.algorithm, "gradient_boosting");
}

#[test]
fn eda_writes_summaries_and_plots() {
    let out = temp_dir("eda");
    run_trainer(&[
        "eda",
        "--data",
        cleveland().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    for file in [
        "summary.md",
        "summary.json",
        "class_balance.png",
        "correlation.png",
        "class_distributions.png",
        "hist_age.png",
        "hist_chol.png",
        "hist_oldpeak.png",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["rows"], 303);
    assert_eq!(s["columns"][11]["name"], "ca");
    assert_eq!(s["columns"][11]["missing"], 4);
    assert_eq!(s["columns"][12]["missing"], 2);
}

#[test]
fn a_bad_file_fails_with_its_line_and_column() {
    let dir = temp_dir("bad");
    let bad = dir.join("bad.data");
    std::fs::write(
        &bad,
        "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0\n\
         67.0,1.0,4.0,1x0.0,286.0,0.0,2.0,108.0,1.0,1.5,2.0,3.0,3.0,2\n",
    )
    .unwrap();
    let out = support::trainer(&[
        "train",
        "--data",
        bad.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2, column trestbps"),
        "stderr: {stderr}"
    );
}
