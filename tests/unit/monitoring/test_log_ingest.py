"""Moving a write-ahead log into a store that refuses a batch or fails (on the in-memory
log; the end-to-end runs on SQLite and PostgreSQL are integration tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard.errors import RejectedWriteError, StoreError
from modelyard.monitoring import InferenceLogger, InMemoryInferenceLogRepository, read_window
from modelyard.monitoring.inference_log.repository import StoredBatch


class Refusing(InMemoryInferenceLogRepository):
    """Refuses, as a transaction, any set of batches that holds deployment ``bad``; fails
    with a store error while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def add_batches(self, batches: Sequence[StoredBatch]) -> None:
        if self.down:
            raise StoreError("the metadata database failed: down")
        if any(batch.summary.deployment == "bad" for batch in batches):
            raise RejectedWriteError("the database refused the write: too long")
        super().add_batches(batches)


def record(logger: InferenceLogger, request_id: str, deployment: str = "fraud") -> None:
    logger.record(
        request_id=request_id, deployment=deployment, model="m", version=1, ts=10.0,
        status=200, latency_ms=1.0, rows=1, inputs={"x": np.array([1.0])},
    )  # fmt: skip


def test_a_refused_batch_is_set_aside_and_the_rest_stored(tmp_path: Path) -> None:
    store = Refusing()
    reports: list[tuple[str, dict[str, Any]]] = []
    logger = InferenceLogger(
        store, tmp_path / "wal", worker="w", on_error=lambda e, f: reports.append((e, f))
    )
    record(logger, "kept-1")
    record(logger, "refused", deployment="bad")
    record(logger, "kept-2")
    logger.commit()
    logger.drain()
    assert read_window(store, "fraud", 0.0, 100.0).request_ids.tolist() == ["kept-1", "kept-2"]
    assert read_window(store, "bad", 0.0, 100.0).requests == 0
    stats = logger.stats()
    assert (stats.rejected_rows, stats.store_errors) == (1, 0)
    assert [event for event, _ in reports] == ["inference_log_batch_rejected"]
    assert "too long" in str(reports[0][1]["error"])
    assert logger.drain() == 0  # set aside: the log moved past it
    logger.close()


def test_while_the_store_is_down_records_wait_on_disk(tmp_path: Path) -> None:
    store = Refusing()
    logger = InferenceLogger(store, tmp_path / "wal", worker="w")
    record(logger, "waits")
    logger.commit()
    store.down = True
    with pytest.raises(StoreError, match="down"):
        logger.drain()
    assert logger.stats().backlog_bytes > 0
    store.down = False
    assert logger.drain() == 1
    assert read_window(store, "fraud", 0.0, 100.0).request_ids.tolist() == ["waits"]
    logger.close()
    assert not (tmp_path / "wal" / "w").exists()
