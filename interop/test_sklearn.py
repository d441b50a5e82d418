"""Bring your own model: a scikit-learn Pipeline trained here with the pinned scikit-learn
(sklearn/train_example.py, the Python project's shape), exported by sklearn/export.py,
imported by `trainer import-sklearn` / `trainer publish --sklearn`, and served: the scorer's
probabilities must equal scikit-learn's own predict_proba to 1e-6 on the 303 Cleveland rows and
on the same rows with a field missing, from a file and over Kafka. A pipeline with a step the
importer does not reproduce is refused, naming the step."""

import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.request

import joblib
import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Producer
from fastavro import parse_schema

from conftest import ROOT, SCHEMAS, start_scorer
from test_scorer_wire import FIELDS, consume, read_single_object, single_object, topics, uci_rows

sys.path.insert(0, str(ROOT / "sklearn"))
import train_example  # noqa: E402

DATA = pathlib.Path(os.environ.get("HEART_DATA", ROOT.parent / "shared" / "data" / "processed.cleveland.data"))
TOLERANCE = 1e-6
CLASSIFIERS = ["logistic_regression", "random_forest", "decision_tree"]


def rows_with_holes():
    """The Cleveland rows, and each again with one field missing (field i mod 13)."""
    rows = dict(uci_rows())
    holed = {}
    for i, (pid, row) in enumerate(rows.items()):
        copy = dict(row)
        copy[FIELDS[i % len(FIELDS)]] = None
        holed[pid.replace("cleveland", "holed")] = copy
    return {**rows, **holed}


def patient(pid, row):
    """The Avro record of a row; codes are ints, and any field may be missing."""
    codes = {"age", "sex", "cp", "fbs", "restecg", "exang", "slope", "ca", "thal"}
    out = {"patient_id": pid, "event_time": 1_700_000_000_000}
    for name in FIELDS:
        value = row[name]
        out[name] = None if value is None else (int(value) if name in codes else value)
    return out


def sklearn_probabilities(pipeline, rows):
    frame = pd.DataFrame([[np.nan if r[f] is None else r[f] for f in FIELDS] for r in rows.values()],
                         columns=FIELDS)
    return dict(zip(rows, pipeline.predict_proba(frame)[:, 1]))


def run(*args, check=True, env=None):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env)
    if check:
        assert done.returncode == 0, f"{args}: {done.stderr}"
    return done


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """classifier -> (fitted pipeline, export JSON path), trained and exported once."""
    out = tmp_path_factory.mktemp("sklearn")
    made = {}
    for classifier in CLASSIFIERS:
        model = out / f"{classifier}.joblib"
        run(sys.executable, ROOT / "sklearn" / "train_example.py", "--data", DATA, "--out", model,
            "--classifier", classifier)
        export = out / f"{classifier}.json"
        run(sys.executable, ROOT / "sklearn" / "export.py", model, "--data", DATA, "--out", export)
        made[classifier] = (joblib.load(model), export)
    return made


