"""NVIDIA's ``tritonclient`` (gRPC) against a real server's Open Inference Protocol gRPC
service: health, metadata, inference with raw and typed tensors (the same answers as
REST's), and bad input refused with the status and message REST gives it.

Typed tensors and malformed messages are sent through the stub generated from Triton's
own copy of the protocol (``tritonclient.grpc.service_pb2_grpc``), which
``InferenceServerClient`` does not expose: a client nobody here wrote, either way."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from modelyard.config import load_settings
from modelyard.yard import Yard

grpcclient = pytest.importorskip("tritonclient.grpc")
httpclient = pytest.importorskip("tritonclient.http")
grpc = pytest.importorskip("grpc")
service_pb2 = pytest.importorskip("tritonclient.grpc.service_pb2")
service_pb2_grpc = pytest.importorskip("tritonclient.grpc.service_pb2_grpc")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def expected(model_home: Path) -> Any:
    """The champion run in this process, to check the server's answers against."""
    with Yard(load_settings(home=model_home, environ={})) as yard:
        return yard.registry.load("fraud@champion").predictor


@pytest.fixture
def client(server: Any) -> Iterator[Any]:
    triton = grpcclient.InferenceServerClient(server.grpc_target)
    yield triton
    triton.close()


@pytest.fixture
def stub(server: Any) -> Iterator[Any]:
    """Triton's generated stub, for messages ``InferenceServerClient`` cannot build."""
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def rows(count: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, 30)).astype(np.float32)


def infer_input(data: np.ndarray, name: str = "input", datatype: str = "FP32") -> Any:
    tensor = grpcclient.InferInput(name, list(data.shape), datatype)
    tensor.set_data_from_numpy(data)
    return tensor


def refusal(call: Callable[[], Any]) -> tuple[Any, str]:
    """The status and message a call was refused with."""
    with pytest.raises(grpcclient.InferenceServerException) as raised:
        call()
    return raised.value.status(), raised.value.message()


def test_health_and_metadata(client: Any) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("fraud")
    server = client.get_server_metadata()
    assert server.name == "modelyard"
    assert list(server.extensions) == ["classification"]
    metadata = client.get_model_metadata("fraud")
    assert metadata.name == "fraud"
    assert metadata.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("input", "FP32", [-1, 30])
    ]
    assert [o.name for o in metadata.outputs] == ["label", "probabilities"]
    assert list(client.get_model_metadata("fraud", model_version="1").versions) == ["1"]


def test_raw_tensors_get_the_models_answer_and_rests(
    client: Any, server: Any, expected: Any
) -> None:
    data = rows(16)
    result = client.infer("fraud", [infer_input(data)], request_id="g-1")
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("fraud", "1", "g-1")
    want = expected.predict_prepared(data)
    assert result.as_numpy("label").tolist() == want["label"].tolist()
    np.testing.assert_allclose(result.as_numpy("probabilities"), want["probabilities"], rtol=1e-6)
    rest = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        tensor = httpclient.InferInput("input", list(data.shape), "FP32")
        tensor.set_data_from_numpy(data)
        over_rest = rest.infer("fraud", [tensor])
    finally:
        rest.close()
    for name in ("label", "probabilities"):
        np.testing.assert_array_equal(result.as_numpy(name), over_rest.as_numpy(name))


def test_typed_tensors_and_one_tensor_per_field(stub: Any, expected: Any) -> None:
    data = rows(2)
    request = service_pb2.ModelInferRequest(model_name="fraud", model_version="1")
    for j in range(30):
        tensor = request.inputs.add(name=f"f{j}", datatype="FP32", shape=[2])
        tensor.contents.fp32_contents.extend(data[:, j].tolist())
    request.outputs.add(name="label")
    response = stub.ModelInfer(request)
    assert [o.name for o in response.outputs] == ["label"]
    labels = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
    assert labels.tolist() == expected.predict_prepared(data)["label"].tolist()


