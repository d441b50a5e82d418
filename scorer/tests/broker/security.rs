//! The whole flow over SASL_SSL (SCRAM-SHA-512, TLS with the throwaway CA of `scripts/kafka`),
//! configured only through the documented `KAFKA_*` variables; refused credentials and an
//! untrusted certificate; and no password in anything the binaries print.
//!
//! Needs the test broker started with `KAFKA_SASL_SSL_PORT` (scripts/test does): each SCRAM
//! user's settings are in `$KAFKA_STATE_DIR/sasl/USER.env`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use heart_schemas::AvroRecord;

use super::{WAIT, fixtures};
use crate::support::{
    self, Scorer, Topics, assert_exactly_once, cleveland, cleveland_path, http, read_committed,
    workspace_bin,
};

/// A user's SASL_SSL client settings, as `scripts/kafka env --sasl-ssl USER` prints them.
fn secured(user: &str) -> Vec<(String, String)> {
    let state = std::env::var("KAFKA_STATE_DIR").unwrap_or_else(|_| {
        panic!("KAFKA_STATE_DIR is not set: start the broker with KAFKA_SASL_SSL_PORT set (scripts/test does)")
    });
    let path = PathBuf::from(state)
        .join("sasl")
        .join(format!("{user}.env"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} ({e}): start the broker with KAFKA_SASL_SSL_PORT set (scripts/test does)",
            path.display()
        )
    });
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn setting<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{key} missing"))
}

/// `env` with `key` replaced by `value`.
fn with(env: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k == key {
                    value.to_owned()
                } else {
                    v.clone()
                },
            )
        })
        .collect()
}

/// Every SCRAM user's password: none may appear in any output.
fn passwords() -> Vec<String> {
    ["heart-scorer", "heart-producer", "heart-trainer"]
        .iter()
        .map(|u| setting(&secured(u), "KAFKA_SASL_PASSWORD").to_owned())
        .collect()
}

/// Runs a workspace binary with only `env` (plus PATH) for Kafka, at debug level.
fn run(bin: &str, args: &[&str], env: &[(String, String)], level: &str) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(workspace_bin(bin))
        .args(args)
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", level)
        .output()
        .unwrap();
    (out, started.elapsed())
}

/// `env` as the scorer helper takes it, with `RUST_LOG=level`.
fn borrowed<'a>(env: &'a [(String, String)], level: &'a str) -> Vec<(&'a str, &'a str)> {
    env.iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([("RUST_LOG", level)])
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_secret(what: &str, output: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !output.contains(secret.as_str()),
            "{what} printed a password:\n{output}"
        );
    }
}

/// `trainer publish` of `model` to `topic` with `env`, at debug level.
fn publish(model: &std::path::Path, topic: &str, env: &[(String, String)]) -> (Output, Duration) {
    let model = model.to_str().unwrap();
    run(
        "trainer",
        &["publish", "--model", model, "--topic", topic],
        env,
        "debug",
    )
}

fn model_file(test: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.avro", support::unique(test)));
    let version = fixtures::trained_on(&cleveland(), 1);
    std::fs::write(&path, version.encode().unwrap()).unwrap();
    path
}

#[test]
fn the_whole_flow_runs_over_sasl_ssl_and_no_password_is_printed() {
    let secrets = passwords();
    let t = Topics::create("sasl", 3);
    let model = model_file("sasl-model");
    let mut printed = Vec::new();

    let trainer = secured("heart-trainer");
    let (out, _) = publish(&model, &t.models, &trainer);
    assert!(out.status.success(), "trainer publish: {}", text(&out));
    printed.push(("trainer publish", text(&out)));

    let scorer_env = secured("heart-scorer");
    let env = borrowed(&scorer_env, "debug");
    let mut scorer = Scorer::start_with_env(&t, &support::unique("sasl"), &[], &env);
    scorer.wait_ready(WAIT);

    let producer = secured("heart-producer");
    let data = cleveland_path();
    let (out, _) = run(
        "producer",
        &[
            "send",
            "--topic",
            &t.patients,
            "--source",
            "uci",
            "--data",
            data.to_str().unwrap(),
            "--trace",
        ],
        &producer,
        "debug",
    );
    assert!(out.status.success(), "producer send: {}", text(&out));
    printed.push(("producer send", text(&out)));

    let (out, _) = run(
        "producer",
        &[
            "tail",
            "--topic",
            &t.predictions,
            "--from-beginning",
            "--count",
            "303",
            "--timeout-s",
            "90",
        ],
        &producer,
        "debug",
    );
    assert!(out.status.success(), "producer tail: {}", text(&out));
    let tailed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"model_version\""))
        .count();
    assert_eq!(tailed, 303, "producer tail over SASL_SSL");
    printed.push(("producer tail", text(&out)));

    // Exactly once, as a read_committed reader on the plaintext listener sees it.
    let keys: BTreeSet<String> = (1..=303).map(|i| format!("cleveland-{i}")).collect();
    assert_exactly_once(
        &read_committed(&t.predictions, keys.len(), WAIT, super::SETTLE),
        &keys,
    );

    for path in ["/model", "/metrics", "/readyz"] {
        let (status, body) = http(scorer.port, "GET", path, None).unwrap();
        assert_eq!(status, 200, "{path}");
        printed.push((path, body));
    }
    for bin in ["scorer", "producer", "trainer"] {
        let out = Command::new(if bin == "scorer" {
            PathBuf::from(env!("CARGO_BIN_EXE_scorer"))
        } else {
            workspace_bin(bin)
        })
        .arg("--help")
        .env("KAFKA_SASL_PASSWORD", &secrets[0])
        .output()
        .unwrap();
        assert!(out.status.success(), "{bin} --help");
        printed.push(("--help", text(&out)));
    }
    scorer.terminate(Duration::from_secs(20));
    printed.push(("scorer", scorer.log_text()));
    let scorer_log = scorer.log_text();
    assert!(
        scorer_log.contains("sasl_ssl") || scorer_log.contains("security.protocol=sasl_ssl"),
        "the scorer's startup summary names the protocol:\n{scorer_log}"
    );
    for (what, output) in &printed {
        assert_no_secret(what, output, &secrets);
    }
}