@pytest.mark.parametrize("classifier", CLASSIFIERS)
def test_an_imported_pipeline_scores_a_file_as_scikit_learn_does(classifier, exported, bin_dir, tmp_path):
    pipeline, export = exported[classifier]
    model = tmp_path / "model.avro"
    imported = run(bin_dir / "trainer", "import-sklearn", "--sklearn", export, "--out", model)
    assert "golden vectors reproduce" in imported.stdout, imported.stdout
    rows = rows_with_holes()
    with open(tmp_path / "in.jsonl", "w") as f:
        for pid, row in rows.items():
            f.write(json.dumps({"patient_id": pid, **row}) + "\n")
    # Every field may be imputed, as scikit-learn's imputers do (the scorer's default refuses to
    # impute age, sex and cp).
    run(bin_dir / "scorer", "--never-impute=", "score-file", "--model-file", model, "--input", tmp_path / "in.jsonl",
        "--output", tmp_path / "out.jsonl", "--rejects", tmp_path / "rejects.jsonl")
    served = {p["patient_id"]: p["probability"]
              for p in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    expected = sklearn_probabilities(pipeline, rows)
    assert set(served) == set(expected), (tmp_path / "rejects.jsonl").read_text()[:2000]
    worst = max(abs(served[k] - expected[k]) for k in expected)
    assert worst <= TOLERANCE, f"{classifier}: largest difference {worst}"
    assert len({round(p, 6) for p in served.values()}) > 10, "the probabilities vary"


def test_a_published_pipeline_is_served_over_kafka_as_scikit_learn_scores_it(
    exported, bin_dir, bootstrap, topics, tmp_path
):
    pipeline, export = exported["logistic_regression"]
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "RUST_LOG": "info"}
    published = run(bin_dir / "trainer", "publish", "--sklearn", export, "--topic", topics["models"], env=env)
    assert "as version 1" in published.stdout, published.stdout
    log = open(tmp_path / "scorer.log", "w")
    proc, port = start_scorer(bin_dir, topics, env, log, "--never-impute=")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/model", timeout=5) as r:
            meta = json.load(r)
        assert meta["algorithm"] == "logistic_regression" and meta["version"] == 1, meta
        assert meta["code_version"] == "scikit-learn 1.9.1", meta
        assert meta["hyperparameters"]["origin.library"] == "scikit-learn", meta
        assert meta["hyperparameters"]["model.C"] == "1.0", meta

        load = lambda name: parse_schema(json.loads((SCHEMAS / f"{name}.avsc").read_text()))
        patient_schema, prediction_schema = load("patient_record"), load("prediction")
        rows = rows_with_holes()
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        for pid, row in rows.items():
            producer.produce(topics["patients"], key=pid.encode(),
                             value=single_object(patient_schema, patient(pid, row)))
        assert producer.flush(30) == 0
        served = {}
        for msg in consume(bootstrap, topics["predictions"], len(rows)):
            p = read_single_object(prediction_schema, msg.value())
            assert p["patient_id"] not in served, f"duplicate {p['patient_id']}"
            assert p["model_version"] == 1
            served[p["patient_id"]] = p["probability"]
        expected = sklearn_probabilities(pipeline, rows)
        assert set(served) == set(expected), "exactly one prediction per record"
        worst = max(abs(served[k] - expected[k]) for k in expected)
        assert worst <= TOLERANCE, f"largest difference {worst}"

        # Explained like a native logistic regression: exact, on the log-odds scale.
        pid, row = next(iter(rows.items()))
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict?explain=true", method="POST",
            data=json.dumps(patient(pid, row)).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as r:
            answer = json.load(r)
        e = answer["explanation"]
        assert e["space"] == "log_odds", e
        total = e["base"] + sum(c["contribution"] for c in e["contributions"]) + e["other"]
        assert abs(total - e["output"]) < 1e-9, e
        assert abs(1 / (1 + np.exp(-e["output"])) - expected[pid]) <= TOLERANCE, (e, expected[pid])

        # A forest published next is swapped in without a restart.
        _, forest = exported["random_forest"]
        run(bin_dir / "trainer", "publish", "--sklearn", forest, "--topic", topics["models"], env=env)
        deadline = time.monotonic() + 30
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/model", timeout=5) as r:
                meta = json.load(r)
            if meta["version"] == 2:
                break
            assert time.monotonic() < deadline, meta
            time.sleep(0.2)
        assert meta["algorithm"] == "random_forest" and proc.poll() is None, meta
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        print((tmp_path / "scorer.log").read_text()[-3000:])


def refuse(pipeline, tmp_path):
    x, y = train_example.load(DATA)
    model = tmp_path / "model.joblib"
    joblib.dump(pipeline.fit(x, y), model)
    done = run(sys.executable, ROOT / "sklearn" / "export.py", model, "--data", DATA,
               "--out", tmp_path / "out.json", check=False)
    assert done.returncode == 2, done
    assert not (tmp_path / "out.json").exists()
    return done.stderr


def test_a_step_the_importer_does_not_reproduce_is_refused_by_name(tmp_path):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures
    from sklearn.svm import SVC

    pipeline = train_example.pipeline("logistic_regression")
    numeric = pipeline.steps[0][1].transformers[0][1]
    numeric.steps.append(("poly", PolynomialFeatures()))
    err = refuse(pipeline, tmp_path)
    assert "num/poly is a PolynomialFeatures" in err, err
    assert "supported: SimpleImputer, StandardScaler, OneHotEncoder" in err, err

    pipeline = train_example.pipeline("logistic_regression")
    pipeline.steps[1] = ("model", SVC())
    err = refuse(pipeline, tmp_path)
    assert "the classifier is a SVC" in err, err
    assert "supported: LogisticRegression, DecisionTreeClassifier, RandomForestClassifier" in err, err

    pipeline = train_example.pipeline("logistic_regression")
    pipeline.steps[0][1].transformers[1][1].steps[1][1].set_params(drop="first")
    err = refuse(pipeline, tmp_path)
    assert "OneHotEncoder(drop='first') is not supported" in err, err


def test_an_export_that_does_not_reproduce_is_not_imported(exported, bin_dir, tmp_path):
    _, export = exported["logistic_regression"]
    doc = json.loads(export.read_text())
    doc["classifier"]["intercept"] += 1e-3
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(doc))
    done = run(bin_dir / "trainer", "import-sklearn", "--sklearn", tampered, "--out",
               tmp_path / "model.avro", check=False)
    assert done.returncode != 0
    assert "does not reproduce scikit-learn" in done.stderr, done.stderr
    assert not (tmp_path / "model.avro").exists()