def test_the_classification_extension(client: Any, expected: Any) -> None:
    data = rows(3)
    wanted = [grpcclient.InferRequestedOutput("probabilities", class_count=1)]
    top = client.infer("fraud", [infer_input(data)], outputs=wanted).as_numpy("probabilities")
    best = np.argmax(expected.predict_prepared(data)["probabilities"], axis=1)
    assert [int(item.decode().split(":")[1]) for item in top[:, 0]] == best.tolist()


@pytest.mark.parametrize(
    ("name", "datatype", "data", "message"),
    [
        ("input", "FP32", rows(2)[:, :29], "input 'input' must have shape [rows, 30]"),
        ("amount", "FP32", rows(1), "unexpected input field(s) 'amount'"),
        ("input", "BOOL", np.ones((1, 30), dtype=bool), "input 'input'"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_input(
    client: Any, server: Any, name: str, datatype: str, data: np.ndarray, message: str
) -> None:
    status, text = refusal(lambda: client.infer("fraud", [infer_input(data, name, datatype)]))
    assert status == "StatusCode.INVALID_ARGUMENT"
    assert message in text
    over_rest = httpx.post(
        f"{server.url}/v2/models/fraud/infer",
        content=orjson.dumps(
            {
                "inputs": [
                    {
                        "name": name,
                        "datatype": datatype,
                        "shape": list(data.shape),
                        "data": data.ravel().tolist(),
                    }
                ]
            }
        ),  # fmt: skip
        headers={"content-type": "application/json"},
    )
    assert over_rest.status_code in (400, 422)
    assert over_rest.json()["error"] == text  # the same words over both protocols


def test_a_malformed_message_names_the_field_and_quotes_the_request_id(stub: Any) -> None:
    request = service_pb2.ModelInferRequest(model_name="fraud")
    request.inputs.add(name="input", datatype="FP32", shape=[2, 30])
    request.raw_input_contents.append(rows(2).tobytes()[:-4])
    with pytest.raises(grpc.RpcError) as raised:
        stub.ModelInfer(request, metadata=(("x-request-id", "bad-1"),))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == (
        "input 'input': raw_input_contents[0] has 236 bytes but shape [2, 30] of FP32 needs "
        "240 (60 values of 4 bytes)"
    )
    assert ("x-request-id", "bad-1") in raised.value.trailing_metadata()


def test_unknown_model_and_version_are_not_found(client: Any) -> None:
    status, text = refusal(lambda: client.infer("nope", [infer_input(rows(1))]))
    assert status == "StatusCode.NOT_FOUND"
    assert text.startswith("model 'nope' is not served here")
    status, _ = refusal(lambda: client.get_model_metadata("fraud", model_version="9"))
    assert status == "StatusCode.NOT_FOUND"


def test_the_token_is_asked_of_inference_and_metadata(
    launch_server: Callable[..., Any], model_home: Path
) -> None:
    running = launch_server(model_home, ["fraud@champion"], settings={"token": "s3"}, grpc=True)
    client = grpcclient.InferenceServerClient(running.grpc_target)
    try:
        assert client.is_server_ready()  # health stays open, as over REST
        status, text = refusal(lambda: client.infer("fraud", [infer_input(rows(1))]))
        assert status == "StatusCode.UNAUTHENTICATED"
        assert "authorization: Bearer <token>" in text
        status, _ = refusal(lambda: client.get_model_metadata("fraud"))
        assert status == "StatusCode.UNAUTHENTICATED"
        wrong = {"authorization": "Bearer nope"}
        status, _ = refusal(lambda: client.infer("fraud", [infer_input(rows(1))], headers=wrong))
        assert status == "StatusCode.UNAUTHENTICATED"
        good = {"authorization": "Bearer s3"}
        result = client.infer("fraud", [infer_input(rows(1))], headers=good)
        assert result.as_numpy("label").shape == (1,)
    finally:
        client.close()
