"""Shared fixtures for the interoperability checks (see scripts/interop)."""

import contextlib
import os
import pathlib
import subprocess
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas" / "avro"


@pytest.fixture(scope="session")
def bin_dir() -> pathlib.Path:
    """Where scripts/interop built the binaries under test."""
    return pathlib.Path(os.environ.get("HEART_BIN_DIR", ROOT / "target" / "release"))


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


@pytest.fixture(scope="session")
def model_file(bin_dir, tmp_path_factory) -> pathlib.Path:
    """A model.avro trained by our trainer on the UCI file (2 folds: seconds, not minutes)."""

    out = tmp_path_factory.mktemp("trainer")
    data = os.environ.get("HEART_DATA", str(ROOT.parent / "shared" / "data" / "processed.cleveland.data"))
    subprocess.run(
        [str(bin_dir / "trainer"), "train", "--data", data, "--out", str(out), "--folds", "2"],
        check=True,
        capture_output=True,
    )
    return out / "model.avro"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc, timeout: float = 60.0, status: int = 200) -> None:
    """Polls `url` until it answers `status`; fails early if `proc` exits."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == status:
                    return
                last = r.status
        except urllib.error.HTTPError as e:
            last = e.code
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {status} within {timeout} s (last: {last})")


@contextlib.contextmanager
def sidecar(bin_dir, model_file, log, env=None):
    """A scorer running only its HTTP sidecar from `model_file` (no Kafka) on a free port, its
    output in `log`; yields its base URL once /healthz and /readyz answer 200, and stops it."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "scorer"), "--model-file", str(model_file),
             "--http-addr", f"127.0.0.1:{port}", "--log-format", "text"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", proc)
        wait_http(f"{url}/readyz", proc)
    except Exception:
        proc.kill()
        proc.wait(timeout=10)
        raise RuntimeError(f"scorer sidecar did not start; its log:\n{pathlib.Path(log).read_text()}")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def scorer_sidecar(bin_dir, model_file, tmp_path_factory):
    """The sidecar-only scorer of `model_file` for the whole session; yields its base URL."""
    with sidecar(bin_dir, model_file, tmp_path_factory.mktemp("sidecar") / "scorer.log") as url:
        yield url


def start_scorer(bin_dir, topics, env, log, *flags):
    """The scorer binary on `topics` (patients, predictions, dlq, models), with a consumer group
    and transactional id of its own, on a free port, stderr to the open file `log`; returns the
    process and its port once /readyz answers 200. The caller stops it."""
    port = free_port()
    proc = subprocess.Popen(
        [str(bin_dir / "scorer"),
         "--patients-topic", topics["patients"], "--predictions-topic", topics["predictions"],
         "--dead-letter-topic", topics["dlq"], "--models-topic", topics["models"],
         "--group-id", f"interop-{uuid.uuid4().hex[:8]}",
         "--transactional-id", f"interop-{uuid.uuid4().hex[:8]}",
         "--http-addr", f"127.0.0.1:{port}",
         "--session-timeout-ms", "6000", "--drain-timeout-ms", "5000", "--log-format", "text",
         *flags],
        stdout=subprocess.DEVNULL, stderr=log, env=env,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc)
    except Exception:
        proc.kill()
        proc.wait(timeout=10)
        raise
    return proc, port
