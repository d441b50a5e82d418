//! `scorer score-file`, run as a process: outputs in both formats, rejects with the dead-letter
//! path's reasons and messages, the summary, the exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use heart_schemas::{AvroRecord, PatientRecord};
use heart_scorer::dead_letter::{Source, dead_letter};
use heart_scorer::score::{Rules, score_bytes};
use serde_json::Value;

use crate::support::{model_version, patient};

const HEADER: &str =
    "patient_id,age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal";

/// Three good rows (one without an id, one with `?` for ca) and three bad ones.
const ROWS: &str = "\
alice,63,1,4,130,250,0,0,150,0,1,2,0,3
bob,500,1,4,130,250,0,0,150,0,1,2,0,9
,45,0,3,120,200,0,0,170,0,0,1,?,3
carol,70,1,x,130,,0,0,150,0,1,2,0,3

dave,52,1,4,130,250,0,0,150,0,1,2,0,3
erin,61,1,4,130,250,0,2,150,1,1,2,3,8
";

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("heart-score-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let model = model_version(7, 1.5).encode().unwrap();
        std::fs::write(dir.join("model.avro"), model).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn score_file(dir: &Dir, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_scorer"))
        .arg("score-file")
        .arg("--model-file")
        .arg(dir.path("model.avro"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("SCORER_MODEL_FILE")
        .output()
        .unwrap();
    eprintln!("stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The reason and message the dead-letter topic carries for `record` sent through Kafka.
fn dead_letter_of(record: &PatientRecord) -> (String, String) {
    let model = heart_model::Model::load(model_version(7, 1.5)).unwrap();
    let value = record.encode().unwrap();
    let rejection = score_bytes(&model, &Rules::default(), Some(&value), 0).unwrap_err();
    let source = Source {
        topic: "patients",
        partition: 0,
        offset: 0,
        key: Some(record.patient_id.as_bytes()),
        value: Some(&value),
        trace: None,
    };
    let letter = dead_letter(source, &rejection, 0, 1_000_000);
    (letter.reason, letter.message)
}

#[test]
fn a_csv_is_scored_to_jsonl_with_rejects_like_the_dead_letters_and_a_summary() {
    let dir = Dir::new("jsonl");
    let input = dir.write("in.csv", &format!("{HEADER}\n{ROWS}"));
    let (output, rejects) = (dir.path("out.jsonl"), dir.path("rejects.jsonl"));
    let out = score_file(
        &dir,
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--rejects",
            rejects.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());

    let predictions = json_lines(&output);
    let ids: Vec<&str> = predictions
        .iter()
        .map(|p| p["patient_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alice", "csv-4", "dave"]);
    let keys: Vec<&String> = predictions[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "event_time",
            "imputed_fields",
            "label",
            "model_name",
            "model_version",
            "patient_id",
            "probability",
            "risk_level",
            "scored_at"
        ]
    );
    assert_eq!(predictions[0]["model_version"], 7);

    let rejected = json_lines(&rejects);
    let lines: Vec<u64> = rejected
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 5, 8]);
    // Values the stream can carry get the dead letter's reason and message, byte for byte.
    let bob = PatientRecord {
        patient_id: "bob".into(),
        thal: Some(9),
        ..patient(500)
    };
    let erin = PatientRecord {
        patient_id: "erin".into(),
        restecg: Some(2),
        exang: Some(1),
        ca: Some(3),
        thal: Some(8),
        ..patient(61)
    };
    for (entry, record) in [(&rejected[0], &bob), (&rejected[2], &erin)] {
        let (reason, message) = dead_letter_of(record);
        assert_eq!(entry["reason"], reason.as_str());
        assert_eq!(entry["message"], message.as_str());
    }
    assert_eq!(rejected[0]["reason"], "out_of_range");
    assert_eq!(rejected[0]["row"], "bob,500,1,4,130,250,0,0,150,0,1,2,0,9");
    // A record with a missing or mistyped value never reaches the stream; /predict's wording.
    assert_eq!(rejected[1]["reason"], "missing_field");
    assert_eq!(rejected[1]["message"], "cp = \"x\" is not an integer");

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("score-file: 6 rows in"), "{stderr}");
    assert!(stderr.contains("model version 7"), "{stderr}");
    assert!(stderr.contains("scored   3 ("), "{stderr}");
    assert!(
        stderr.contains("rejected 3 (missing_field 1, out_of_range 2)"),
        "{stderr}"
    );
    // stderr is not a terminal here: no progress bar drawn.
    assert!(!stderr.contains('\r') && !stderr.contains("[="), "{stderr}");
}

#[test]
fn csv_output_has_the_prediction_columns_and_the_same_values() {
    let dir = Dir::new("csv");
    let input = dir.write("in.csv", &format!("{HEADER}\n{ROWS}"));
    let (jsonl, csv) = (dir.path("out.jsonl"), dir.path("out.csv"));
    for output in [&jsonl, &csv] {
        let out = score_file(
            &dir,
            &[
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
            ],
        );
        assert!(out.status.success());
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "patient_id,event_time,scored_at,probability,label,risk_level,model_name,model_version,imputed_fields"
        )
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let predictions = json_lines(&jsonl);
    assert_eq!(rows.len(), predictions.len());
    for (row, p) in rows.iter().zip(&predictions) {
        assert_eq!(row[0], p["patient_id"]);
        assert_eq!(
            row[3].parse::<f64>().unwrap(),
            p["probability"].as_f64().unwrap()
        );
        assert_eq!(row[5], p["risk_level"]);
        assert_eq!(row[7], "7");
    }
}

#[test]
fn the_headerless_uci_file_and_jsonl_on_stdout_are_read() {
    let dir = Dir::new("uci");
    let input = dir.write(
        "cleveland.data",
        "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0\n\
         67.0,1.0,4.0,160.0,286.0,0.0,2.0,108.0,1.0,1.5,2.0,3.0,3.0,2\n\
         67.0,1.0,4.0,120.0,229.0,0.0,2.0,129.0,1.0,2.6,2.0,?,7.0,1\n",
    );
    let out = score_file(&dir, &["--input", input.to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let ids: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["patient_id"].to_string())
        .collect();
    assert_eq!(
        ids,
        ["\"cleveland-1\"", "\"cleveland-2\"", "\"cleveland-3\""]
    );

    let jsonl = dir.write(
        "in.jsonl",
        &format!("{}\n[1]\n", serde_json::to_string(&patient(50)).unwrap()),
    );
    let rejects = dir.path("rejects.jsonl");
    let out = score_file(
        &dir,
        &[
            "--input",
            jsonl.to_str().unwrap(),
            "--output-format",
            "csv",
            "--rejects",
            rejects.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
    let rejected = json_lines(&rejects);
    assert_eq!(rejected[0]["reason"], "malformed_row");
    assert_eq!(rejected[0]["row"], "[1]");
}

#[test]
fn an_unusable_model_or_input_exits_non_zero_and_says_what_to_do() {
    let dir = Dir::new("errors");
    let input = dir.write("in.csv", &format!("{HEADER}\n{ROWS}"));
    std::fs::write(dir.path("model.avro"), b"not a model").unwrap();
    let out = score_file(&dir, &["--input", input.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("trainer train"), "{stderr}");

    let dir = Dir::new("no-input");
    let out = score_file(&dir, &["--input", dir.path("absent.csv").to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("absent.csv") && stderr.contains("--input"),
        "{stderr}"
    );

    let out = score_file(
        &dir,
        &[
            "--input",
            dir.write("bad.csv", "age,sex\n1,0\n").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no cp column"), "{stderr}");
}