#[test]
fn refused_credentials_and_an_untrusted_broker_end_the_tools_fast_naming_the_setting() {
    let secrets = passwords();
    let t = Topics::create("refused", 1);
    let producer = secured("heart-producer");
    let data = cleveland_path();
    let send = [
        "send",
        "--topic",
        &t.patients,
        "--source",
        "uci",
        "--data",
        data.to_str().unwrap(),
    ];
    let cases = [
        (
            "wrong password",
            with(&producer, "KAFKA_SASL_PASSWORD", "not-the-password"),
            "KAFKA_SASL_PASSWORD",
        ),
        (
            "unknown user",
            with(&producer, "KAFKA_SASL_USERNAME", "nobody"),
            "KAFKA_SASL_USERNAME",
        ),
        // No CA file: the system's CAs, none of which signed the throwaway broker certificate.
        (
            "untrusted CA",
            with(&producer, "KAFKA_SSL_CA_LOCATION", ""),
            "KAFKA_SSL_CA_LOCATION",
        ),
    ];
    for (case, env, setting) in &cases {
        let (out, took) = run("producer", &send, env, "debug");
        let output = text(&out);
        assert!(!out.status.success(), "{case}: producer send succeeded");
        assert!(
            took < Duration::from_secs(15),
            "{case}: took {took:?}:\n{output}"
        );
        assert!(
            output.contains(setting),
            "{case}: names {setting}:\n{output}"
        );
        assert_no_secret(case, &output, &secrets);
    }

    let model = model_file("refused-model");
    let trainer = with(
        &secured("heart-trainer"),
        "KAFKA_SASL_PASSWORD",
        "not-the-password",
    );
    let (out, took) = publish(&model, &t.models, &trainer);
    let output = text(&out);
    assert!(!out.status.success(), "trainer publish succeeded");
    assert!(took < Duration::from_secs(15), "took {took:?}:\n{output}");
    assert!(output.contains("KAFKA_SASL_PASSWORD"), "{output}");
    assert_no_secret("trainer publish", &output, &secrets);
}

