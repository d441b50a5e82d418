//! Per-record cost of the scoring hot path, without Kafka: `cargo bench -p heart-scorer`.
//!
//! Prints nanoseconds per record for applying a logistic regression, a 200-tree depth-5
//! forest and 600 boosted stumps (the shapes the trainer produces), and for the scorer's whole
//! per-record step: Avro decode, validation, scoring and encoding the prediction, without and
//! with an explanation; then each model's explanation against applying it. Then the decode cost of each
//! framing through `heart_registry::Decoder`, the scorer's decoder (writer schemas registered in
//! the stand-in registry and fetched once before timing, as in a running scorer).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use heart_model::{Algorithm, Artifact, Estimator, Model, Node, Preprocessor, Tree};
use heart_registry::{Decoder, StandIn};
use heart_schemas::{AvroRecord, Framing, PatientRecord};
use heart_scorer::drift;
use heart_scorer::score::{Explain, Rules, score_bytes};

fn patients() -> Vec<PatientRecord> {
    (0..64)
        .map(|i| PatientRecord {
            patient_id: format!("bench-{i}"),
            event_time: 1_700_000_000_000,
            age: Some(30 + i % 45),
            sex: Some(i % 2),
            cp: Some(1 + i % 4),
            trestbps: Some(100.0 + f64::from(i)),
            chol: Some(180.0 + 2.0 * f64::from(i)),
            fbs: Some((i / 3) % 2),
            restecg: Some(i % 3),
            thalach: Some(120.0 + f64::from(i)),
            exang: Some((i / 2) % 2),
            oldpeak: Some(f64::from(i % 40) / 10.0),
            slope: Some(1 + i % 3),
            ca: (i % 5 != 0).then_some(i % 4),
            thal: (i % 7 != 0).then_some([3, 6, 7][(i % 3) as usize]),
        })
        .collect()
}

/// Deterministic pseudo-random numbers in [0, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn full_tree(depth: u32, width: usize, rng: &mut Lcg) -> Tree {
    let internal = (1usize << depth) - 1;
    let total = (1usize << (depth + 1)) - 1;
    let nodes = (0..total)
        .map(|i| {
            if i < internal {
                Node::Split {
                    feature: (rng.next() * width as f64) as u16,
                    threshold: rng.next() * 2.0 - 1.0,
                    left: (2 * i + 1) as u32,
                    right: (2 * i + 2) as u32,
                }
            } else {
                Node::Leaf {
                    probability: rng.next(),
                }
            }
        })
        .collect();
    Tree { nodes }
}

fn model(algorithm: Algorithm, rows: &[[Option<f64>; 13]]) -> Model {
    let preprocessor = Preprocessor::fit(rows);
    let width = preprocessor.width();
    let mut rng = Lcg(42);
    let estimator = match algorithm {
        Algorithm::LogisticRegression => Estimator::Logistic {
            weights: (0..width).map(|_| rng.next() - 0.5).collect(),
            intercept: 0.1,
        },
        // The trainer's gradient boosting on Cleveland: 600 stumps.
        Algorithm::GradientBoosting => Estimator::Boosted {
            base_score: -0.1,
            learning_rate: 0.02,
            trees: (0..600).map(|_| full_tree(1, width, &mut rng)).collect(),
        },
        _ => Estimator::Forest {
            trees: (0..200).map(|_| full_tree(5, width, &mut rng)).collect(),
        },
    };
    let mut artifact = Artifact {
        name: "bench".into(),
        algorithm,
        hyperparameters: BTreeMap::new(),
        preprocessor,
        estimator,
        training_data_sha256: String::new(),
        cv_metrics: BTreeMap::new(),
        golden: Vec::new(),
        profile: None,
    };
    artifact.set_profile(rows);
    artifact.set_golden(&rows[..4]);
    Model::load(artifact.to_version(1, 0, "bench").unwrap()).unwrap()
}

