"""confluent-kafka's own Schema Registry client and Avro serdes against scripts/schema-registry:
if they accept the stand-in's answers, the stand-in is faithful enough to test our client with,
and the bytes the serializer frames are the Confluent wire format our scorer reads. No broker."""

import json
import struct

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

V1 = json.dumps({
    "type": "record", "name": "Patient", "namespace": "heart",
    "fields": [{"name": "age", "type": "int"}, {"name": "chol", "type": ["null", "double"], "default": None}],
})
V2 = json.dumps({  # adds a field with a default: BACKWARD compatible
    "type": "record", "name": "Patient", "namespace": "heart",
    "fields": [{"name": "age", "type": "long"}, {"name": "chol", "type": ["null", "double"], "default": None},
               {"name": "sex", "type": "string", "default": "unknown"}],
})
BREAKING = json.dumps({  # adds a required field: a reader of it cannot read V1 data
    "type": "record", "name": "Patient", "namespace": "heart",
    "fields": [{"name": "age", "type": "int"}, {"name": "thal", "type": "string"}],
})
SUBJECT = "patients-value"


def same_schema(a: str, b: str) -> bool:
    return json.loads(a) == json.loads(b)


def test_registry_client_register_get_lookup_latest_versions(schema_registry):
    client = SchemaRegistryClient({"url": schema_registry})
    v1 = client.register_schema(SUBJECT, Schema(V1, "AVRO"))
    v2 = client.register_schema(SUBJECT, Schema(V2, "AVRO"))
    assert v1 != v2

    fresh = SchemaRegistryClient({"url": schema_registry})  # no client-side cache
    assert same_schema(fresh.get_schema(v1).schema_str, V1)
    found = fresh.lookup_schema(SUBJECT, Schema(V1, "AVRO"))
    assert (found.schema_id, found.version, found.subject) == (v1, 1, SUBJECT)
    latest = fresh.get_latest_version(SUBJECT)
    assert (latest.schema_id, latest.version) == (v2, 2)
    assert same_schema(latest.schema.schema_str, V2)
    assert fresh.get_versions(SUBJECT) == [1, 2]
    assert fresh.get_subjects() == [SUBJECT]


def test_registry_client_compatibility_and_errors(schema_registry):
    client = SchemaRegistryClient({"url": schema_registry})
    client.register_schema(SUBJECT, Schema(V1, "AVRO"))
    assert client.test_compatibility(SUBJECT, Schema(V2, "AVRO")) is True
    assert client.test_compatibility(SUBJECT, Schema(BREAKING, "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as err:
        client.register_schema(SUBJECT, Schema(BREAKING, "AVRO"))
    assert (err.value.http_status_code, err.value.error_code) == (409, 409)
    with pytest.raises(SchemaRegistryError) as err:
        client.get_schema(4242)
    assert (err.value.http_status_code, err.value.error_code) == (404, 40403)
    with pytest.raises(SchemaRegistryError) as err:
        client.get_latest_version("nobody-value")
    assert err.value.error_code == 40401

    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility(SUBJECT, "NONE")
    assert client.get_compatibility(SUBJECT) == "NONE"
    assert client.register_schema(SUBJECT, Schema(BREAKING, "AVRO")) > 0


def test_avro_serdes_round_trip_in_the_confluent_wire_format(schema_registry):
    client = SchemaRegistryClient({"url": schema_registry})
    ctx = SerializationContext("patients", MessageField.VALUE)
    record = {"age": 63, "chol": 233.0}

    framed = AvroSerializer(client, V1)(record, ctx)  # registers under patients-value itself
    magic, schema_id = struct.unpack(">bI", framed[:5])
    assert magic == 0
    assert schema_id == client.get_latest_version(SUBJECT).schema_id

    reader = AvroDeserializer(SchemaRegistryClient({"url": schema_registry}))
    assert reader(framed, ctx) == record


def test_registry_client_basic_auth(start_schema_registry):
    url = start_schema_registry("--basic-auth", "alice:s3cret")
    with pytest.raises(SchemaRegistryError) as err:
        SchemaRegistryClient({"url": url}).get_subjects()
    assert err.value.http_status_code == 401
    client = SchemaRegistryClient({"url": url, "basic.auth.user.info": "alice:s3cret"})
    assert client.register_schema(SUBJECT, Schema(V1, "AVRO")) > 0
