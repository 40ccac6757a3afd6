"""The JSON log rotates, expires and finds a request through its index: on real files, a
real SQLite index, and a real two-worker server."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.serving.telemetry.logfiles import log_files, segments
from modelyard.serving.telemetry.logindex import LogIndex, index_path, maintain, search_log
from modelyard.serving.telemetry.logsearch import LogQuery

T0 = 1_800_000_000.0
DAY = 86400.0
ROTATE = 64 * 1024


def _write_log(active: Path, count: int) -> None:
    log = JsonLog(active, worker="w0", rotate_bytes=ROTATE)
    for i in range(count):
        log.emit("info", "request", {"request_id": f"r-{i}", "status": 200, "path": "/v2"}, T0 + i)
        if i % 200 == 199:
            log.flush()
    log.emit("info", "model_loaded", {"model": "fraud"}, T0 + count)
    log.close()


def _ids(files: list[Path]) -> Counter[str]:
    return Counter(
        record["request_id"]
        for path in files
        for record in map(orjson.loads, path.read_bytes().splitlines())
        if "request_id" in record
    )


def test_a_lookup_reads_only_the_lines_the_index_points_at(tmp_path: Path) -> None:
    active = tmp_path / "serving.jsonl"
    _write_log(active, 5000)
    rotated = segments(active)
    assert len(rotated) >= 5
    done = maintain(active, T0 + 5000, ttl_s=0, max_bytes=ROTATE, max_age_s=DAY)
    assert done["indexed"] == sum(_ids([s.path for s in rotated]).values())
    target = next(iter(_ids([rotated[1].path])))
    # Every other segment overwritten with noise of the same size: a lookup that scanned
    # the files would find nothing parseable there, and must not need to.
    for segment in rotated:
        if segment != rotated[1]:
            segment.path.write_bytes(b"x" * segment.path.stat().st_size)
    (found,) = search_log(active, LogQuery(request_id=target), limit=None)
    assert (found["request_id"], found["status"]) == (target, 200)
    last = "r-4999"  # in the active file, not indexed
    assert [r["request_id"] for r in search_log(active, LogQuery(request_id=last), 5)] == [last]
    assert search_log(active, LogQuery(request_id="r-unknown"), 5) == []


def test_segments_rotated_since_the_sweep_are_indexed_at_lookup(tmp_path: Path) -> None:
    active = tmp_path / "serving.jsonl"
    _write_log(active, 1500)
    maintain(active, T0, ttl_s=0, max_bytes=ROTATE, max_age_s=0)
    _write_log(active, 3000)  # the same ids again, in newer segments
    found = search_log(active, LogQuery(request_id="r-1200"), limit=None)
    assert [r["ts"] for r in found] == [T0 + 1200, T0 + 1200]  # both writes, oldest first
    index = LogIndex(active)
    try:
        assert index.catch_up() == 0  # nothing left to index
    finally:
        index.close()


def test_expired_segments_go_with_their_index_rows(tmp_path: Path) -> None:
    active = tmp_path / "serving.jsonl"
    _write_log(active, 3000)
    old = segments(active)[:2]
    old_ids = _ids([s.path for s in old])
    for segment in old:
        os.utime(segment.path, (T0, T0))
    for segment in segments(active)[2:]:
        os.utime(segment.path, (T0 + 10 * DAY, T0 + 10 * DAY))
    maintain(active, T0 + 9 * DAY, ttl_s=30 * DAY, max_bytes=ROTATE, max_age_s=0)
    done = maintain(active, T0 + 31 * DAY, ttl_s=30 * DAY, max_bytes=ROTATE, max_age_s=0)
    assert sorted(done["deleted"]) == sorted(s.name for s in old)
    assert not any(s.path.exists() for s in old)
    gone = next(iter(old_ids))
    assert search_log(active, LogQuery(request_id=gone), limit=None) == []
    index = LogIndex(active)
    try:
        assert index.forget_missing() == []  # already dropped by the sweep
    finally:
        index.close()
    assert index_path(active).exists()


def test_an_old_quiet_log_is_rotated_by_age(tmp_path: Path) -> None:
    active = tmp_path / "serving.jsonl"
    _write_log(active, 10)  # far below the size limit
    assert segments(active) == []
    done = maintain(active, T0 + DAY + 60, ttl_s=0, max_bytes=ROTATE, max_age_s=DAY)
    assert done["rotated"] is not None
    assert not active.exists()
    assert len(search_log(active, LogQuery(request_id="r-3"), limit=None)) == 1


def test_a_two_worker_server_rotates_without_losing_a_line(
    fresh_home: Path,
    launch_server: Callable[..., Any],
    fraud_body: bytes,
    wait_until: Callable[..., Any],
) -> None:
    server = launch_server(
        fresh_home,
        ["fraud@champion"],
        workers=2,
        settings={"log_rotate_bytes": str(ROTATE)},
        environ={"MODELYARD_MONITORING__RETENTION_SWEEP_INTERVAL_S": "1"},
    )
    sent = [f"rot-{i}" for i in range(1200)]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for request_id in sent:
            response = client.post(
                "/v2/models/fraud/infer",
                content=fraud_body,
                headers={"content-type": "application/json", "x-request-id": request_id},
            )
            assert response.status_code == 200
    active = server.log_path

    def logged() -> Counter[str]:
        return Counter(i for i in _ids(log_files(active)) if i.startswith("rot-"))

    assert wait_until(lambda: len(logged()) == len(sent), timeout=30)
    assert set(logged().values()) == {1}  # each request exactly once, across the files
    assert len(segments(active)) >= 2
    (first,) = search_log(active, LogQuery(request_id=sent[0]), limit=None)
    assert (first["status"], first["event"]) == (200, "request")
    index = LogIndex(active)
    try:  # the server's sweep keeps the index current on its own
        assert wait_until(lambda: index.catch_up() == 0, timeout=30)
    finally:
        index.close()