/// Runs `f` over the inputs until ~1 s has passed; returns ns per call (best of 3 runs).
fn bench<T>(inputs: &[T], mut f: impl FnMut(&T) -> f64) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let started = Instant::now();
        let mut calls = 0u64;
        let mut sink = 0.0;
        while started.elapsed().as_secs_f64() < 1.0 {
            for x in inputs {
                sink += f(x);
            }
            calls += inputs.len() as u64;
        }
        black_box(sink);
        best = best.min(started.elapsed().as_nanos() as f64 / calls as f64);
    }
    best
}

fn main() {
    let records = patients();
    let rows: Vec<_> = records.iter().map(PatientRecord::features).collect();
    let lr = model(Algorithm::LogisticRegression, &rows);
    let rf = model(Algorithm::RandomForest, &rows);
    let gb = model(Algorithm::GradientBoosting, &rows);
    let encoded: Vec<Vec<u8>> = records.iter().map(|r| r.encode().unwrap()).collect();
    let t = Rules::default();

    let lr_ns = bench(&rows, |r| lr.predict_features(r).probability);
    let rf_ns = bench(&rows, |r| rf.predict_features(r).probability);
    let gb_ns = bench(&rows, |r| gb.predict_features(r).probability);
    let decode_ns = bench(&encoded, |b| {
        f64::from(PatientRecord::decode(b).unwrap().age.unwrap_or_default())
    });
    let full_ns = bench(&encoded, |b| {
        let s = score_bytes(&lr, &t, Some(b), 0).unwrap();
        s.prediction.encode().unwrap().len() as f64
    });
    let explained = Rules {
        explain: Explain {
            stream: true,
            ..Explain::default()
        },
        ..Rules::default()
    };
    let full_explained_ns = bench(&encoded, |b| {
        let s = score_bytes(&lr, &explained, Some(b), 0).unwrap();
        s.prediction.encode().unwrap().len() as f64
    });
    println!(
        "per-record cost (best of 3 x 1 s, {} distinct records)",
        records.len()
    );
    println!("  apply logistic regression        {lr_ns:>10.0} ns");
    println!("  apply random forest (200 x d5)   {rf_ns:>10.0} ns");
    println!("  apply gradient boosting (600 x d1) {gb_ns:>8.0} ns");
    println!("  avro decode patient record       {decode_ns:>10.0} ns");
    println!("  decode+validate+score(LR)+encode {full_ns:>10.0} ns");
    println!(
        "  the same, explained (top 5)      {full_explained_ns:>10.0} ns  ({:.2} x)",
        full_explained_ns / full_ns
    );
    println!("explanation per record (Model::explain, then the top 5), against applying the model");
    for (name, model, apply_ns) in [
        ("logistic regression", &lr, lr_ns),
        ("random forest (200 x d5)", &rf, rf_ns),
        ("gradient boosting (600 x d1)", &gb, gb_ns),
    ] {
        let ns = bench(&rows, |r| model.explain(r).unwrap().summary(5).other);
        println!(
            "  {name:<30}{ns:>9.0} ns  ({:.1} x applying it)",
            ns / apply_ns
        );
    }
    let profile = lr.artifact.profile.as_ref().unwrap();
    let locate_ns = bench(&rows, |r| f64::from(drift::locate(profile, r)[0]));
    println!(
        "drift: binning one record's 13 fields       {locate_ns:>7.0} ns  ({:.2} of the whole step)",
        locate_ns / full_ns
    );
    imported(&rows, lr_ns, rf_ns);
    framings(&records);
}

