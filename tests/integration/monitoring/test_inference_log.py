"""The inference log end to end: WAL -> store exactly once, crash replay, spill, retention."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import exc, select

from modelyard.config import Settings
from modelyard.errors import OverloadedError
from modelyard.monitoring import (
    InferenceLogger,
    LogPolicy,
    SqlInferenceLogRepository,
    WriteAheadLog,
    purge,
    read_window,
    retention_sweep,
    write_records,
)
from modelyard.monitoring.inference_log.ingest import LogIngester
from modelyard.monitoring.inference_log.payload import Payload
from modelyard.monitoring.inference_log.repository import StoredBatch
from modelyard.store.database import Database
from modelyard.store.schema import inference_batches
from modelyard.yard import Yard


@pytest.fixture
def db(yard: Yard) -> Database:
    """The migrated metadata database of a fresh home, on each backend."""
    return yard.db


@pytest.fixture
def log(db: Database) -> SqlInferenceLogRepository:
    """The inference log in ``db``."""
    return SqlInferenceLogRepository(db)


def log_request(logger: InferenceLogger, request_id: str, **overrides: Any) -> bool:
    """Record one two-row request with plausible fields; ``overrides`` replace any of them."""
    fields: dict[str, Any] = {
        "request_id": request_id,
        "deployment": "fraud",
        "model": "fraud-model",
        "version": 1,
        "ts": 1000.0,
        "status": 200,
        "latency_ms": 1.25,
        "rows": 2,
        "inputs": {"amount": np.array([10.0, 20.5]), "user": np.array(["u1", "u2"], dtype=object)},
        "outputs": {"score": np.array([0.1, 0.9], dtype=np.float32)},
    }
    fields.update(overrides)
    return logger.record(**fields)


def counts_by_request(db: Database) -> dict[str, int]:
    with db.read() as conn:
        payloads = conn.execute(select(inference_batches.c.payload)).scalars().all()
    return dict(Counter(r.request_id for data in payloads for r in Payload(data).records))


def test_committed_records_reach_the_store_exactly_once(
    db: Database, log: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    logger = InferenceLogger(log, tmp_path / "wal", worker="w0", batch_bytes=2000, interval_s=0.01)
    logger.start()
    ids = []
    for batch in range(10):
        for i in range(8):
            ids.append(f"b{batch}-r{i}")
            log_request(logger, ids[-1], ts=1000.0 + batch)
        assert logger.commit() == 8
    logger.close()
    assert counts_by_request(db) == dict.fromkeys(ids, 1)
    assert not (tmp_path / "wal" / "w0").exists()  # drained and removed at a clean close
    stats = logger.stats()
    assert (stats.committed, stats.ingested, stats.store_errors) == (80, 80, 0)


def test_a_window_reads_back_as_arrays(log: SqlInferenceLogRepository, tmp_path: Path) -> None:
    logger = InferenceLogger(log, tmp_path / "wal")
    log_request(logger, "a", ts=10.0)
    log_request(logger, "b", ts=11.0, version=2, arm="canary")
    log_request(logger, "failed", ts=12.0, status=500, inputs=None, outputs=None, error="boom")
    matrix = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    log_request(logger, "m", ts=13.0, rows=3, inputs=matrix, input_names=["x", "y"], outputs=None)
    log_request(logger, "later", ts=20.0)
    logger.commit()
    logger.drain()
    window = read_window(log, "fraud", 10.0, 20.0)
    assert window.request_ids.tolist() == ["a", "b", "failed", "m"]
    assert window.status.tolist() == [200, 200, 500, 200]
    assert window.version.tolist() == [1, 2, 1, 1]
    assert window.arm.tolist() == ["primary", "canary", "primary", "primary"]
    assert window.row_request.tolist() == [0, 0, 1, 1, 3, 3, 3]
    assert window.inputs["amount"][:4].tolist() == [10.0, 20.5, 10.0, 20.5]
    assert np.isnan(window.inputs["amount"][4:]).all()  # the matrix request has other columns
    assert window.inputs["x"][4:].tolist() == [1.0, 3.0, 5.0]
    assert window.inputs["user"].tolist() == ["u1", "u2", "u1", "u2", None, None, None]
    assert window.outputs["score"].dtype == np.float64
    assert window.latency_ms.tolist() == [1.25] * 4
    assert read_window(log, "fraud", 10.0, 20.0, version=2).request_ids.tolist() == ["b"]
    assert read_window(log, "other", 0.0, 1e9).requests == 0
    logger.close()


def test_a_crashed_workers_log_is_ingested_once_by_the_next_process(
    db: Database, log: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    crashed = InferenceLogger(log, tmp_path / "wal", worker="dead")
    for i in range(5):
        log_request(crashed, f"r{i}")
    crashed.commit()
    crashed._wal.close()  # what the kernel does to a killed process: files closed, lock free
    survivor = InferenceLogger(log, tmp_path / "wal", worker="alive")
    assert survivor.drain() == 5
    assert counts_by_request(db) == {f"r{i}": 1 for i in range(5)}
    assert not (tmp_path / "wal" / "dead").exists()
    survivor.close()


def test_a_restarted_worker_picks_up_its_own_backlog(
    db: Database, log: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    first = InferenceLogger(log, tmp_path / "wal", worker="0")
    log_request(first, "before-crash")
    first.commit()
    first._wal.close()
    again = InferenceLogger(log, tmp_path / "wal", worker="0")
    log_request(again, "after-restart")
    again.commit()
    again.drain()
    assert counts_by_request(db) == {"before-crash": 1, "after-restart": 1}
    again.close()


def test_replaying_records_twice_stores_them_once(
    db: Database, log: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    logger = InferenceLogger(log, tmp_path / "wal", worker="w")
    for i in range(4):
        log_request(logger, f"r{i}")
    logger.commit()
    logger.drain()
    logger._wal.close()
    (tmp_path / "wal" / "w" / "checkpoint").unlink()  # as if the checkpoint write was lost
    replayer = InferenceLogger(log, tmp_path / "wal", worker="w")
    assert replayer.drain() == 4
    assert counts_by_request(db) == {f"r{i}": 1 for i in range(4)}
    replayer.close()


def test_a_live_workers_log_is_left_alone(
    db: Database, log: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    live = InferenceLogger(log, tmp_path / "wal", worker="live")
    log_request(live, "live-record")
    live.commit()
    other = InferenceLogger(log, tmp_path / "wal", worker="other")
    assert other.drain() == 0
    assert counts_by_request(db) == {}
    live.close()
    other.close()
    assert counts_by_request(db) == {"live-record": 1}


def test_an_ingester_follows_a_live_log_then_claims_it_once_its_writer_is_gone(
    db: Database, log: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    writer = InferenceLogger(log, tmp_path / "wal", worker="w1", ingest=False)
    following = ["w1"]
    ingester = LogIngester(log, tmp_path / "wal", follow=lambda: following)
    log_request(writer, "first")
    writer.commit()
    assert ingester.drain() == 1
    assert (tmp_path / "wal" / "w1").is_dir()  # still the writer's
    log_request(writer, "second")
    writer.commit()
    writer.close()  # without ingest: the log stays on disk
    following.clear()  # its process is gone
    assert ingester.drain() == 1
    assert counts_by_request(db) == {"first": 1, "second": 1}
    assert not (tmp_path / "wal" / "w1").exists()
    assert ingester.ingested == 2


def test_when_the_store_fails_records_wait_on_disk(
    db: Database, log: SqlInferenceLogRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = [exc.OperationalError("INSERT", {}, Exception("database is down"))]
    real_insert = SqlInferenceLogRepository.add_batches

    def flaky(self: SqlInferenceLogRepository, batches: list[StoredBatch]) -> None:
        if failures:
            raise failures.pop()
        real_insert(self, batches)

    monkeypatch.setattr(SqlInferenceLogRepository, "add_batches", flaky)
    logger = InferenceLogger(log, tmp_path / "wal")
    log_request(logger, "kept")
    logger.commit()
    with pytest.raises(exc.OperationalError, match="database is down"):
        logger.drain()
    assert logger.stats().backlog_bytes > 0
    assert logger.drain() == 1
    assert counts_by_request(db) == {"kept": 1}
    logger.close()


def test_an_undecodable_record_is_set_aside_and_the_rest_ingested(
    db: Database, log: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    with WriteAheadLog(tmp_path / "wal" / "old") as orphan:
        orphan.append_many([b'{"id": "x"}', b"not json"])
    logger = InferenceLogger(log, tmp_path / "wal", worker="new")
    log_request(logger, "good")
    logger.commit()
    logger.drain()
    assert counts_by_request(db) == {"good": 1}
    assert logger.stats().corrupt_records == 2
    logger.close()


def test_sampling_counts_what_it_leaves_out(
    db: Database, log: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    logger = InferenceLogger(
        log, tmp_path / "wal", policies={"recs": LogPolicy(sample_rate=0.25)}, worker="w"
    )
    kept = [log_request(logger, f"r{i}", deployment="recs") for i in range(400)]
    for i in range(50):
        log_request(logger, f"f{i}", deployment="fraud")
    logger.set_policy("fraud", LogPolicy(sample_rate=0.0))
    assert not log_request(logger, "f-off", deployment="fraud")
    logger.commit()
    logger.drain()
    stored = sum(kept)
    assert 60 < stored < 140
    stats = logger.stats()
    assert stats.dropped_by_sampling == {"recs": 400 - stored, "fraud": 1}
    assert len(counts_by_request(db)) == stored + 50
    logger.close()


def test_a_full_log_rejects_or_drops_by_policy(
    db: Database, log: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    strict = InferenceLogger(log, tmp_path / "wal", worker="strict", max_wal_bytes=2000)
    log_request(strict, "fits")
    strict.commit()
    for i in range(10):
        log_request(strict, f"over{i}")
    with pytest.raises(OverloadedError, match="limit of 2000"):
        strict.commit()
    assert strict.commit() == 0  # the refused batch is gone, not retried
    relaxed = InferenceLogger(
        log, tmp_path / "wal", worker="relaxed", max_wal_bytes=2000, when_full="drop"
    )
    for i in range(10):
        log_request(relaxed, f"d{i}", deployment="recs")
    assert relaxed.commit() == 0
    assert relaxed.stats().dropped_when_full == {"recs": 10}
    strict.close()
    relaxed.close()
    assert counts_by_request(db) == {"fits": 1}


def test_purge_and_the_retention_sweep_delete_old_records_in_chunks(
    db: Database, log: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    logger = InferenceLogger(log, tmp_path / "wal")
    for i in range(10):
        log_request(logger, f"fraud-{i}", ts=float(i * 100))
        log_request(logger, f"recs-{i}", ts=float(i * 100), deployment="recs")
    logger.commit()
    logger.close()
    assert purge(log, 300.0, deployment="fraud", chunk=2) == 3
    deleted = retention_sweep(
        log,
        now=1000.0,
        policies={"recs": LogPolicy(ttl_s=250.0)},
        default=LogPolicy(ttl_s=500.0),
    )
    assert deleted == {"fraud": 2, "recs": 8}
    assert sorted(counts_by_request(db)) == [f"fraud-{i}" for i in range(5, 10)] + [
        "recs-8",
        "recs-9",
    ]


_VICTIM = """
import os, signal, sys
from pathlib import Path
from typing import Any
import numpy as np
from modelyard.store.database import Database
from modelyard.monitoring.inference_log.logger import InferenceLogger
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository

url, root, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
log = SqlInferenceLogRepository(Database(url))
logger = InferenceLogger(log, root, worker="victim", batch_bytes=500, interval_s=0.0)
logger.start()
for i in range(count):
    logger.record(
        request_id=f"req-{i}", deployment="fraud", model="m", version=1, ts=float(i),
        status=200, latency_ms=1.0, rows=1, inputs={"x": np.array([float(i)])},
    )
    logger.commit()
    print(f"req-{i}", flush=True)  # acknowledged: the response would go out now
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_every_acknowledged_record_survives_a_sigkill(
    settings: Settings, db: Database, log: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    started = time.monotonic()
    victim = subprocess.run(
        [
            sys.executable,
            "-c",
            _VICTIM,
            settings.resolved_database_url,
            str(tmp_path / "wal"),
            "300",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert victim.returncode == -signal.SIGKILL, victim.stderr
    acknowledged = victim.stdout.split()
    assert len(acknowledged) == 300
    rescuer = InferenceLogger(log, tmp_path / "wal", worker=f"rescuer-{os.getpid()}")
    rescuer.drain()
    rescuer.close()
    assert counts_by_request(db) == dict.fromkeys(acknowledged, 1)
    assert time.monotonic() - started < 60


def test_a_window_can_be_bounded_to_the_newest_requests(log: SqlInferenceLogRepository) -> None:
    for first in (10, 20, 30):
        write_records(
            log,
            [
                {"request_id": f"r{ts}", "ts": float(ts), "deployment": "fraud", "model": "m",
                 "version": 1, "status": 200, "latency_ms": 1.0, "rows": 1,
                 "inputs": {"x": np.array([float(ts)])}}
                for ts in range(first, first + 10)
            ],
        )  # fmt: skip
    window = read_window(log, "fraud", 0.0, 100.0, newest=15)
    assert window.request_ids.tolist() == [f"r{ts}" for ts in range(25, 40)]
    assert window.inputs["x"].tolist() == [float(ts) for ts in range(25, 40)]
    assert window.start == 25.0  # so that rates over the window stay true
    assert read_window(log, "fraud", 0.0, 100.0, newest=1000).requests == 30
