"""NVIDIA's ``tritonclient`` (HTTP) against a real server, with its defaults: inputs and
outputs in the binary tensor data extension; and raw requests in that form."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from modelyard.config import load_settings
from modelyard.yard import Yard

httpclient = pytest.importorskip("tritonclient.http")


@pytest.fixture(scope="module")
def expected(model_home: Path) -> Any:
    """The champion run in this process, to check the server's answers against."""
    with Yard(load_settings(home=model_home, environ={})) as yard:
        return yard.registry.load("fraud@champion").predictor


@pytest.fixture
def client(server: Any) -> Iterator[Any]:
    triton = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    yield triton
    triton.close()


def rows(count: int) -> np.ndarray:
    return np.random.default_rng(3).normal(size=(count, 30)).astype(np.float32)


def infer_input(data: np.ndarray, binary_data: bool = True) -> Any:
    tensor = httpclient.InferInput("input", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data, binary_data=binary_data)
    return tensor


def test_health_and_metadata(client: Any) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("fraud")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata("fraud")
    assert metadata["name"] == "fraud"
    assert metadata["inputs"][0]["shape"] == [-1, 30]
    assert [o["name"] for o in metadata["outputs"]] == ["label", "probabilities"]


def check(result: Any, data: np.ndarray, expected: Any) -> None:
    want = expected.predict_prepared(data)
    assert result.as_numpy("label").tolist() == want["label"].tolist()
    np.testing.assert_allclose(result.as_numpy("probabilities"), want["probabilities"], rtol=1e-6)


def test_infer_with_the_clients_defaults(client: Any, expected: Any) -> None:
    data = rows(64)
    result = client.infer("fraud", [infer_input(data)])
    # no outputs named: tritonclient asks for every output in binary
    assert all("parameters" in o for o in result.get_response()["outputs"])
    check(result, data, expected)


def test_infer_with_requested_binary_outputs(client: Any, expected: Any) -> None:
    data = rows(5)
    outputs = [
        httpclient.InferRequestedOutput("label", binary_data=True),
        httpclient.InferRequestedOutput("probabilities", binary_data=False),
    ]
    result = client.infer("fraud", [infer_input(data)], outputs=outputs, request_id="t-1")
    response = result.get_response()
    assert response["id"] == "t-1"
    assert "data" in response["outputs"][1]
    check(result, data, expected)


def test_infer_with_json_only(client: Any, expected: Any) -> None:
    data = rows(3)
    outputs = [
        httpclient.InferRequestedOutput(name, binary_data=False)
        for name in ("label", "probabilities")
    ]
    result = client.infer("fraud", [infer_input(data, binary_data=False)], outputs=outputs)
    check(result, data, expected)


def test_a_malformed_binary_request_is_a_400_naming_the_problem(server: Any) -> None:
    url = f"{server.url}/v2/models/fraud/infer"
    data = rows(2)
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [2, 30],
                    "parameters": {"binary_data_size": data.nbytes - 4},
                }
            ]
        }
    )
    body = head + data.tobytes()[:-4]
    sized = httpx.post(
        url, content=body, headers={"Inference-Header-Content-Length": str(len(head))}
    )
    assert sized.status_code == 400
    assert sized.json()["error"] == (
        "input 'input': binary_data_size is 236 bytes but shape [2, 30] of FP32 needs 240 "
        "(60 values of 4 bytes)"
    )
    framed = httpx.post(url, content=body, headers={"inference-header-content-length": "x1"})
    assert framed.status_code == 400
    assert "'Inference-Header-Content-Length' must be" in framed.json()["error"]


def test_the_classification_extension_with_the_clients_class_count(
    client: Any, expected: Any
) -> None:
    data = rows(4)
    assert "classification" in client.get_server_metadata()["extensions"]
    wanted = [httpclient.InferRequestedOutput("probabilities", class_count=2)]
    result = client.infer("fraud", [infer_input(data)], outputs=wanted)
    top = result.as_numpy("probabilities")
    assert top.shape == (4, 2)
    probabilities = expected.predict_prepared(data)["probabilities"]
    for row, classes in zip(probabilities, top, strict=True):
        value, index = classes[0].decode().split(":")
        assert int(index) == int(np.argmax(row))
        assert float(value) == pytest.approx(row.max(), rel=1e-6)
