"""The inference log's payload: arrays as bytes, shared objects once, rows for the table."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from modelyard.monitoring import inference_log
from modelyard.monitoring.log_record import COLUMNS, FIELDS, Pending, decode_rows, encode_batch


def pending(request_id: str, inputs: Any = None, outputs: Any = None, **options: Any) -> Pending:
    fields = [f"id-{request_id}", request_id, 1.5, "fraud", "m", 3, "primary", 200, 0.25, 1, None]
    return (
        fields,
        inputs,
        options.get("names"),
        options.get("input_rows"),
        outputs,
        options.get("output_rows"),
    )


def rows_of(payload: bytes) -> list[dict[str, Any]]:
    rows, bad = decode_rows(payload)
    assert bad == 0
    out = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
    for row in out:
        for name in ("inputs", "outputs"):
            row[name] = None if row[name] is None else orjson.loads(row[name])
    return out


def test_a_batch_shared_by_its_requests_is_written_once_and_sliced_back() -> None:
    inputs = {"amount": np.array([1.0, 2.0, 3.0]), "n": np.array([7, 8, 9], dtype=np.int32)}
    outputs = {"label": np.array([0, 1, 1]), "proba": np.array([[0.9, 0.1], [0.2, 0.8], [0, 1]])}
    batch = [
        pending("a", inputs, outputs, input_rows=(0, 1), output_rows=(0, 1)),
        pending("b", inputs, outputs, input_rows=(1, 3), output_rows=(1, 3)),
    ]
    payload = encode_batch(batch)
    assert payload.count(inputs["amount"].tobytes()) == 1
    first, second = rows_of(payload)
    assert first["inputs"] == {"amount": [1.0], "n": [7]}
    assert second["inputs"] == {"amount": [2.0, 3.0], "n": [8, 9]}
    assert second["outputs"] == {"label": [1, 1], "proba": [[0.2, 0.8], [0.0, 1.0]]}
    assert (first["id"], first["request_id"], first["version"], first["arm"]) == (
        "id-a",
        "a",
        3,
        "primary",
    )
    assert [first[name] for name in FIELDS[2:]] == [
        1.5,
        "fraud",
        "m",
        3,
        "primary",
        200,
        0.25,
        1,
        None,
    ]


def test_per_request_columns_of_mixed_types_and_layouts_come_back_exactly() -> None:
    grid = np.arange(12, dtype=np.int64).reshape(3, 4)
    packed = {"a": np.array([1.5]), "b": np.array([7], np.int32), "c": np.array([True])}
    two_d = {"a": np.array([1.0, 2.0]), "v": np.array([[1, 2], [3, 4]], dtype=np.uint8)}
    strided = {"a": grid[:, 1], "b": np.array([1.0, 2.0, 3.0])}  # not contiguous
    ragged = {"a": np.array([1.0]), "b": np.array([1.0, 2.0])}
    payload = encode_batch(
        [pending("p", packed), pending("2d", two_d), pending("s", strided), pending("r", ragged)]
    )
    rows = rows_of(payload)
    assert rows[0]["inputs"] == {"a": [1.5], "b": [7], "c": [True]}
    assert rows[1]["inputs"] == {"a": [1.0, 2.0], "v": [[1, 2], [3, 4]]}
    assert rows[2]["inputs"] == {"a": [1, 5, 9], "b": [1.0, 2.0, 3.0]}
    assert rows[3]["inputs"] == {"a": [1.0], "b": [1.0]}  # rows are the first column's


def test_matrices_strings_lists_and_nan_come_back_as_json() -> None:
    matrix = np.array([[1.0, np.nan], [3.0, 4.0]], dtype=np.float32)
    payload = encode_batch(
        [
            pending("m", matrix, {"s": np.array(["x", "y"], dtype=object)}, names=["p", "q"]),
            pending("l", {"user": ["u1"], "flag": np.array([True])}),
            pending("none"),
        ]
    )
    matrix_row, list_row, empty_row = rows_of(payload)
    assert matrix_row["inputs"] == {"p": [1.0, 3.0], "q": [None, 4.0]}
    assert matrix_row["outputs"] == {"s": ["x", "y"]}
    assert list_row["inputs"] == {"user": ["u1"], "flag": [True]}
    assert empty_row["inputs"] is None
    assert empty_row["outputs"] is None


def test_values_that_cannot_be_logged_leave_a_note_and_the_record() -> None:
    payload = encode_batch(
        [
            pending("bad", np.zeros(3)),  # 1-D: not a matrix
            pending("short", np.zeros((2, 3)), names=["a"]),
            pending("odd", {"x": np.array([1 + 2j])}, {"y": 42}),
        ]
    )
    bad, short, odd = rows_of(payload)
    assert bad["inputs"] is None
    assert "not logged: ValueError: an array input must be 2-D" in bad["error"]
    assert "1 names for 3 columns" in short["error"]
    assert odd["inputs"] == {"x": ["(1+2j)"]}  # complex numbers as text
    assert odd["outputs"] is None
    assert "TypeError" in odd["error"]


def test_long_strings_are_cut_to_their_columns() -> None:
    fields, *rest = pending("r")
    fields = list(fields)
    fields[1] = "r" * 300
    fields[6] = None
    (row,) = rows_of(encode_batch([(fields, *rest)]))  # type: ignore[arg-type]
    assert len(row["request_id"]) == 128
    assert row["arm"] == "primary"


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown inference log format"):
        decode_rows(b"{}")


def test_a_commit_too_big_for_one_record_is_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference_log, "MAX_RECORD_BYTES", 6000)
    batch = [pending(str(i), {"x": np.zeros(500)}) for i in range(3)]  # 4,000 bytes each
    payloads = inference_log._payloads(batch)
    assert len(payloads) == 3
    assert [row["request_id"] for p in payloads for row in rows_of(p)] == ["0", "1", "2"]
    alone = inference_log._payloads([pending("huge", {"x": np.zeros(1000)})])
    (row,) = rows_of(alone[0])
    assert row["inputs"] is None
    assert "inputs and outputs not logged" in row["error"]
