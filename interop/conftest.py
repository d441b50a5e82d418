"""Shared fixtures for the interoperability checks (see scripts/interop)."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas" / "avro"


@pytest.fixture(scope="session")
def bin_dir() -> pathlib.Path:
    """Where scripts/interop built the binaries under test."""
    return pathlib.Path(os.environ.get("HEART_BIN_DIR", ROOT / "target" / "debug"))


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """The test broker; tests that need one are skipped without it."""
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS is not set (scripts/test starts a broker)")
    return servers


SCHEMA_REGISTRY_STANDIN = ROOT / "scripts" / "schema-registry"


@pytest.fixture
def start_schema_registry():
    """Starts scripts/schema-registry on a free port with extra flags (e.g. "--basic-auth",
    "u:p") and returns its URL; every stand-in started is stopped after the test."""
    import subprocess
    import sys

    procs = []

    def start(*args: str) -> str:
        proc = subprocess.Popen(
            [sys.executable, str(SCHEMA_REGISTRY_STANDIN), "--port", "0", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        line = proc.stdout.readline()  # printed once it accepts requests
        if not line.startswith("listening on "):
            raise RuntimeError(f"{SCHEMA_REGISTRY_STANDIN} printed {line!r}, exit {proc.poll()}")
        return line.removeprefix("listening on ").strip()

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def schema_registry(start_schema_registry) -> str:
    """The URL of a fresh stand-in Schema Registry (empty, BACKWARD), stopped after the test."""
    return start_schema_registry()
