#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus from the real UCI Cleveland rows.

For every row of processed.cleveland.data this writes one Avro single-object encoded
PatientRecord (corpus/patient_avro/) and one /predict JSON body (corpus/patient_json/), plus a
libFuzzer dictionary of the field names (patient_json.dict). Nothing here is committed: the data
file is read from its path, and scripts/fuzz regenerates the corpus under target/.

The Avro writer is a second, independent implementation of the wire format (standard library
only, no Rust build needed), so a seed that the Rust decoder rejects points at a disagreement.

Usage: fuzz/seed.py OUT_DIR [--data PATH]
  PATH defaults to $HEART_DATA, else ../shared/data/processed.cleveland.data (from the repo root).
"""

import argparse
import json
import os
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "schemas" / "avro" / "patient_record.avsc"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "processed.cleveland.data"
EVENT_TIME = 1_700_000_000_000  # ms since the epoch; one fixed instant keeps seeds reproducible

# ------------------------------------------------------------------ schema fingerprint
# CRC-64-AVRO (Rabin), as in the Avro specification's "Schema Fingerprints" section.
_EMPTY = 0xC15D213AA4D7A795
_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_EMPTY if _fp & 1 else 0)
    _TABLE.append(_fp)


def rabin(data: bytes) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint of data."""
    fp = _EMPTY
    for b in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ b) & 0xFF]
    return struct.pack("<Q", fp)


def canonical(schema, logical_as_object: bool) -> str:
    """Parsing Canonical Form of the subset of Avro this record uses.

    logical_as_object=False follows the specification ([PRIMITIVES]: a long with a logicalType
    becomes "long"). apache-avro 0.21, which the Rust codec uses, writes {"type":"long"} instead
    (its avro_4004 test pins that), so its fingerprint differs; see docs/fuzzing.md.
    """
    if isinstance(schema, str):
        return json.dumps(schema)
    if isinstance(schema, list):
        return "[" + ",".join(canonical(s, logical_as_object) for s in schema) + "]"
    kind = schema["type"]
    if kind == "record":
        name = schema["name"]
        if "namespace" in schema and "." not in name:
            name = schema["namespace"] + "." + name
        fields = ",".join(
            '{"name":%s,"type":%s}'
            % (json.dumps(f["name"]), canonical(f["type"], logical_as_object))
            for f in schema["fields"]
        )
        return '{"name":%s,"type":"record","fields":[%s]}' % (json.dumps(name), fields)
    if isinstance(kind, str) and set(schema) <= {"type", "logicalType"}:
        if logical_as_object and "logicalType" in schema:
            return '{"type":%s}' % json.dumps(kind)
        return json.dumps(kind)
    sys.exit(f"seed.py: schema construct not handled: {schema!r}")


# ------------------------------------------------------------------ Avro binary encoding
def base_type(avro_type):
    """The non-null type of a field: "int" for "int", {"type": "int", ...} or ["null", "int"]."""
    if isinstance(avro_type, list):
        return next(base_type(t) for t in avro_type if t != "null")
    if isinstance(avro_type, dict):
        return avro_type["type"]
    return avro_type


def zigzag(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    z &= (1 << 64) - 1
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def encode_value(avro_type, value) -> bytes:
    if isinstance(avro_type, dict):
        avro_type = avro_type["type"]
    if isinstance(avro_type, list):  # ["null", T]
        if value is None:
            return zigzag(avro_type.index("null"))
        branch = next(i for i, t in enumerate(avro_type) if t != "null")
        return zigzag(branch) + encode_value(avro_type[branch], value)
    if avro_type == "string":
        raw = value.encode()
        return zigzag(len(raw)) + raw
    if avro_type in ("int", "long"):
        return zigzag(int(value))
    if avro_type == "double":
        return struct.pack("<d", float(value))
    sys.exit(f"seed.py: Avro type not handled: {avro_type!r}")


# ------------------------------------------------------------------ rows
def rows(path: Path):
    """Yields (line number, {field: float or None}) for the 13 attributes of each row."""
    names = [f["name"] for f in json.loads(SCHEMA.read_text())["fields"][2:]]
    with path.open() as f:
        for n, line in enumerate(f, start=1):
            cells = line.strip().split(",")
            if len(cells) < len(names):
                continue
            yield n, {
                name: None if cell == "?" else float(cell)
                for name, cell in zip(names, cells)
            }


def json_body(n: int, values: dict, integer_fields: set) -> bytes:
    """A /predict body. Rows vary in style, as callers do: whole numbers as integers or as the
    file's floats, missing values as null or left out, with or without id and event time."""
    body = {}
    if n % 2:
        body["patient_id"] = f"cleveland-{n}"
        body["event_time"] = EVENT_TIME + n
    for name, v in values.items():
        if v is None:
            if n % 3 == 0:
                continue
            body[name] = None
        elif name in integer_fields and n % 3 != 1:
            body[name] = int(v)
        else:
            body[name] = v
    return json.dumps(body, separators=(",", ":")).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--data", type=Path, default=os.environ.get("HEART_DATA") or DEFAULT_DATA)
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"seed.py: data file not found: {args.data} (set --data or HEART_DATA)")

    schema = json.loads(SCHEMA.read_text())
    fields = schema["fields"]
    # Avro "int" fields are the whole-number attributes; JSON may write them as integers.
    integer_fields = {f["name"] for f in fields if base_type(f["type"]) == "int"}
    fingerprints = {
        "spec": rabin(canonical(schema, False).encode()),
        "apache-avro": rabin(canonical(schema, True).encode()),
    }

    avro_dir = args.out_dir / "patient_avro"
    json_dir = args.out_dir / "patient_json"
    avro_dir.mkdir(parents=True, exist_ok=True)
    json_dir.mkdir(parents=True, exist_ok=True)

    count = 0
    batch = []
    for n, values in rows(args.data):
        record = {"patient_id": f"cleveland-{n}", "event_time": EVENT_TIME + n, **values}
        body = b"".join(encode_value(f["type"], record[f["name"]]) for f in fields)
        for label, fp in fingerprints.items():
            (avro_dir / f"row{n:03}-{label}.avro").write_bytes(b"\xc3\x01" + fp + body)
        doc = json_body(n, values, integer_fields)
        (json_dir / f"row{n:03}.json").write_bytes(doc)
        if len(batch) < 3:
            batch.append(doc)
        count += 1
    (json_dir / "batch.json").write_bytes(b"[" + b",".join(batch) + b"]")

    # libFuzzer dictionary: each line is one quoted token; field names with their JSON quotes.
    tokens = [json.dumps(f["name"]) for f in fields] + ["null", "true", "false", "-0.0", "1e308"]
    (args.out_dir / "patient_json.dict").write_text("".join(json.dumps(t) + "\n" for t in tokens))

    print(
        f"seed.py: {count} rows from {args.data} -> {avro_dir} ({2 * count} files), "
        f"{json_dir} ({count + 1} files)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
