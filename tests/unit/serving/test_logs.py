"""JSON logs are written as lines and searched by request id, status, model and time."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from modelyard.errors import ValidationError
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.serving.telemetry.logsearch import (
    LogQuery,
    format_record,
    parse_time,
    search,
    status_matcher,
    summarize,
)

NOW = 1_800_000_000.0


def request(rid: str, status: int, ts: float, version: str = "3", **extra: object) -> bytes:
    record = {
        "ts": ts,
        "time": "t",
        "level": "info",
        "event": "request",
        "request_id": rid,
        "status": status,
        "model": "fraud",
        "version": version,
        "duration_ms": 1.5,
        **extra,
    }
    return orjson.dumps(record)


LINES = [
    request("a", 200, NOW - 3600),
    request("b", 503, NOW - 600, code="overloaded", error="queue full"),
    request("c", 422, NOW - 60, code="invalid_input", error="field 'amount' must be a number"),
    b"not json",
    orjson.dumps({"ts": NOW - 30, "event": "model_swapped", "model": "fraud", "version": 4}),
    request("d", 200, NOW - 10, version="4"),
]


def ids(query: LogQuery, limit: int | None = None) -> list[str]:
    return [r.get("request_id", r["event"]) for r in search(LINES, query, limit)]


def test_by_request_id() -> None:
    assert ids(LogQuery(request_id="c")) == ["c"]


def test_by_status_forms() -> None:
    assert ids(LogQuery(status="5xx")) == ["b"]
    assert ids(LogQuery(status=">=400")) == ["b", "c"]
    assert ids(LogQuery(status="200,422")) == ["a", "c", "d"]


def test_by_model_and_version() -> None:
    assert ids(LogQuery(model="fraud/4")) == ["model_swapped", "d"]
    assert ids(LogQuery(model="other")) == []


def test_by_time_and_limit() -> None:
    assert ids(LogQuery(since=parse_time("15m", NOW))) == ["b", "c", "model_swapped", "d"]
    assert ids(LogQuery(since=parse_time("15m", NOW)), limit=2) == ["model_swapped", "d"]
    assert ids(LogQuery(until=NOW - 3000)) == ["a"]


def test_by_code_event_and_text() -> None:
    assert ids(LogQuery(code="overloaded")) == ["b"]
    assert ids(LogQuery(event="model_swapped")) == ["model_swapped"]
    assert ids(LogQuery(text="AMOUNT")) == ["c"]


def test_parse_time_forms() -> None:
    assert parse_time("2h", NOW) == NOW - 7200
    assert parse_time("1800000000", NOW) == NOW
    assert parse_time("2027-01-15T08:00:00Z", NOW) == parse_time("2027-01-15T08:00:00", NOW)
    with pytest.raises(ValidationError, match="cannot read time"):
        parse_time("yesterday", NOW)


def test_bad_status() -> None:
    with pytest.raises(ValidationError, match="cannot read status"):
        status_matcher("fivehundred")


def test_summary_groups_problems() -> None:
    rows = summarize(search(LINES, LogQuery(), None))
    assert {(r["version"], r["status"], r["code"], r["count"]) for r in rows} == {
        ("3", 200, "", 1),
        ("3", 503, "overloaded", 1),
        ("3", 422, "invalid_input", 1),
        ("4", 200, "", 1),
    }


def test_format_record() -> None:
    line = format_record(orjson.loads(LINES[2]))
    assert "422" in line
    assert "fraud/3" in line
    assert "[invalid_input]" in line
    assert "c" in line


def test_json_log_writes_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "serving.jsonl"
    log = JsonLog(path, worker="7")
    log.emit("info", "request", {"request_id": "x", "status": 200}, ts=NOW + 0.25)
    log.emit("warning", "request", {"request_id": "y", "status": 422})
    assert not path.read_bytes()  # buffered until a flush
    log.close()
    first, second = (orjson.loads(line) for line in path.read_bytes().splitlines())
    assert first["time"] == "2027-01-15T08:00:00.250Z"
    assert first["worker"] == "7"
    assert first["request_id"] == "x"
    assert second["level"] == "warning"
