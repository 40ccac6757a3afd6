"""Open Inference Protocol (KServe V2) conformance against a real server, plus the
JSON-records route: request and response shapes, datatypes, headers and errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from modelyard.config import load_settings
from modelyard.serving.telemetry.logsearch import LogQuery, search
from modelyard.yard import Yard

FIELDS = [f"f{i}" for i in range(30)]


def rows(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, 30)).astype(np.float32)


def matrix_request(data: np.ndarray, **extra: Any) -> dict[str, Any]:
    tensor = {
        "name": "input",
        "shape": list(data.shape),
        "datatype": "FP32",
        "data": data.ravel().tolist(),
    }
    return {"inputs": [tensor], **extra}


@pytest.fixture(scope="module")
def expected(model_home: Path) -> Any:
    """The champion run in this process, to check the server's answers against."""
    with Yard(load_settings(home=model_home, environ={})) as yard:
        return yard.registry.load("fraud@champion").predictor


def log_lines_with(path: Path, request_id: str, timeout: float = 10.0) -> list[bytes]:
    """The log's lines once ``request_id`` has been written (logs flush every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_bytes().splitlines()
        if search(lines, LogQuery(request_id=request_id), 1) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_server_metadata(server: Any) -> None:
    response = httpx.get(f"{server.url}/v2")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "modelyard"
    assert isinstance(body["version"], str)
    assert body["extensions"] == ["binary_tensor_data", "classification"]


def test_health(server: Any) -> None:
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    ready = httpx.get(f"{server.url}/v2/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True}
    for path in ("/v2/models/fraud/ready", "/v2/models/fraud/versions/1/ready"):
        model_ready = httpx.get(f"{server.url}{path}")
        assert model_ready.status_code == 200
        assert model_ready.json() == {"name": "fraud", "ready": True}


def test_model_metadata(server: Any) -> None:
    for path in ("/v2/models/fraud", "/v2/models/fraud/versions/1"):
        body = httpx.get(f"{server.url}{path}").json()
        assert body["name"] == "fraud"
        assert body["versions"] == ["1"]
        assert body["platform"] == "onnxruntime_onnx"
        assert body["inputs"] == [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [-1, 30],
                "parameters": {"fields": FIELDS},
            }
        ]
        assert body["outputs"] == [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        ]


def test_infer_matches_the_model(server: Any, expected: Any) -> None:
    data = rows(3)
    response = httpx.post(f"{server.url}/v2/models/fraud/infer", json=matrix_request(data, id="42"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-model-version"] == "1"
    assert response.headers["x-request-id"]
    body = response.json()
    assert body["model_name"] == "fraud"
    assert body["model_version"] == "1"
    assert body["id"] == "42"
    label, proba = body["outputs"]
    assert (label["name"], label["datatype"], label["shape"]) == ("label", "INT64", [3])
    assert (proba["name"], proba["datatype"], proba["shape"]) == ("probabilities", "FP32", [3, 2])
    want = expected.predict_prepared(data)
    assert label["data"] == want["label"].tolist()
    np.testing.assert_allclose(proba["data"], want["probabilities"].ravel(), rtol=1e-6)


def test_request_id_is_echoed_or_generated(server: Any) -> None:
    url = f"{server.url}/v2/models/fraud/infer"
    echoed = httpx.post(url, json=matrix_request(rows(1)), headers={"X-Request-ID": "order-77"})
    assert echoed.headers["x-request-id"] == "order-77"
    assert echoed.json()["id"] == "order-77"
    generated = {
        httpx.post(url, json=matrix_request(rows(1))).headers["x-request-id"] for _ in range(3)
    }
    assert len(generated) == 3
    too_long = httpx.post(url, json=matrix_request(rows(1)), headers={"X-Request-ID": "x" * 200})
    assert too_long.headers["x-request-id"] != "x" * 200


def test_nested_data_and_other_forms_agree(server: Any) -> None:
    data = rows(2, seed=3)
    url = f"{server.url}/v2/models/fraud/infer"
    flat = httpx.post(url, json=matrix_request(data)).json()["outputs"]
    nested_request = matrix_request(data)
    nested_request["inputs"][0]["data"] = data.tolist()
    nested = httpx.post(url, json=nested_request).json()["outputs"]
    per_field = {
        "inputs": [
            {"name": name, "shape": [2], "datatype": "FP64", "data": data[:, i].tolist()}
            for i, name in enumerate(FIELDS)
        ]
    }
    columns = httpx.post(url, json=per_field).json()["outputs"]
    versioned = httpx.post(
        f"{server.url}/v2/models/fraud/versions/1/infer", json=matrix_request(data)
    ).json()["outputs"]
    assert flat == nested == columns == versioned


def test_requested_outputs_only(server: Any) -> None:
    body = httpx.post(
        f"{server.url}/v2/models/fraud/infer",
        json=matrix_request(rows(1), outputs=[{"name": "probabilities"}]),
    ).json()
    assert [o["name"] for o in body["outputs"]] == ["probabilities"]


def test_records_route(server: Any, expected: Any) -> None:
    data = rows(2, seed=5)
    records = [dict(zip(FIELDS, row.tolist(), strict=True)) for row in data]
    response = httpx.post(f"{server.url}/v1/models/fraud:predict", json={"instances": records})
    assert response.status_code == 200
    assert response.headers["x-model-version"] == "1"
    predictions = response.json()["predictions"]
    want = expected.predict_prepared(data)
    assert [p["label"] for p in predictions] == want["label"].tolist()
    np.testing.assert_allclose(
        [p["probabilities"] for p in predictions], want["probabilities"], rtol=1e-6
    )
    as_lists = httpx.post(
        f"{server.url}/v1/models/fraud:predict", json={"instances": data.tolist()}
    )
    assert as_lists.json()["predictions"] == predictions


def test_regressor_outputs(server: Any) -> None:
    record = {"rooms": 3, "area": 80.5, "age": 12, "floor": 2, "distance": 1.5}
    records = httpx.post(
        f"{server.url}/v1/models/price:predict", json={"instances": [record]}
    ).json()
    (value,) = records["predictions"]
    assert isinstance(value, float)
    tensors = httpx.post(
        f"{server.url}/v2/models/price/infer",
        json={
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 5],
                    "datatype": "FP32",
                    "data": list(record.values()),
                }
            ]
        },
    ).json()
    (output,) = tensors["outputs"]
    assert output["name"] == "prediction"
    assert output["shape"][0] == 1
    assert output["data"][0] == pytest.approx(value, rel=1e-6)


def test_errors_use_the_protocols_error_object(server: Any) -> None:
    missing = httpx.post(f"{server.url}/v2/models/nope/infer", json=matrix_request(rows(1)))
    assert missing.status_code == 404
    assert "'nope' is not served here" in missing.json()["error"]
    wrong_version = httpx.get(f"{server.url}/v2/models/fraud/versions/7")
    assert wrong_version.status_code == 404
    assert "version '7' of model 'fraud' is not loaded" in wrong_version.json()["error"]
    method = httpx.get(f"{server.url}/v2/models/fraud/infer")
    assert method.status_code == 405
    assert method.headers["allow"] == "POST"
    assert set(method.json()) == {"error", "code", "request_id"}
    assert method.json()["request_id"] == method.headers["x-request-id"]
    assert method.headers["x-request-id"]


def test_concurrent_requests_each_get_their_own_rows(server: Any, expected: Any) -> None:
    """Batching merges requests; no request may receive another's answer."""
    data = rows(64, seed=9)
    want = expected.predict_prepared(data)["probabilities"]

    async def run() -> list[list[float]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            responses = await asyncio.gather(
                *[
                    client.post("/v2/models/fraud/infer", json=matrix_request(data[i : i + 1]))
                    for i in range(len(data))
                ]
            )
        return [r.json()["outputs"][1]["data"] for r in responses]

    got = asyncio.run(run())
    np.testing.assert_allclose(np.array(got), want, rtol=1e-6)


def test_metrics_and_logs_record_requests(server: Any) -> None:
    rid = "metrics-and-logs-1"
    httpx.post(
        f"{server.url}/v2/models/fraud/infer",
        json=matrix_request(rows(1)),
        headers={"X-Request-ID": rid},
    )
    httpx.post(
        f"{server.url}/v2/models/fraud/infer",
        content=b"{",
        headers={"X-Request-ID": rid + "-bad", "content-type": "application/json"},
    )
    text = httpx.get(f"{server.url}/metrics").text
    assert 'modelyard_requests_total{model="fraud",status="200",version="1"}' in text
    assert (
        'modelyard_request_errors_total{code="malformed_request",model="fraud",version="1"}' in text
    )
    assert "modelyard_request_duration_seconds_bucket" in text
    assert 'modelyard_batch_rows_bucket{le="1.0",model="fraud",version="1"}' in text
    assert 'modelyard_model_loads_total{model="fraud",outcome="loaded",version="1"} 1.0' in text
    assert "modelyard_queue_rows" in text
    lines = log_lines_with(server.log_path, rid + "-bad")
    (good,) = search(lines, LogQuery(request_id=rid), None)
    assert good["status"] == 200
    assert good["model"] == "fraud"
    assert good["version"] == "1"
    (bad,) = search(lines, LogQuery(request_id=rid + "-bad"), None)
    assert bad["status"] == 400
    assert bad["code"] == "malformed_request"
    assert "not valid JSON" in bad["error"]
    loads = search(lines, LogQuery(event="model_loaded"), None)
    assert {(r["model"], r["version"]) for r in loads} == {("fraud", 1), ("price", 1)}


def test_openapi_document_is_served(server: Any) -> None:
    doc = orjson.loads(httpx.get(f"{server.url}/openapi.json").content)
    assert "/v2/models/{model_name}/infer" in doc["paths"]
    assert "/v1/models/{model_name}:predict" in doc["paths"]
