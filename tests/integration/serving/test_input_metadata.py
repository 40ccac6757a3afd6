"""Requests are held to what the model's metadata declares, on the real server: values an
integer datatype cannot hold, unknown input names, NaN literals, and a float64-trained
model asking for the FP32 it takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import LinearRegression

from modelyard.config import load_settings
from modelyard.yard import Yard

V2 = "/v2/models/fraud/infer"
ROW = [0.5] * 30
INTS = [1] * 30


def tensor(data: list[Any], datatype: str = "FP32", name: str = "input") -> dict[str, Any]:
    return {"inputs": [{"name": name, "shape": [1, 30], "datatype": datatype, "data": data}]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (tensor([17.99, *INTS[1:]], "INT64"), "'input' field 'f0' must be an integer, got 17.99"),
        (tensor([*INTS[:29], 300], "UINT8"), "field 'f29' value 300 is out of range [0, 255]"),
        (tensor([-1, *INTS[1:]], "UINT8"), "field 'f0' value -1 is out of range [0, 255]"),
        (tensor(ROW, name="nope"), "unexpected input field(s) 'nope'; this model takes 'f0'"),
    ],
    ids=["fraction in INT64", "300 in UINT8", "-1 in UINT8", "unknown name"],
)  # fmt: skip
def test_departures_from_the_metadata_are_422_naming_the_input(
    server: Any, body: dict[str, Any], message: str
) -> None:
    response = httpx.post(f"{server.url}{V2}", json=body)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]


def test_a_nan_literal_is_400_saying_json_has_none(server: Any) -> None:
    body = b'{"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, NaN]}]}'
    response = httpx.post(
        f"{server.url}{V2}", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "NaN at line 1 column" in error
    assert "(in input 'input')" in error
    assert "JSON has no NaN or Infinity: send null" in error


def test_a_float64_trained_model_declares_and_takes_fp32(
    tmp_path: Path, launch_server: Any
) -> None:
    x, y = make_regression(n_samples=200, n_features=3, random_state=2)
    assert x.dtype == np.float64
    with Yard(load_settings(home=tmp_path, environ={})) as yard:
        yard.registry.register(
            "wide", LinearRegression().fit(x, y), x, feature_names=["a", "b", "c"]
        )
    server = launch_server(tmp_path, ["wide"])
    metadata = httpx.get(f"{server.url}/v2/models/wide").json()
    assert metadata["inputs"][0]["datatype"] == "FP32"
    request = {
        "inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]
    }
    answer = httpx.post(f"{server.url}/v2/models/wide/infer", json=request)
    assert answer.status_code == 200, answer.text
    too_large = {**request}
    too_large["inputs"] = [{**request["inputs"][0], "datatype": "FP64", "data": [1, 2, 1e39]}]
    refused = httpx.post(f"{server.url}/v2/models/wide/infer", json=too_large)
    assert refused.status_code == 422
    assert "field 'c' value 1e+39 is out of range" in refused.json()["error"]
