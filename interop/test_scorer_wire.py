"""The scorer binary on the test broker against clients nobody on this project wrote: records
serialized by confluent-kafka's AvroSerializer (through the Schema Registry stand-in) or by
fastavro as single-object messages are scored, and the scorer's predictions and dead letters
deserialize with the same clients, field for field."""

import io
import json
import os
import pathlib
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from conftest import ROOT, SCHEMAS, start_scorer

FIELDS = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang",
          "oldpeak", "slope", "ca", "thal"]


def uci_rows():
    path = pathlib.Path(os.environ.get("HEART_DATA", ROOT.parent / "shared" / "data" / "processed.cleveland.data"))
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        cells = line.split(",")[:13]
        row = {}
        for name, cell in zip(FIELDS, cells):
            row[name] = None if cell.strip() == "?" else float(cell)
        yield f"cleveland-{i}", row


def patient(pid: str, row: dict) -> dict:
    ints = {"age", "sex", "cp", "fbs", "restecg", "exang", "slope"}
    out = {"patient_id": pid, "event_time": int(time.time() * 1000)}
    for name in FIELDS:
        value = row[name]
        if name in ints:
            out[name] = int(value)
        elif name in ("ca", "thal"):
            out[name] = None if value is None else int(value)
        else:
            out[name] = value
    return out


@pytest.fixture
def topics(bootstrap):
    suffix = uuid.uuid4().hex[:8]
    names = {k: f"interop-{k}-{suffix}" for k in ("patients", "predictions", "dlq", "models")}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([
        NewTopic(names["patients"], 3, 1),
        NewTopic(names["predictions"], 3, 1),
        NewTopic(names["dlq"], 1, 1),
        NewTopic(names["models"], 1, 1, config={"cleanup.policy": "compact"}),
    ])
    for f in futures.values():
        f.result(timeout=30)
    return names


def consume(bootstrap, topic, want, timeout=60.0):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"interop-reader-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            out.append(msg)
        # A little longer, to catch duplicates.
        settle = time.monotonic() + 2
        while time.monotonic() < settle:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                out.append(msg)
    finally:
        consumer.close()
    return out


@pytest.fixture
def scorer(bootstrap, bin_dir, model_file, topics, tmp_path):
    """start(*flags) runs the scorer binary on `topics` with the trained model published, and
    waits until it is ready; every scorer started is stopped after the test."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "RUST_LOG": "info"}
    published = subprocess.run(
        [str(bin_dir / "trainer"), "publish", "--model", str(model_file), "--topic", topics["models"]],
        capture_output=True, text=True, env=env,
    )
    assert published.returncode == 0, published.stderr
    procs = []

    def start(*flags):
        log = open(tmp_path / f"scorer-{len(procs)}.log", "w")
        proc, _ = start_scorer(bin_dir, topics, env, log, *flags)
        procs.append((proc, log))
        return proc

    yield start
    for proc, log in procs:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        print(pathlib.Path(log.name).read_text()[-3000:])


def bad_patient() -> dict:
    bad = {"patient_id": "bad-age", "event_time": 1, **{k: 1 for k in FIELDS}}
    bad.update(age=500, trestbps=120.0, chol=200.0, thalach=150.0, oldpeak=1.0, ca=None, thal=None)
    return bad


def check_predictions(predictions: dict, sent: dict) -> None:
    assert set(predictions) == set(sent), "exactly one prediction per record"
    for pid, p in predictions.items():
        assert set(p) == {"patient_id", "event_time", "scored_at", "probability", "label",
                          "risk_level", "model_name", "model_version", "imputed_fields",
                          "explanation"}
        assert p["explanation"] is None, "explanations are off by default in the stream"
        assert p["imputed_fields"] == [f for f in ("ca", "thal") if sent[pid][f] is None], pid
        assert 0.0 <= p["probability"] <= 1.0
        assert p["label"] == (1 if p["probability"] >= 0.5 else 0)
        assert p["risk_level"] in ("LOW", "MEDIUM", "HIGH")
        assert p["model_version"] == 1
        # fastavro turns timestamp-millis into a datetime: the logical type travelled.
        assert abs(p["event_time"].timestamp() * 1000 - sent[pid]["event_time"]) < 1


def test_confluent_serializer_records_are_scored_and_outputs_deserialize(
    bootstrap, scorer, schema_registry, topics
):
    scorer("--schema-registry-url", schema_registry,
           "--output-framing", "confluent", "--schema-registry-auto-register")
    registry = SchemaRegistryClient({"url": schema_registry})
    schema = (SCHEMAS / "patient_record.avsc").read_text()
    serialize = AvroSerializer(registry, schema)  # auto-registers patients-value, as producers do
    ctx = SerializationContext(topics["patients"], MessageField.VALUE)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    sent = {}
    for pid, row in uci_rows():
        record = patient(pid, row)
        value = serialize(record, ctx)
        assert value[0] == 0, "the Confluent wire format starts with magic byte 0"
        producer.produce(topics["patients"], key=pid.encode(), value=value)
        sent[pid] = record
    producer.produce(topics["patients"], key=b"bad-age", value=serialize(bad_patient(), ctx))
    assert producer.flush(30) == 0

    deserialize = AvroDeserializer(registry)  # the writer schema comes from the id
    seen = {}
    for msg in consume(bootstrap, topics["predictions"], len(sent)):
        p = deserialize(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
        assert msg.key().decode() == p["patient_id"]
        assert p["patient_id"] not in seen, f"duplicate {p['patient_id']}"
        seen[p["patient_id"]] = p
    check_predictions(seen, sent)

    dead = consume(bootstrap, topics["dlq"], 1)
    assert len(dead) == 1
    letter = deserialize(dead[0].value(), SerializationContext(dead[0].topic(), MessageField.VALUE))
    assert letter["reason"] == "out_of_range", letter
    assert "age = 500" in letter["message"]
    assert letter["original_value"] is not None and letter["original_value"][0] == 0


def single_object(schema: dict, record: dict) -> bytes:
    """The specification's single-object encoding, written by fastavro."""
    body = io.BytesIO()
    schemaless_writer(body, schema, record)
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
    return b"\xc3\x01" + fp + body.getvalue()