#[test]
fn a_scorer_with_a_wrong_password_stays_not_ready_says_why_and_logs_it_once_per_interval() {
    let t = Topics::create("refused-scorer", 1);
    let scorer_env = with(
        &secured("heart-scorer"),
        "KAFKA_SASL_PASSWORD",
        "not-the-password",
    );
    let env = borrowed(&scorer_env, "info,heart_kafka=debug");
    let mut scorer = Scorer::start_with_env(&t, &support::unique("refused"), &[], &env);
    let started = Instant::now();
    let reason = loop {
        assert!(scorer.alive(), "the scorer exited:\n{}", scorer.log_text());
        if let Some((503, body)) = http(scorer.port, "GET", "/readyz", None)
            && body.contains("KAFKA_SASL_PASSWORD")
        {
            break body;
        }
        assert!(
            started.elapsed() < WAIT,
            "/readyz never said why:\n{}",
            scorer.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(reason.contains("heart-scorer"), "{reason}");
    // librdkafka retries with backoff (and folds identical errors): wait for a refusal after
    // the first, then count the error lines (the next one is due 30 s after the first).
    let started = Instant::now();
    while !scorer
        .log_text()
        .contains("kafka refused the connection again")
    {
        assert!(
            started.elapsed() < WAIT,
            "no retries seen:\n{}",
            scorer.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = scorer.log_text();
    let errors = log
        .lines()
        .filter(|l| l.contains("ERROR"))
        .filter(|l| l.contains("kafka refused the connection"))
        .count();
    assert_eq!(errors, 1, "one error line per interval:\n{log}");
    assert!(scorer.alive(), "the scorer exited:\n{log}");
    assert!(
        !log.contains("not-the-password"),
        "the password was logged:\n{log}"
    );
    scorer.terminate(Duration::from_secs(20));
}

/// Values no Cleveland row has, so any occurrence in a log is one of these records'.
const MARKED_ID: &str = "marked-patient-5f0c";
const MARKED_VALUES: [(&str, f64); 4] = [
    ("trestbps", 131.987_654),
    ("chol", 241.135_792),
    ("thalach", 149.246_813),
    ("oldpeak", 1.357_913),
];
/// Out of range: such a record becomes a dead letter (whose reason names the value, on the
/// dead-letter topic, not in a log).
const MARKED_OUT_OF_RANGE: f64 = 931.987_654;

fn marked_patient(trestbps: f64) -> serde_json::Value {
    let mut patient = serde_json::json!({
        "patient_id": MARKED_ID, "age": 61, "sex": 1, "cp": 3, "fbs": 0, "restecg": 0,
        "exang": 1, "slope": 2, "ca": 1, "thal": 7,
    });
    for (field, value) in MARKED_VALUES {
        patient[field] = value.into();
    }
    patient["trestbps"] = trestbps.into();
    patient
}

fn assert_no_patient_value(what: &str, output: &str) {
    let markers = MARKED_VALUES
        .iter()
        .map(|(_, v)| v.to_string())
        .chain([MARKED_OUT_OF_RANGE.to_string(), MARKED_ID.to_owned()]);
    for marker in markers {
        assert!(
            !output.contains(&marker),
            "{what} logged {marker}, a patient's value, above debug:\n{output}"
        );
    }
}

#[test]
fn patient_values_stay_out_of_every_log_above_debug() {
    let t = Topics::create("patient-values", 1);
    support::publish_model(&t.models, &fixtures::trained_on(&cleveland(), 1));
    let mut scorer = Scorer::start(&t, &support::unique("patient-values"), &[]);
    scorer.wait_ready(WAIT);
    let plain = [("KAFKA_BOOTSTRAP_SERVERS".to_owned(), support::bootstrap())];

    let file = std::env::temp_dir().join(format!("{}.jsonl", support::unique("marked")));
    std::fs::write(&file, format!("{}\n", marked_patient(MARKED_VALUES[0].1))).unwrap();
    let send = [
        "send",
        "--topic",
        &t.patients,
        "--source",
        "jsonl",
        "--data",
        file.to_str().unwrap(),
    ];
    let (out, _) = run("producer", &send, &plain, "info");
    assert!(out.status.success(), "producer send: {}", text(&out));
    assert_no_patient_value("producer send", &text(&out));
    // Past the producer's own validation, as a buggy client would send it.
    let out_of_range = marked_patient(MARKED_OUT_OF_RANGE);
    let record = heart_schemas::PatientRecord::from_json(out_of_range.as_object().unwrap(), 0);
    assert!(record.is_err(), "{out_of_range} is valid");
    let mut features = [None; heart_schemas::N_FIELDS];
    for (slot, spec) in features.iter_mut().zip(heart_schemas::FIELDS.iter()) {
        *slot = out_of_range[spec.name].as_f64();
    }
    support::produce_patients(
        &t.patients,
        &[heart_schemas::PatientRecord::from_features(
            MARKED_ID.to_owned(),
            0,
            &features,
        )],
    );

    for (path, body, status) in [
        ("/predict", marked_patient(MARKED_VALUES[0].1), 200),
        ("/predict", out_of_range.clone(), 422),
        ("/predict/batch", serde_json::json!([out_of_range]), 422),
    ] {
        let (got, reply) = http(scorer.port, "POST", path, Some(&body.to_string())).unwrap();
        assert_eq!(got, status, "{path}: {reply}");
    }

    let dead_letters = ["--dead-letters", "--dead-letter-topic", &t.dead_letters];
    let tail = [
        &[
            "tail",
            "--topic",
            &t.predictions,
            "--count",
            "2",
            "--timeout-s",
            "60",
            "--summary",
        ][..],
        &dead_letters[..],
    ]
    .concat();
    let (out, _) = run("producer", &tail, &plain, "info");
    assert!(out.status.success(), "producer tail: {}", text(&out));
    assert_no_patient_value("producer tail", &String::from_utf8_lossy(&out.stderr));
    // The dead letter's message is where the value belongs, written as the search expects.
    let dead = read_committed(&t.dead_letters, 1, WAIT, super::SETTLE);
    let message = &dead[0].dead_letter().message;
    assert!(
        message.contains(&MARKED_OUT_OF_RANGE.to_string()),
        "{message}"
    );
    scorer.terminate(Duration::from_secs(20));
    let log = scorer.log_text();
    assert!(log.contains("scorer stopped"), "{log}");
    assert_no_patient_value("scorer", &log);
    let _ = std::fs::remove_file(file);
}