/// ns per record for the scikit-learn pipelines `scripts/bench` imports into
/// `HEART_BENCH_SKLEARN_DIR` (`logistic_regression.avro`, `random_forest.avro`).
fn imported(rows: &[[Option<f64>; 13]], lr_ns: f64, rf_ns: f64) {
    let Some(dir) = std::env::var_os("HEART_BENCH_SKLEARN_DIR") else {
        println!(
            "imported scikit-learn pipelines: skipped (HEART_BENCH_SKLEARN_DIR unset; scripts/bench sets it)"
        );
        return;
    };
    println!("imported scikit-learn pipelines (trainer import-sklearn), against the models above");
    for (file, native_ns, native) in [
        ("logistic_regression.avro", lr_ns, "the logistic regression"),
        ("random_forest.avro", rf_ns, "the 200 x d5 forest"),
    ] {
        let bytes = std::fs::read(std::path::Path::new(&dir).join(file)).unwrap();
        let model = Model::load(heart_schemas::ModelVersion::decode(&bytes).unwrap()).unwrap();
        let ns = bench(rows, |r| model.predict_features(r).probability);
        let shape = match &model.artifact.estimator {
            Estimator::Forest { trees } => format!(
                ", {} trees, {} nodes, {:.1} ns a tree",
                trees.len(),
                trees.iter().map(|t| t.nodes.len()).sum::<usize>(),
                ns / trees.len() as f64
            ),
            _ => String::new(),
        };
        println!(
            "  {file:<26}{ns:>9.0} ns  ({:.2} x {native}{shape})",
            ns / native_ns
        );
    }
}

/// ns per record for decoding each framing with the scorer's decoder.
fn framings(records: &[PatientRecord]) {
    let registry = StandIn::start();
    let client = registry.registry();
    let subject = "bench-patients-value";
    let info = PatientRecord::schema_info();
    let same_id = client.register(subject, info.text).unwrap();
    // A newer producer's schema: one more field with a default, so bodies need resolution.
    let mut newer: serde_json::Value = serde_json::from_str(info.text).unwrap();
    newer["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "source_system", "type": "string", "default": "unknown"}));
    let newer_text = newer.to_string();
    let newer_id = client.register(subject, &newer_text).unwrap();
    let newer_schema = apache_avro::Schema::parse_str(&newer_text).unwrap();

    let framed = |framing: Framing| -> Vec<Vec<u8>> {
        records
            .iter()
            .map(|r| {
                let mut v = Vec::new();
                r.encode_framed_into(framing, &mut v).unwrap();
                v
            })
            .collect()
    };
    let single = framed(Framing::SingleObject);
    let legacy: Vec<Vec<u8>> = single
        .iter()
        .map(|v| {
            let mut v = v.clone();
            v[2..10].copy_from_slice(&info.legacy_fingerprint);
            v
        })
        .collect();
    let confluent = framed(Framing::Confluent { id: same_id });
    let resolved: Vec<Vec<u8>> = records
        .iter()
        .map(|r| {
            let apache_avro::types::Value::Record(mut fields) = r.to_value() else {
                unreachable!()
            };
            fields.push((
                "source_system".into(),
                apache_avro::types::Value::String("ehr".into()),
            ));
            let mut v = vec![0];
            v.extend_from_slice(&newer_id.to_be_bytes());
            v.extend(
                apache_avro::to_avro_datum(
                    &newer_schema,
                    apache_avro::types::Value::Record(fields),
                )
                .unwrap(),
            );
            v
        })
        .collect();

    let mut decoder = Decoder::<PatientRecord>::new(Some(std::sync::Arc::new(client)));
    for warm in [&confluent[0], &resolved[0]] {
        decoder.decode(warm).unwrap();
    }
    println!("decode per record, by framing (heart_registry::Decoder, schemas cached)");
    for (name, values) in [
        ("single-object (this build's fingerprint)", &single),
        ("single-object (legacy fingerprint)", &legacy),
        ("confluent, writer schema = ours", &confluent),
        ("confluent, newer schema (resolved)", &resolved),
    ] {
        let ns = bench(values, |b| {
            f64::from(decoder.decode(b).unwrap().0.age.unwrap_or_default())
        });
        println!("  {name:<41}{ns:>7.0} ns");
    }
}
