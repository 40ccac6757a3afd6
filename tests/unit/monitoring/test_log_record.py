"""The inference log's payload: columns, arrays as bytes, shared objects once, read back."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from modelyard.monitoring.inference_log import logger as inference_log
from modelyard.monitoring.inference_log.logger import InferenceLogger
from modelyard.monitoring.inference_log.memory import InMemoryInferenceLogRepository
from modelyard.monitoring.inference_log.payload import Payload
from modelyard.monitoring.inference_log.record import Group, Summary, encode, read_summary
from modelyard.monitoring.inference_log.storage import BATCH_SPAN_S, storable


def group(*records: dict[str, Any], deployment: str = "fraud") -> Group:
    """A group of records with plausible fields; each dict overrides some of them."""
    built = Group(deployment, "m", 3)
    for number, record in enumerate(records):
        values: dict[str, Any] = {"request_id": f"r{number}", "ts": 1.5 + number}
        values |= {"latency_ms": 0.25, "rows": 1} | record
        names = values.pop("names", None)
        built.append(**values, input_names=names)
    return built


def plain(columns: dict[str, Any] | None) -> dict[str, Any] | None:
    """Columns as JSON would give them back (NaN as None)."""
    return None if columns is None else orjson.loads(orjson.dumps(columns, default=list_of))


def list_of(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else str(value)


def rows_of(payload: bytes) -> list[dict[str, Any]]:
    decoded = Payload(payload)
    assert decoded.unreadable == 0
    out = []
    for number in range(len(decoded)):
        row: dict[str, Any] = decoded.record(number)._asdict()
        row["inputs"] = plain(decoded.inputs(number))
        row["outputs"] = plain(decoded.outputs(number))
        out.append(row)
    return out


def test_a_batch_shared_by_its_requests_is_written_once_and_sliced_back() -> None:
    inputs = {"amount": np.array([1.0, 2.0, 3.0]), "n": np.array([7, 8, 9], dtype=np.int32)}
    outputs = {"label": np.array([0, 1, 1]), "proba": np.array([[0.9, 0.1], [0.2, 0.8], [0, 1]])}
    shared = {"inputs": inputs, "outputs": outputs}
    payload = encode(
        group(
            {**shared, "input_rows": (0, 1), "output_rows": (0, 1)},
            {**shared, "input_rows": (1, 3), "output_rows": (1, 3), "rows": 2, "ts": 9.0},
        ),
        "batch-1",
    )
    assert payload.count(inputs["amount"].tobytes()) == 1
    first, second = rows_of(payload)
    assert first["inputs"] == {"amount": [1.0], "n": [7]}
    assert second["inputs"] == {"amount": [2.0, 3.0], "n": [8, 9]}
    assert second["outputs"] == {"label": [1, 1], "proba": [[0.2, 0.8], [0.0, 1.0]]}
    assert first == {
        "request_id": "r0", "ts": 1.5, "deployment": "fraud", "model": "m", "version": 3,
        "arm": "primary", "status": 200, "latency_ms": 0.25, "rows": 1, "error": None,
        "inputs": {"amount": [1.0], "n": [7]}, "outputs": {"label": [0], "proba": [[0.9, 0.1]]},
    }  # fmt: skip
    assert read_summary(payload) == Summary("batch-1", "fraud", "m", 3, 1.5, 9.0, 2, 0)
    assert Payload(payload).id == "batch-1"


def test_per_request_columns_of_mixed_types_and_layouts_come_back_exactly() -> None:
    grid = np.arange(12, dtype=np.int64).reshape(3, 4)
    packed = {"a": np.array([1.5]), "b": np.array([7], np.int32), "c": np.array([True])}
    two_d = {"a": np.array([1.0, 2.0]), "v": np.array([[1, 2], [3, 4]], dtype=np.uint8)}
    strided = {"a": grid[:, 1], "b": np.array([1.0, 2.0, 3.0])}  # not contiguous
    ragged = {"a": np.array([1.0]), "b": np.array([1.0, 2.0])}
    payload = encode(
        group(*({"inputs": columns} for columns in (packed, two_d, strided, ragged))), "p"
    )
    rows = rows_of(payload)
    assert rows[0]["inputs"] == {"a": [1.5], "b": [7], "c": [True]}
    assert rows[1]["inputs"] == {"a": [1.0, 2.0], "v": [[1, 2], [3, 4]]}
    assert rows[2]["inputs"] == {"a": [1, 5, 9], "b": [1.0, 2.0, 3.0]}
    assert rows[3]["inputs"] == {"a": [1.0], "b": [1.0]}  # rows are the first column's


def test_matrices_strings_lists_and_nan_come_back() -> None:
    matrix = np.array([[1.0, np.nan], [3.0, 4.0]], dtype=np.float32)
    strings = {"s": np.array(["x", "y"], dtype=object)}
    payload = encode(
        group(
            {"inputs": matrix, "names": ["p", "q"], "outputs": strings, "arm": "canary"},
            {"inputs": {"user": ["u1"], "flag": np.array([True])}, "status": 503},
            {},
        ),
        "m",
    )
    matrix_row, list_row, empty_row = rows_of(payload)
    assert matrix_row["inputs"] == {"p": [1.0, 3.0], "q": [None, 4.0]}
    assert matrix_row["outputs"] == {"s": ["x", "y"]}
    assert list_row["inputs"] == {"user": ["u1"], "flag": [True]}
    assert (empty_row["inputs"], empty_row["outputs"]) == (None, None)
    assert [row["arm"] for row in (matrix_row, list_row, empty_row)] == [
        "canary",
        "primary",
        "primary",
    ]
    assert read_summary(payload).errors == 1  # type: ignore[union-attr]


def test_values_that_cannot_be_logged_leave_a_note_and_the_record() -> None:
    payload = encode(
        group(
            {"inputs": np.zeros(3)},  # 1-D: not a matrix
            {"inputs": np.zeros((2, 3)), "names": ["a"]},
            {"inputs": {"x": np.array([1 + 2j])}, "outputs": {"y": 42}},
        ),
        "bad",
    )
    bad, short, odd = rows_of(payload)
    assert bad["inputs"] is None
    assert "not logged: ValueError: an array input must be 2-D" in bad["error"]
    assert "1 names for 3 columns" in short["error"]
    assert odd["inputs"] == {"x": ["(1+2j)"]}  # complex numbers as text
    assert odd["outputs"] is None
    assert "TypeError" in odd["error"]


def test_long_strings_are_cut_to_their_columns() -> None:
    (row,) = rows_of(encode(group({"request_id": "r" * 300, "arm": None}), "cut"))
    assert len(row["request_id"]) == 128
    assert row["arm"] == "primary"


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown inference log format"):
        Payload(b"{}")


def legacy(records: list[list[Any]]) -> bytes:
    """A payload in the older format, one list of fields per record."""
    header = orjson.dumps(
        {"records": records, "blocks": [{"names": ["x"], "columns": [["j", [1, 2]]]}]}
    )
    return b"\x01" + struct.pack("<I", len(header)) + header


def test_the_older_format_still_reads_and_a_malformed_record_is_counted() -> None:
    fields = ["id-a", "a", 10.0, "fraud", "m", 1, "primary", 200, 1.0, 2, None, [0, 0, 2], None]
    decoded = Payload(legacy([fields, ["id-x", "x"]]))
    assert decoded.request_ids == ["a"]
    assert (decoded.id, decoded.unreadable) == ("id-a", 1)
    assert plain(decoded.inputs(0)) == {"x": [1, 2]}


def test_a_payload_without_a_summary_is_split_by_group_and_span() -> None:
    record = ["", "", 0.0, "fraud", "m", 1, "primary", 200, 1.0, 2, None, [0, 0, 2], None]
    rows = []
    for number, (deployment, ts) in enumerate(
        [("fraud", 10.0), ("recs", 11.0), ("fraud", 12.0), ("fraud", 10.0 + BATCH_SPAN_S + 5)]
    ):
        rows.append([f"id{number}", f"r{number}", ts, deployment, *record[4:]])
    stored, unreadable = storable(legacy(rows))
    assert unreadable == 0
    summaries = sorted(
        (b.summary.deployment, b.summary.ts_first, b.summary.requests) for b in stored
    )
    assert summaries == [("fraud", 10.0, 2), ("fraud", 75.0, 1), ("recs", 11.0, 1)]
    assert [Payload(b.payload).request_ids for b in stored if b.summary.ts_first == 10.0] == [
        ["r0", "r2"]
    ]
    again, _ = storable(legacy(rows))  # a replay stores under the same ids
    assert sorted(b.summary.id for b in again) == sorted(b.summary.id for b in stored)
    (fast,), _ = storable(stored[0].payload)
    assert fast.payload is stored[0].payload  # summarised: stored as it is


def test_a_commit_too_big_for_one_record_is_split(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(inference_log, "MAX_RECORD_BYTES", 6000)
    log = InMemoryInferenceLogRepository()
    logger = InferenceLogger(log, tmp_path / "wal", worker="w", ingest=False)

    def log(request_id: str, size: int) -> None:
        logger.record(
            request_id=request_id, deployment="fraud", model="m", version=1, ts=1.0,
            status=200, latency_ms=1.0, rows=1, inputs={"x": np.zeros(size)},
        )  # fmt: skip

    for number in range(3):
        log(str(number), 500)  # 4,000 bytes each
    logger.commit()
    log("huge", 1000)
    logger.commit()
    payloads, _ = logger._wal.read(logger._wal.checkpoint, max_records=100)
    assert [Payload(p).request_ids for p in payloads] == [["0"], ["1"], ["2"], ["huge"]]
    huge = Payload(payloads[-1])
    assert huge.in_refs == [None]
    assert "inputs and outputs not logged" in str(huge.errors[0])
    logger.close()
