"""The write-ahead log: framing, torn tails, checkpoints, rotation, the disk cap, ownership."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from modelyard.errors import ConflictError, OverloadedError
from modelyard.monitoring.inference_log import wal as wal_module
from modelyard.monitoring.inference_log.wal import (
    CHECKPOINT,
    HEADER,
    LogTail,
    Position,
    WriteAheadLog,
    frame,
    parse_frames,
)


def payloads(count: int, size: int = 20) -> list[bytes]:
    return [f"record-{i:04d}".encode().ljust(size, b".") for i in range(count)]


def read_all(log: WriteAheadLog, position: Position | None = None) -> list[bytes]:
    out, position = [], position or log.checkpoint
    while True:
        batch, position = log.read(position, max_records=3)
        if not batch:
            return out
        out += batch


def segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.log"))


# -- framing ---------------------------------------------------------------------------------


def test_a_frame_is_length_crc_and_payload() -> None:
    data = frame([b"hello"])
    assert data == HEADER.pack(5, zlib.crc32(b"hello")) + b"hello"
    assert parse_frames(data, 10) == ([b"hello"], len(data), 0, False)


def test_parse_stops_at_an_incomplete_record_and_says_how_big_it_is() -> None:
    data = frame([b"one", b"two-two"])
    got, used, needed, corrupt = parse_frames(data[:-2], 10)
    assert got == [b"one"]
    assert (used, needed, corrupt) == (HEADER.size + 3, HEADER.size + 7, False)


def test_parse_flags_a_crc_mismatch_and_an_impossible_length() -> None:
    data = bytearray(frame([b"one", b"two"]))
    data[-1] ^= 0xFF
    assert parse_frames(bytes(data), 10)[1:] == (HEADER.size + 3, 0, True)
    huge = HEADER.pack(wal_module.MAX_RECORD_BYTES + 1, 0)
    assert parse_frames(huge, 10) == ([], 0, 0, True)


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20), st.data())
def test_any_cut_of_a_framed_stream_parses_to_a_prefix(
    records: list[bytes], data: st.DataObject
) -> None:
    stream = frame(records)
    cut = data.draw(st.integers(0, len(stream)))
    got, used, _, corrupt = parse_frames(stream[:cut], len(records) + 1)
    assert not corrupt
    assert got == records[: len(got)]
    assert used == len(frame(got))


# -- appending and reading ----------------------------------------------------------------------


def test_append_many_is_one_write_and_reads_back_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = []
    real_write = os.write
    monkeypatch.setattr(
        wal_module.os, "write", lambda fd, b: writes.append(len(b)) or real_write(fd, b)
    )
    with WriteAheadLog(tmp_path / "w") as log:
        log.append_many(payloads(64))
        assert len(writes) == 1
        log.append_many(payloads(3))
        assert read_all(log) == payloads(64) + payloads(3)
        assert log.end == Position(1, len(frame(payloads(64))) + len(frame(payloads(3))))


def test_a_record_bigger_than_the_read_chunk_reads_whole(tmp_path: Path) -> None:
    big = os.urandom(3 * 1024 * 1024)
    with WriteAheadLog(tmp_path / "w") as log:
        log.append_many([b"small", big, b"after"])
        assert read_all(log) == [b"small", big, b"after"]


def test_a_torn_tail_is_truncated_when_the_log_is_opened(tmp_path: Path) -> None:
    directory = tmp_path / "w"
    with WriteAheadLog(directory) as log:
        log.append_many(payloads(3))
    path = directory / "00000001.log"
    whole = path.stat().st_size
    with open(path, "r+b") as file:
        file.truncate(whole - 5)  # the process died in the middle of the last record
    with WriteAheadLog(directory) as log:
        assert read_all(log) == payloads(2)
        assert log.truncated_bytes == len(frame(payloads(1))) - 5
        assert log.corrupt_records == 1
    assert path.stat().st_size == len(frame(payloads(2)))


def test_a_crc_mismatch_in_the_tail_is_truncated(tmp_path: Path) -> None:
    directory = tmp_path / "w"
    with WriteAheadLog(directory) as log:
        log.append_many(payloads(3))
    path = directory / "00000001.log"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with WriteAheadLog(directory) as log:
        assert read_all(log) == payloads(2)
        log.append_many([b"new"])  # appends go to a fresh segment after the repaired one
        assert read_all(log) == [*payloads(2), b"new"]
    assert segments(directory) == ["00000001.log", "00000002.log"]


def test_corruption_inside_an_older_segment_skips_to_the_next(tmp_path: Path) -> None:
    directory = tmp_path / "w"
    with WriteAheadLog(directory, segment_bytes=1) as log:
        log.append_many(payloads(2))
        log.append_many([b"second segment"])
        first = directory / "00000001.log"
        data = bytearray(first.read_bytes())
        data[HEADER.size] ^= 0x01  # the first record's payload
        first.write_bytes(bytes(data))
        assert read_all(log) == [b"second segment"]
        assert log.corrupt_records == 1


# -- checkpoints, replay, rotation ---------------------------------------------------------------


def test_replay_yields_what_follows_the_checkpoint(tmp_path: Path) -> None:
    directory = tmp_path / "w"
    with WriteAheadLog(directory) as log:
        log.append_many(payloads(5))
        done, position = log.read(log.checkpoint, max_records=3)
        assert done == payloads(5)[:3]
        log.advance(position)
    saved = orjson.loads((directory / CHECKPOINT).read_bytes())
    assert Position(saved["segment"], saved["offset"]) == position
    assert not (directory / f"{CHECKPOINT}.tmp").exists()
    with WriteAheadLog(directory) as log:
        assert list(log.replay()) == payloads(5)[3:]
        assert list(log.replay()) == payloads(5)[3:]  # replay does not move the checkpoint


def test_an_unreadable_checkpoint_replays_from_the_start(tmp_path: Path) -> None:
    directory = tmp_path / "w"
    with WriteAheadLog(directory) as log:
        log.append_many(payloads(4))
        log.advance(log.read(log.checkpoint, max_records=2)[1])
    (directory / CHECKPOINT).write_bytes(b"{not json")
    with WriteAheadLog(directory) as log:
        assert list(log.replay()) == payloads(4)  # duplicates are the store's to ignore


def test_segments_rotate_by_size_and_spent_ones_are_deleted(tmp_path: Path) -> None:
    directory = tmp_path / "w"
    batch = payloads(4, size=100)
    with WriteAheadLog(directory, segment_bytes=len(frame(batch))) as log:
        for _ in range(3):
            log.append_many(batch)
        assert segments(directory) == ["00000001.log", "00000002.log", "00000003.log"]
        assert log.size_bytes == 3 * len(frame(batch))
        records, position = log.read(log.checkpoint, max_records=9)
        assert records == batch * 2 + batch[:1]
        log.advance(position)
        assert segments(directory) == ["00000003.log"]
        assert log.size_bytes == len(frame(batch))
        records, position = log.read(position, max_records=100)
        log.advance(position)
        assert records == batch[1:]
        assert not log.backlog
    with WriteAheadLog(directory) as log:
        assert list(log.replay()) == []


def test_close_removes_the_directory_only_when_everything_was_ingested(tmp_path: Path) -> None:
    directory = tmp_path / "w"
    log = WriteAheadLog(directory)
    log.append_many(payloads(2))
    log.close(remove=True)
    assert segments(directory) == ["00000001.log"]  # still has a backlog: kept
    log = WriteAheadLog(directory)
    log.advance(log.read(log.checkpoint)[1])
    log.close(remove=True)
    assert not directory.exists()


# -- reading a live log from elsewhere ------------------------------------------------------------


def test_a_tail_reads_whole_records_and_waits_for_one_being_appended(tmp_path: Path) -> None:
    directory = tmp_path / "w"
    with WriteAheadLog(directory) as log:
        log.append_many(payloads(3))
        tail = LogTail(directory)
        first = frame(payloads(1, size=50))
        segment = directory / "00000001.log"
        with open(segment, "ab") as file:  # an append caught half way
            file.write(first[:30])
        records, position = tail.read(tail.checkpoint)
        assert records == payloads(3)
        assert tail.read(position) == ([], position)  # not corrupt: not yet whole
        with open(segment, "ab") as file:
            file.write(first[30:])
        assert tail.read(position)[0] == payloads(1, size=50)
        assert tail.corrupt_records == 0


def test_a_tail_moves_the_checkpoint_and_frees_the_writers_space(tmp_path: Path) -> None:
    directory = tmp_path / "w"
    batch = payloads(10)
    with WriteAheadLog(directory, max_bytes=2 * len(frame(batch)), segment_bytes=1) as log:
        log.append_many(batch)
        log.append_many(batch)
        with pytest.raises(OverloadedError, match="limit of"):
            log.append_many(batch)
        tail = LogTail(directory)
        records, position = tail.read(tail.checkpoint, max_records=10)
        tail.advance(position)
        tail.advance(tail.read(position, max_records=1)[1])  # steps into the second segment
        assert records == batch
        assert segments(directory) == ["00000002.log"]
        log.append_many(batch)  # the writer counts the disk again and finds room
        assert log.backlog_bytes() == 2 * len(frame(batch)) - len(frame(batch[:1]))
        assert WriteAheadLog.open_orphan(directory) is None  # still the writer's
    with WriteAheadLog(directory) as reopened:
        assert reopened.checkpoint == tail.checkpoint
        assert list(reopened.replay()) == batch[1:] + batch


def test_a_tail_skips_a_corrupt_record_once_the_writer_has_moved_on(tmp_path: Path) -> None:
    directory = tmp_path / "w"
    with WriteAheadLog(directory, segment_bytes=1) as log:
        log.append_many(payloads(2))
        log.append_many(payloads(1))
    data = bytearray((directory / "00000001.log").read_bytes())
    data[HEADER.size] ^= 0xFF  # the first record's payload no longer matches its crc
    (directory / "00000001.log").write_bytes(bytes(data))
    tail = LogTail(directory)
    records, _ = tail.read(tail.checkpoint)
    assert records == payloads(1)  # the second segment's
    assert tail.corrupt_records == 1


# -- the disk cap and fsync ---------------------------------------------------------------------


def test_an_append_past_the_cap_is_refused_whole_until_space_is_freed(tmp_path: Path) -> None:
    batch = payloads(10)
    with WriteAheadLog(tmp_path / "w", max_bytes=2 * len(frame(batch)), segment_bytes=1) as log:
        log.append_many(batch)
        log.append_many(batch)
        end = log.end
        with pytest.raises(OverloadedError, match="limit of"):
            log.append_many(batch)
        assert log.end == end
        assert read_all(log) == batch * 2
        log.advance(log.read(log.checkpoint, max_records=10)[1])  # the store took one batch
        log.append_many(batch)
        assert log.size_bytes == 2 * len(frame(batch))


def test_a_cap_below_the_segment_size_keeps_taking_appends_while_a_reader_keeps_up(
    tmp_path: Path,
) -> None:
    # Spent bytes are freed a segment at a time: were a segment as large as the cap, a log
    # read as fast as it is written would still fill once and refuse every append after.
    directory = tmp_path / "w"
    batch = payloads(10, size=100)
    cap = 8 * len(frame(batch))
    with WriteAheadLog(directory, max_bytes=cap, segment_bytes=100 * cap) as log:
        assert log.segment_bytes == cap // 4
        tail = LogTail(directory)
        for _ in range(50):  # 6x the cap in all
            log.append_many(batch)
            records, position = tail.read(tail.checkpoint)
            tail.advance(position)
            assert records == batch
            assert sum(p.stat().st_size for p in directory.glob("*.log")) <= cap


def test_fsync_runs_when_the_interval_has_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(wal_module.os, "fsync", synced.append)
    now = [0.0]
    with WriteAheadLog(tmp_path / "w", fsync_interval_s=1.0, clock=lambda: now[0]) as log:
        log.append_many([b"a"])
        segment_syncs = len(synced)  # the directory, for the new segment
        assert segment_syncs == 1
        now[0] = 0.5
        log.append_many([b"b"])
        assert len(synced) == segment_syncs  # not due yet
        now[0] = 1.5
        log.sync_if_due()  # a quiet spell: the background thread syncs
        assert len(synced) == segment_syncs + 1
        log.sync_if_due()  # nothing new written
        assert len(synced) == segment_syncs + 1
    with WriteAheadLog(tmp_path / "n") as log:
        before = len(synced)
        log.append_many([b"a"])
        log.sync_if_due()
        assert len(synced) == before  # off by default


# -- ownership ------------------------------------------------------------------------------


def test_a_live_log_cannot_be_opened_twice_or_adopted(tmp_path: Path) -> None:
    directory = tmp_path / "w"
    with WriteAheadLog(directory) as log:
        log.append_many([b"x"])
        with pytest.raises(ConflictError, match="in use by another live process"):
            WriteAheadLog(directory, lock_timeout_s=0)
        assert WriteAheadLog.open_orphan(directory) is None
    orphan = WriteAheadLog.open_orphan(directory)
    assert orphan is not None
    assert list(orphan.replay()) == [b"x"]
    orphan.close()
    assert WriteAheadLog.open_orphan(tmp_path / "missing") is None