def read_single_object(schema: dict, value: bytes) -> dict:
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
    assert value[:2] == b"\xc3\x01" and value[2:10] == fp, value[:10].hex()
    return schemaless_reader(io.BytesIO(value[10:]), schema)


def test_fastavro_single_object_records_are_scored_and_outputs_decode(bootstrap, scorer, topics):
    scorer()  # no registry: single-object in and out
    load = lambda name: parse_schema(json.loads((SCHEMAS / f"{name}.avsc").read_text()))
    patient_schema, prediction_schema, dead_schema = (
        load("patient_record"), load("prediction"), load("dead_letter"))
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    sent = {}
    for pid, row in uci_rows():
        record = patient(pid, row)
        producer.produce(topics["patients"], key=pid.encode(), value=single_object(patient_schema, record))
        sent[pid] = record
    producer.produce(topics["patients"], key=b"bad-age", value=single_object(patient_schema, bad_patient()))
    assert producer.flush(30) == 0

    seen = {}
    for msg in consume(bootstrap, topics["predictions"], len(sent)):
        p = read_single_object(prediction_schema, msg.value())
        assert p["patient_id"] not in seen, f"duplicate {p['patient_id']}"
        seen[p["patient_id"]] = p
    check_predictions(seen, sent)
    dead = consume(bootstrap, topics["dlq"], 1)
    assert len(dead) == 1
    letter = read_single_object(dead_schema, dead[0].value())
    assert letter["reason"] == "out_of_range", letter


def test_fastavro_records_of_both_schema_versions_and_with_missing_values_are_scored(
    bootstrap, scorer, topics
):
    """fastavro writes PatientRecord schema version 1 (every attribute but ca and thal required)
    and version 2 with attributes left null; the scorer reads both and names what it imputed."""
    scorer()
    load = lambda name: parse_schema(json.loads((SCHEMAS / f"{name}.avsc").read_text()))
    v1, v2, prediction_schema = load("patient_record_v1"), load("patient_record"), load("prediction")
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    want = {}
    for i, (pid, row) in enumerate(list(uci_rows())[:40]):
        record = patient(pid, row)
        if i % 2 == 0:
            value = single_object(v1, record)
            missing = [f for f in ("ca", "thal") if record[f] is None]
        else:
            record = dict(record, chol=None, slope=None, thalach=None)
            value = single_object(v2, record)
            missing = [f for f in FIELDS if record[f] is None]
        producer.produce(topics["patients"], key=pid.encode(), value=value)
        want[pid] = missing
    assert producer.flush(30) == 0

    seen = {}
    for msg in consume(bootstrap, topics["predictions"], len(want)):
        p = read_single_object(prediction_schema, msg.value())
        assert p["patient_id"] not in seen, f"duplicate {p['patient_id']}"
        seen[p["patient_id"]] = p["imputed_fields"]
    assert seen == want
