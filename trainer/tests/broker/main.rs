//! Broker tests: publish → list → the scorer's loader.
//!
//! Needs a running Kafka broker at `KAFKA_BOOTSTRAP_SERVERS` (default `127.0.0.1:9092`); start
//! one with `scripts/kafka start`. Without a broker every test FAILS (after a bounded timeout)
//! with a message saying so; none is skipped. Each test creates its own compacted topic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use heart_model::{Estimator, Model, ModelLoadError};
use heart_schemas::{AvroRecord, ModelVersion};
use heart_trainer::error::PublishError;
use heart_trainer::publish;
use support::{Broker, trained_version};

#[test]
fn publish_assigns_increasing_versions_and_models_lists_them() {
    let broker = Broker::connect();
    let kafka = broker.new_topic("versions");
    let v = trained_version();
    assert_eq!(v.version, 0);
    assert!(publish::list(&kafka).unwrap().is_empty());
    assert_eq!(publish::publish(v.clone(), &kafka).unwrap().version, 1);
    assert_eq!(publish::publish(v.clone(), &kafka).unwrap().version, 2);
    let mut other = v;
    other.name = "other-model".into();
    // The payload names the model too, so renaming only the envelope must be refused.
    assert!(matches!(
        publish::publish(other, &kafka),
        Err(PublishError::Verify(
            ModelLoadError::EnvelopeMismatch { .. }
        ))
    ));
    let listed = publish::list(&kafka).unwrap();
    let versions: Vec<i64> = listed.iter().map(|l| l.version).collect();
    assert_eq!(versions, [1, 2]);
    assert!(listed.iter().all(|l| l.name == "heart-disease"));
    assert!(listed[0].roc_auc.unwrap() > 0.85);
}

#[test]
fn models_lists_only_committed_versions_of_a_topic_ending_in_transaction_markers() {
    let broker = Broker::connect();
    let kafka = broker.new_topic("txn");
    let mut v = trained_version();
    v.version = 1;
    broker.write_in_transaction(&kafka.topic, b"heart-disease", &v.encode().unwrap(), true);
    v.version = 7;
    broker.write_in_transaction(&kafka.topic, b"heart-disease", &v.encode().unwrap(), false);
    // The last offsets are a commit marker, an aborted record and an abort marker, none of them
    // delivered to a read_committed reader: the read must end anyway, not time out.
    let listed = publish::list(&kafka).unwrap();
    let versions: Vec<i64> = listed.iter().map(|l| l.version).collect();
    assert_eq!(versions, [1], "the aborted version 7 is never seen");
    assert_eq!(
        publish::publish(trained_version(), &kafka).unwrap().version,
        2
    );
}

#[test]
fn the_published_record_loads_in_the_scorer_loader_and_a_tampered_copy_does_not() {
    let broker = Broker::connect();
    let kafka = broker.new_topic("load");
    let published = publish::publish(trained_version(), &kafka).unwrap();
    let (key, value) = broker.read_one(&kafka.topic, published.offset);
    assert_eq!(
        key, b"heart-disease/1",
        "keyed <name>/<version>: compaction keeps each"
    );
    let version = ModelVersion::decode(&value).unwrap();
    assert_eq!(version.version, published.version);
    let model = Model::load(version.clone()).unwrap();
    assert_eq!(model.version_number(), 1);

    let mut flipped = version.clone();
    let mid = flipped.payload.len() / 2;
    flipped.payload[mid] ^= 0x01;
    assert!(matches!(
        Model::load(flipped),
        Err(ModelLoadError::ChecksumMismatch { .. })
    ));
}

#[test]
fn an_artifact_failing_its_golden_vectors_is_not_published() {
    let broker = Broker::connect();
    let kafka = broker.new_topic("refuse");
    let v = trained_version();
    let mut artifact = Model::load(v.clone()).unwrap().artifact;
    match &mut artifact.estimator {
        Estimator::Logistic { intercept, .. } => *intercept += 0.5,
        Estimator::Forest { trees } => trees.truncate(1),
        Estimator::Boosted { base_score, .. } => *base_score += 0.5,
        Estimator::Calibrated { platt, .. } => platt.b += 0.5,
    }
    // A consistent checksum: only the golden vectors can catch this.
    let tampered = artifact
        .to_version(0, v.created_at, &v.code_version)
        .unwrap();
    let err = publish::publish(tampered, &kafka).unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::Verify(ModelLoadError::GoldenMismatch { .. })
        ),
        "{err}"
    );
    assert!(
        publish::list(&kafka).unwrap().is_empty(),
        "nothing was produced"
    );
}

#[test]
fn cli_train_publish_then_models_lists_the_assigned_version() {
    let broker = Broker::connect();
    let kafka = broker.new_topic("cli");
    let out = std::env::temp_dir().join(format!("heart-trainer-broker-cli-{}", std::process::id()));
    let stdout = support::run_trainer(
        &[
            "train",
            "--data",
            support::cleveland().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--publish",
        ],
        &kafka,
    );
    assert!(stdout.contains("version 1"), "{stdout}");
    let stdout = support::run_trainer(
        &[
            "publish",
            "--model",
            out.join("model.avro").to_str().unwrap(),
        ],
        &kafka,
    );
    assert!(stdout.contains("as version 2"), "{stdout}");
    let stdout = support::run_trainer(&["models"], &kafka);
    assert!(stdout.contains("heart-disease"), "{stdout}");
    assert_eq!(
        stdout.lines().count(),
        3,
        "header and two versions:\n{stdout}"
    );
}
