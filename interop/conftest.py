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
