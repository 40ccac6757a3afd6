"""The JSON log's rotation and retention decisions, and a writer following a rotation."""

from __future__ import annotations

from pathlib import Path

import orjson

from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.serving.telemetry.logfiles import (
    expired,
    log_files,
    rotate,
    rotation_due,
    segment_name,
    segments,
)

T0 = 1_800_000_000.0
DAY = 86400.0


def test_rotation_is_due_past_the_size_or_the_age() -> None:
    assert not rotation_due(0, None, T0, max_bytes=100, max_age_s=DAY)
    assert not rotation_due(99, T0, T0 + 10, max_bytes=100, max_age_s=DAY)
    assert rotation_due(100, T0, T0 + 10, max_bytes=100, max_age_s=DAY)
    assert rotation_due(1, T0, T0 + DAY, max_bytes=100, max_age_s=DAY)
    assert not rotation_due(1, T0, T0 + 10 * DAY, max_bytes=100, max_age_s=0)
    assert not rotation_due(1, None, T0 + 10 * DAY, max_bytes=100, max_age_s=DAY)


def test_segments_expire_after_the_time_to_live_and_never_with_zero() -> None:
    written = [("a", T0), ("b", T0 + DAY), ("c", T0 + 2 * DAY)]
    assert expired(written, T0 + 2.5 * DAY, ttl_s=DAY) == ["a", "b"]
    assert expired(written, T0 + 100 * DAY, ttl_s=0) == []


def test_segment_names_sort_by_time(tmp_path: Path) -> None:
    active = tmp_path / "serving.jsonl"
    names = [segment_name(active, T0 + dt) for dt in (0.000001, 9.5, 100, 3 * DAY)]
    assert names == sorted(names)
    for name in names:
        (tmp_path / name).write_bytes(b"x\n")
    (tmp_path / "serving.jsonl.index").write_bytes(b"")  # not a segment
    assert [s.name for s in segments(active)] == names
    assert segments(active)[1].rotated_at == T0 + 9.5


def test_a_rotation_judged_on_another_file_renames_nothing(tmp_path: Path) -> None:
    active = tmp_path / "serving.jsonl"
    active.write_bytes(b"{}\n")
    assert rotate(active, T0, inode=active.stat().st_ino + 1) is None
    moved = rotate(active, T0, inode=active.stat().st_ino)
    assert moved is not None
    assert not active.exists()
    active.write_bytes(b"{}\n")
    again = rotate(active, T0)  # the same microsecond: a distinct name
    assert again is not None
    assert again != moved


def _request_ids(files: list[Path]) -> list[str]:
    return [
        orjson.loads(line)["request_id"]
        for path in files
        for line in path.read_bytes().splitlines()
    ]


def test_writers_rotate_and_follow_each_other_without_losing_a_line(tmp_path: Path) -> None:
    active = tmp_path / "logs" / "serving.jsonl"
    # Two writers on one file, as two worker processes are: one rotates, the other
    # notices at its next flush and moves to the new file.
    first = JsonLog(active, worker="w0", rotate_bytes=64 * 1024)
    second = JsonLog(active, worker="w1", rotate_bytes=64 * 1024)
    sent = []
    for i in range(3000):
        writer = first if i % 2 == 0 else second
        sent.append(f"r-{i}")
        writer.emit("info", "request", {"request_id": f"r-{i}", "status": 200}, ts=T0 + i)
        if i % 100 == 99:
            writer.flush()
    first.close()
    second.close()
    files = log_files(active)
    assert len(files) >= 4  # rotated several times
    assert sorted(_request_ids(files)) == sorted(sent)
    assert all(s.path.stat().st_size < 64 * 1024 + 512 * 300 for s in segments(active))
