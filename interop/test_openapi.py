"""The sidecar's OpenAPI document matches the server: schemathesis (every check, all phases,
bounded) against a scorer serving a trained model (no Kafka) with bearer tokens on, since the
document declares the bearer scheme on the routes it protects: schemathesis sends the token and
checks that those routes turn requests without it away (ST401)."""

import json
import os
import pathlib
import secrets
import subprocess
import sys
import urllib.request

import pytest

from conftest import sidecar

# Path parameters take the served model's name and version, so generated requests reach the
# handlers instead of stopping at 404 (unknown names are covered by the api tests and
# test_oip.py).
#
# patient_id is bounded in UTF-8 bytes (the Kafka key), which JSON Schema cannot state; maxLength
# counts characters, so the document is exact for ASCII ids, and /predict is fed ASCII strings.
#
# positive_data_acceptance on /predict allows 422 too: every attribute is optional in the
# document, and how many may be missing is the scorer's imputation policy, a runtime flag
# (--impute-max-fields, --never-impute) the static document cannot state; beyond it the answer
# is 422 too_many_missing.
#
# positive_data_acceptance on infer also allows 422: a schema-valid inference request can still
# be invalid in ways JSON Schema cannot state (data length vs shape, N agreeing across per-field
# inputs, each column's range inside one flat array). Every other check runs unchanged.
CONFIG = """
[parameters]
"path.name" = "{name}"
"path.version" = "{version}"

[[operations]]
include-path-regex = "^/predict"
generation.codec = "ascii"
checks.positive_data_acceptance.expected-statuses = ["2xx", "422"]

[[operations]]
include-path-regex = "/infer$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "422"]
"""


@pytest.fixture
def secured_sidecar(bin_dir, model_file, tmp_path):
    """A sidecar-only scorer with a bearer token (from the environment, never on the command
    line); yields its base URL and the token."""
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "SCORER_HTTP_AUTH_TOKENS": token}
    with sidecar(bin_dir, model_file, tmp_path / "scorer.log", env=env) as url:
        yield url, token


def test_openapi_document_matches_the_server(secured_sidecar, tmp_path):
    scorer_sidecar, token = secured_sidecar
    request = urllib.request.Request(f"{scorer_sidecar}/model", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as r:
        model = json.load(r)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(name=model["name"], version=model["version"]))
    st = pathlib.Path(sys.executable).with_name("st")
    result = subprocess.run(
        [str(st), "--no-color", "--config-file", str(config), "run", f"{scorer_sidecar}/openapi.json",
         "--checks", "all", "--header", f"Authorization: Bearer {token}", "--max-examples", "30", "--max-time", "90", "--workers", "1",
         "--generation-deterministic"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
