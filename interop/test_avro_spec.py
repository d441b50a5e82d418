"""Avro single-object encoding and the Confluent wire format, checked against fastavro and Java Avro.

Our side runs through two examples of heart-schemas (no extra binaries):
- `fingerprints` prints each schema's fingerprint (hex of the 8 little-endian header bytes),
  legacy fingerprint and Parsing Canonical Form;
- `avro_roundtrip` decodes `RECORD FRAMING HEX` lines the way a consumer does and writes each
  record back, answering `ok HOW HEX` or `err REASON MESSAGE`.

The Java checks need Maven (Avro 1.12.2 is fetched into ~/.m2) and are skipped without `mvn`.
"""

import copy
import io
import json
import os
import pathlib
import shutil
import subprocess
from datetime import datetime, timezone

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from conftest import ROOT, SCHEMAS

NAMES = ["patient_record", "prediction", "dead_letter", "model_version"]


def load(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.avsc").read_text())


def spec_fingerprint(schema: dict) -> str:
    """fastavro's CRC-64-AVRO of the Parsing Canonical Form: hex of the little-endian bytes."""
    return fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")


@pytest.fixture(scope="module")
def examples() -> dict:
    """name -> path of the heart-schemas examples, built once."""
    out = subprocess.run(
        ["cargo", "build", "--quiet", "--locked", "-p", "heart-schemas", "--examples",
         "--message-format=json"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )
    assert out.returncode == 0, f"building the heart-schemas examples failed:\n{out.stderr}"
    paths = {}
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            paths[msg["target"]["name"]] = msg["executable"]
    assert {"fingerprints", "avro_roundtrip"} <= paths.keys(), paths
    return paths


def run_example(examples: dict, name: str, *args: str, stdin: str = "") -> str:
    out = subprocess.run(
        [examples[name], *args], input=stdin, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, f"example {name} failed:\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def ours(examples) -> dict:
    """name -> (fingerprint, legacy fingerprint, canonical form), as this build computes them."""
    rows = {}
    for line in run_example(examples, "fingerprints").splitlines():
        name, fp, legacy, pcf = line.split("\t")
        rows[name] = (fp, legacy, pcf)
    assert sorted(rows) == sorted(NAMES)
    return rows


def ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


SAMPLES = {
    "patient_record": {
        "patient_id": "fastavro-ü-1",
        "event_time": ts(1_700_000_000_123),
        "age": 63, "sex": 1, "cp": 4, "trestbps": 145.0, "chol": 233.5, "fbs": 1, "restecg": 2,
        "thalach": 150.0, "exang": 0, "oldpeak": -2.3, "slope": 3, "ca": None, "thal": 7,
    },
    "prediction": {
        "patient_id": "p-1", "event_time": ts(1), "scored_at": ts(1_700_000_000_000),
        "probability": 0.8125, "label": 1, "risk_level": "HIGH", "model_name": "heart",
        "model_version": 1 << 40, "imputed_fields": ["chol", "thal"],
        "explanation": {
            "space": "LOG_ODDS", "base": -0.25, "output": 1.5, "other": 0.25,
            "contributions": [
                {"field": "ca", "value": 2.0, "contribution": 0.9},
                {"field": "cp", "value": 4.0, "contribution": 0.6},
            ],
        },
    },
    "dead_letter": {
        "original_key": b"k", "original_value": b"\x00\xff", "original_value_bytes": 2,
        "source_topic": "patients", "source_partition": 3, "source_offset": 42,
        "reason": "malformed_avro", "message": "bad", "failed_at": ts(5),
    },
    "model_version": {
        "name": "heart", "version": 3, "algorithm": "logistic_regression", "created_at": ts(9),
        "code_version": "0.1.0", "metrics": {"cv.roc_auc.mean": 0.91}, "feature_spec": ["age", "sex"],
        "payload_format": "heart-model/postcard/v1", "payload": b"\x01\x02\x03", "checksum": "abc",
        "mlflow_run_id": "0123abcd", "mlflow_model_version": 4,
    },
}


def body(schema: dict, record: dict) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(copy.deepcopy(schema)), record)
    return buf.getvalue()


def single_object(schema: dict, record: dict) -> bytes:
    """The specification's single-object encoding, header built here from fastavro's fingerprint."""
    return b"\xc3\x01" + bytes.fromhex(spec_fingerprint(schema)) + body(schema, record)


def read_single_object(schema: dict, data: bytes) -> dict:
    assert data[:2] == b"\xc3\x01", data[:2].hex()
    assert data[2:10].hex() == spec_fingerprint(schema)
    return schemaless_reader(io.BytesIO(data[10:]), parse_schema(copy.deepcopy(schema)), None)


@pytest.fixture(scope="module")
def roundtrip(examples):
    """Feeds `RECORD FRAMING HEX` lines to our decoder and encoder; one answer per line."""

    def run(lines: list[str], *args: str) -> list[list[str]]:
        stdin = "".join(f"{line}\n" for line in lines)
        out = run_example(examples, "avro_roundtrip", *args, stdin=stdin)
        return [line.split(" ", 2) for line in out.splitlines()]

    return run


@pytest.mark.parametrize("name", NAMES)
def test_avro_canonical_form_and_fingerprint_match_fastavro(ours, name):
    fp, legacy, pcf = ours[name]
    schema = load(name)
    assert pcf == to_parsing_canonical_form(schema)
    assert fp == spec_fingerprint(schema)
    # The alias we still accept is apache-avro's old, different value.
    assert legacy != fp


def test_avro_records_fastavro_wrote_decode_and_ours_decode_with_fastavro(roundtrip):
    lines = [f"{n} single {single_object(load(n), SAMPLES[n]).hex()}" for n in NAMES]
    answers = roundtrip(lines)
    assert len(answers) == len(NAMES)
    for name, (status, how, data) in zip(NAMES, answers):
        assert (status, how) == ("ok", "current"), f"{name}: {status} {how} {data}"
        assert read_single_object(load(name), bytes.fromhex(data)) == SAMPLES[name]
        # Same schema, same body: byte for byte what fastavro wrote.
        assert data == single_object(load(name), SAMPLES[name]).hex()


def test_avro_legacy_fingerprint_is_accepted_and_reported(ours, roundtrip):
    legacy = ours["patient_record"][1]
    data = b"\xc3\x01" + bytes.fromhex(legacy) + body(load("patient_record"), SAMPLES["patient_record"])
    [(status, how, out)] = roundtrip([f"patient_record single {data.hex()}"])
    assert (status, how) == ("ok", "legacy")
    # Written back under the specification's fingerprint.
    assert read_single_object(load("patient_record"), bytes.fromhex(out)) == SAMPLES["patient_record"]


def test_avro_foreign_fingerprint_and_missing_registry_are_unknown_schema(roundtrip):
    rec = SAMPLES["patient_record"]
    foreign = b"\xc3\x01" + bytes(8) + body(load("patient_record"), rec)
    confluent = b"\x00" + (99).to_bytes(4, "big") + body(load("patient_record"), rec)
    answers = roundtrip([f"patient_record single {foreign.hex()}", f"patient_record single {confluent.hex()}"])
    assert [a[:2] for a in answers] == [["err", "unknown_schema"], ["err", "unknown_schema"]]
    assert "needs a registry" in answers[1][2]


def v2_schemas() -> dict:
    ours = load("patient_record")
    extra = copy.deepcopy(ours)
    extra["fields"].append({"name": "smoker", "type": "boolean", "default": False})
    reordered = copy.deepcopy(ours)
    reordered["fields"].reverse()
    no_thal = copy.deepcopy(ours)
    no_thal["fields"] = [f for f in ours["fields"] if f["name"] != "thal"]
    no_age = copy.deepcopy(ours)
    no_age["fields"] = [f for f in ours["fields"] if f["name"] != "age"]
    no_id = copy.deepcopy(ours)
    no_id["fields"] = [f for f in ours["fields"] if f["name"] != "patient_id"]
    return {1: ours, 2: extra, 3: reordered, 4: no_thal, 5: no_age, 6: no_id}


def test_avro_confluent_framed_records_resolve_to_our_schema(roundtrip, tmp_path: pathlib.Path):
    """fastavro writes Confluent-framed records under writer schemas a registry would hold."""
    writers = v2_schemas()
    args = []
    for sid, schema in writers.items():
        path = tmp_path / f"{sid}.avsc"
        path.write_text(json.dumps(schema))
        args += ["--schema", f"{sid}={path}"]
    rec = SAMPLES["patient_record"]
    written = {1: rec, 2: {**rec, "smoker": True}, 3: rec, 4: rec, 5: rec, 6: rec}
    lines = []
    for sid, schema in writers.items():
        record = {k: v for k, v in written[sid].items() if k in {f["name"] for f in schema["fields"]}}
        data = b"\x00" + sid.to_bytes(4, "big") + body(schema, record)
        lines.append(f"patient_record confluent:{100 + sid} {data.hex()}")
    answers = roundtrip(lines, *args)
    ours = load("patient_record")
    for sid in (1, 2, 3, 4, 5):
        status, how, data = answers[sid - 1]
        assert (status, how) == ("ok", "registry"), f"writer {sid}: {answers[sid - 1]}"
        out = bytes.fromhex(data)
        assert out[:5] == b"\x00" + (100 + sid).to_bytes(4, "big")
        got = schemaless_reader(io.BytesIO(out[5:]), parse_schema(copy.deepcopy(ours)), None)
        # A writer without a field: its default, null (every attribute is nullable since v2).
        want = {**rec, "thal": None} if sid == 4 else {**rec, "age": None} if sid == 5 else rec
        assert got == want, f"writer {sid}"
    # patient_id has no default: a writer without it cannot be read.
    assert answers[5][:2] == ["err", "incompatible_schema"], answers[5]


# --- Java Avro 1.12.2 -------------------------------------------------------------------------

JAVA = ROOT / "interop" / "java"


@pytest.fixture(scope="module")
def java():
    """Runs interop/java/AvroSpec.java with Avro on the classpath; skipped without Maven."""
    mvn = shutil.which("mvn")
    if mvn is None:
        pytest.skip("mvn is not installed: the Java Avro checks need Maven")
    cache = pathlib.Path(
        os.environ.get("HEART_CACHE_DIR")
        or pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "heart-risk"
    )
    cache.mkdir(parents=True, exist_ok=True)
    cp_file = cache / "interop-java-classpath.txt"
    subprocess.run(
        [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(JAVA / "pom.xml"),
         "dependency:build-classpath", f"-Dmdep.outputFile={cp_file}"],
        check=True, timeout=600,
    )
    classpath = cp_file.read_text().strip()

    def run(*args: str) -> str:
        out = subprocess.run(
            ["java", "-cp", classpath, str(JAVA / "AvroSpec.java"), *args],
            capture_output=True, text=True, timeout=300,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    return run


def test_avro_fingerprints_match_java_parsing_fingerprint64(ours, java):
    theirs = dict(line.split("\t") for line in java("fingerprints", str(SCHEMAS)).splitlines())
    assert theirs == {name: ours[name][0] for name in NAMES}


def test_avro_java_binary_message_encoder_and_decoder_interoperate(java, roundtrip):
    schema_path = str(SCHEMAS / "patient_record.avsc")
    java_bytes = java("encode", schema_path).strip()
    [(status, how, ours_hex)] = roundtrip([f"patient_record single {java_bytes}"])
    assert (status, how) == ("ok", "current")
    # Our re-encoding of Java's record is byte for byte Java's, and Java reads it back.
    assert ours_hex == java_bytes
    decoded = json.loads(java("decode", schema_path, ours_hex))
    assert decoded["patient_id"] == "java-1"
    assert decoded["event_time"] == 1_700_000_000_123
    assert (decoded["ca"], decoded["thal"], decoded["chol"]) == (None, 7, 233.5)
    # And Java reads a record fastavro wrote in our framing through our code.
    fast = single_object(load("patient_record"), SAMPLES["patient_record"]).hex()
    [(status, _, ours_hex)] = roundtrip([f"patient_record single {fast}"])
    assert status == "ok"
    decoded = json.loads(java("decode", schema_path, ours_hex))
    assert (decoded["age"], decoded["oldpeak"], decoded["thal"]) == (63, -2.3, 7)
