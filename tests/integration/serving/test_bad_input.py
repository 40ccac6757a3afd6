"""Bad input gets a 4xx naming what was wrong (field and row where there is one); never a 5xx."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

FIELDS = [f"f{i}" for i in range(30)]
ROW = [0.5] * 30


def tensor(data: Any, shape: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "input", "shape": shape or [1, 30], "datatype": "FP32", "data": data, **extra}
        ]
    }


def with_value(index: int, value: Any) -> list[Any]:
    row: list[Any] = list(ROW)
    row[index] = value
    return row


def per_field(skip: str | None = None, extra: str | None = None) -> dict[str, Any]:
    names = [n for n in FIELDS if n != skip] + ([extra] if extra else [])
    return {"inputs": [{"name": n, "shape": [1], "datatype": "FP32", "data": [0.5]} for n in names]}


def record(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys(FIELDS, 0.5)
    values.update(changes)
    return {k: v for k, v in values.items() if v is not ...}


V2 = "/v2/models/fraud/infer"
V1 = "/v1/models/fraud:predict"

CASES = [
    # (id, path, body, status, message fragment)
    ("missing field", V2, per_field(skip="f7"), 422, "missing input field(s) 'f7'"),
    ("extra field", V2, per_field(extra="colour"), 422, "unexpected input field(s) 'colour'"),
    (
        "string value",
        V2,
        tensor(with_value(3, "abc")),
        422,
        "field 'f3' must be a number, got 'abc' (row 0)",
    ),
    (
        "boolean value",
        V2,
        tensor(with_value(4, True)),
        422,
        "field 'f4' must be a number, got true",
    ),
    (
        "null where NaN is not allowed",
        V2,
        tensor(with_value(5, None)),
        422,
        "field 'f5' must not be null/NaN (row 0)",
    ),
    (
        "nested list value",
        V2,
        tensor(with_value(6, [1])),
        422,
        "field 'f6' must be a number, got a list",
    ),
    ("second row named", V2, tensor(ROW + with_value(9, "x"), [2, 30]), 422, "field 'f9'"),
    ("out of float32 range", V2, tensor(with_value(0, 1e300)), 422, "out of range"),
    ("wrong width", V2, tensor([0.5] * 29, [1, 29]), 422, "must have shape [rows, 30]"),
    ("shape and data disagree", V2, tensor([0.5] * 29), 400, "holds 30 values but 'data' has 29"),
    ("ragged nesting", V2, tensor([[0.5] * 30, [0.5] * 29], [2, 30]), 400, "does not match shape"),
    ("negative shape", V2, tensor(ROW, [-1, 30]), 400, "'shape' must be a non-empty list"),
    (
        "unknown datatype",
        V2,
        {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FLOAT", "data": ROW}]},
        400,
        "'datatype' must be one of",
    ),
    (
        "text datatype for numbers",
        V2,
        {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "BYTES", "data": ROW}]},
        422,
        "got datatype BYTES",
    ),
    ("no inputs", V2, {"inputs": []}, 400, "'inputs' must be a non-empty list"),
    ("not an object", V2, [1, 2, 3], 400, "must be a JSON object"),
    ("id not a string", V2, {**tensor(ROW), "id": 7}, 400, "'id' must be a string"),
    (
        "unknown output",
        V2,
        {**tensor(ROW), "outputs": [{"name": "colour"}]},
        422,
        "unknown output(s) 'colour'",
    ),
    ("no rows", V2, tensor([], [0, 30]), 422, "no rows"),
    ("too many rows", V2, tensor([0.5] * 30 * 10_001, [10_001, 30]), 413, "at most max_rows"),
    ("too many records", V1, {"instances": [ROW] * 10_001}, 413, "at most 10000"),
    ("huge declared shape", V2, tensor(ROW, [10**12, 30]), 413, "declares"),
    (
        "binary tensor",
        V2,
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 30],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 120},
                }
            ]
        },
        400,
        "has no 'Inference-Header-Content-Length' header",
    ),
    (
        "records: missing field",
        V1,
        {"instances": [record(), record(f2=...)]},
        422,
        "missing field(s) 'f2' (row 1)",
    ),
    (
        "records: extra field",
        V1,
        {"instances": [record(colour="red")]},
        422,
        "unexpected field(s) 'colour' (row 0)",
    ),
    (
        "records: wrong type",
        V1,
        {"instances": [record(f8="12,5")]},
        422,
        "field 'f8' must be a number, got '12,5' (row 0)",
    ),
    (
        "records: not a list",
        V1,
        {"instances": record()},
        400,
        "'instances' must be a non-empty list",
    ),
    ("records: no instances", V1, {"rows": []}, 400, '{"instances"'),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_bodies(server: Any, path: str, body: Any, status: int, message: str) -> None:
    response = httpx.post(
        f"{server.url}{path}",
        content=orjson.dumps(body),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == status, response.text
    error = response.json()
    assert message in error["error"]
    assert error["code"]
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"inputs": [', "application/json", 400),
        (b"", "application/json", 400),
        (b"\x80\x04\x95pickle", "application/octet-stream", 415),
        (b"inputs=1", "application/x-www-form-urlencoded", 415),
        (b'{"inputs": []}', "text/plain", 415),
        (b"\xff\xfe{}", "application/json", 400),
        (b"[NaN]", "application/json", 400),
    ],
)
def test_only_json_is_accepted(server: Any, content: bytes, content_type: str, status: int) -> None:
    response = httpx.post(
        f"{server.url}{V2}", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == status
    assert "error" in response.json()


def test_body_over_the_limit_is_413_before_parsing(server: Any) -> None:
    body = b'{"inputs": [' + b" " * (4 * 1024 * 1024) + b"]}"
    response = httpx.post(
        f"{server.url}{V2}", content=body, headers={"content-type": "application/json"}, timeout=30
    )
    assert response.status_code == 413
    assert "limit" in response.json()["error"]


def test_the_server_still_answers_after_all_that(server: Any) -> None:
    assert httpx.post(f"{server.url}{V2}", json=tensor(ROW)).status_code == 200
