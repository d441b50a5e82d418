"""Open Inference Protocol v2: NVIDIA's tritonclient (HTTP, JSON tensors) against the scorer's
sidecar, which serves a model trained by our trainer (the `scorer_sidecar` fixture, no Kafka).
Its answers must agree with POST /predict for the same patients."""

import json
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

FIELDS = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg",
          "thalach", "exang", "oldpeak", "slope", "ca", "thal"]

# Values exactly representable in FP32, so the FP32 and FP64 requests carry the same patients.
PATIENTS = [
    [63, 1, 1, 145, 233, 1, 2, 150, 0, 2.5, 3, 0, 6],
    [67, 1, 4, 160, 286, 0, 2, 108, 1, 1.5, 2, 3, 3],
    [41, 0, 2, 130, 204, 0, 2, 172, 0, 1.0, 1, 0, 3],
    [56, 1, 3, 120, 236, 0, 0, 178, 0, 0.5, 1, 0, 7],
]


def http_json(url: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


@pytest.fixture(scope="module")
def client(scorer_sidecar):
    return httpclient.InferenceServerClient(url=scorer_sidecar.removeprefix("http://"))


@pytest.fixture(scope="module")
def model(scorer_sidecar):
    """(name, version) of the active model, as GET /model reports them."""
    m = http_json(f"{scorer_sidecar}/model")
    return m["name"], str(m["version"])


@pytest.fixture(scope="module")
def native(scorer_sidecar):
    """POST /predict's answer for each patient."""
    return [http_json(f"{scorer_sidecar}/predict", dict(zip(FIELDS, p))) for p in PATIENTS]


def infer(client, name, dtype, version=""):
    tensor = httpclient.InferInput("patients", [len(PATIENTS), len(FIELDS)], dtype)
    tensor.set_data_from_numpy(np.array(PATIENTS, dtype=np.float32 if dtype == "FP32" else np.float64),
                               binary_data=False)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=False)
               for n in ("probability", "label", "risk_level")]
    return client.infer(name, [tensor], model_version=version, outputs=outputs, request_id="oip-1")


def test_oip_server_and_model_health(client, model):
    name, version = model
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(name)
    assert client.is_model_ready(name, version)
    assert not client.is_model_ready("no-such-model")
    assert client.get_server_metadata()["name"] == "heart-risk-scorer"


def test_oip_model_metadata_lists_the_tensor_and_outputs(client, model):
    name, version = model
    meta = client.get_model_metadata(name)
    assert meta["name"] == name
    assert meta["versions"] == [version]
    assert meta["inputs"] == [{"name": "patients", "datatype": "FP64", "shape": [-1, 13]}]
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("probability", "FP64"), ("label", "INT64"), ("risk_level", "BYTES"),
        ("explanation", "BYTES")]
    assert client.get_model_metadata(name, version) == meta


@pytest.mark.parametrize("dtype", ["FP64", "FP32"])
def test_oip_infer_agrees_with_predict(client, model, native, dtype):
    name, version = model
    result = infer(client, name, dtype, version=version if dtype == "FP32" else "")
    response = result.get_response()
    assert response["model_name"] == name
    assert response["model_version"] == version
    assert response["id"] == "oip-1"
    probability = result.as_numpy("probability")
    label = result.as_numpy("label")
    risk = result.as_numpy("risk_level")
    assert probability.shape == label.shape == risk.shape == (len(PATIENTS),)
    for i, want in enumerate(native):
        assert abs(float(probability[i]) - want["probability"]) <= 1e-9
        assert int(label[i]) == want["label"]
        level = risk[i].decode() if isinstance(risk[i], bytes) else str(risk[i])
        assert level == want["risk_level"]


def test_oip_wrong_shape_raises_our_message(client, model):
    name, _ = model
    tensor = httpclient.InferInput("patients", [2, 12], "FP64")
    tensor.set_data_from_numpy(np.zeros((2, 12)), binary_data=False)
    with pytest.raises(InferenceServerException) as raised:
        client.infer(name, [tensor],
                     outputs=[httpclient.InferRequestedOutput("probability", binary_data=False)])
    assert raised.value.message() == 'input "patients": expected shape [N,13], got [2,12]'
    assert raised.value.status() == "422"


def test_oip_unknown_model_raises_not_found(client):
    tensor = httpclient.InferInput("patients", [1, 13], "FP64")
    tensor.set_data_from_numpy(np.array(PATIENTS[:1], dtype=np.float64), binary_data=False)
    with pytest.raises(InferenceServerException) as raised:
        client.infer("no-such-model", [tensor])
    assert raised.value.status() == "404"
    assert "is not served here" in raised.value.message()
