"""A 10-minute outage of the log store under steady traffic, on simulated time.

One worker's ``InferenceLogger`` writes its write-ahead log and a ``LogIngester`` (the
supervisor's part) stores it, passed as its thread would be (``step`` says when the
next pass is due), into the in-memory store made to fail for 10 simulated minutes.
Every acknowledged request (its ``commit`` returned) must be in the store once the
store is back, the log on disk must stay under its cap, memory must not grow with the
backlog, and the store must be retried every few seconds, never given up on. The real
60 s outage on a real server is ``tests/integration/serving/test_log_outage.py``.
"""

from __future__ import annotations

import tracemalloc
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import OverloadedError, StoreError
from modelyard.monitoring import InferenceLogger, InMemoryInferenceLogRepository, read_window
from modelyard.monitoring.inference_log.ingest import LogIngester, retry_delay
from modelyard.monitoring.inference_log.repository import StoredBatch

STEP_S = 1.0  # the worker commits one micro-batch every STEP_S simulated seconds
PER_STEP = 20  # requests in it
OUTAGE = (60.0, 660.0)  # the store fails from minute 1 to minute 11
END_S = 720.0
BATCH_BYTES = 64 * 1024  # what the ingester reads from disk per pass
SEGMENT_BYTES = 64 * 1024


class FlakyStore(InMemoryInferenceLogRepository):
    """The in-memory log that fails every write while ``down``, as a database that is
    locked or unreachable would; it counts the attempts and the largest write taken."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.attempts_while_down: list[float] = []
        self.now = 0.0
        self.first_write_after_outage: float | None = None
        self.largest_write = 0

    def add_batches(self, batches: Sequence[StoredBatch]) -> None:
        if self.down:
            self.attempts_while_down.append(self.now)
            raise StoreError("the metadata database failed: database is locked")
        if self.now >= OUTAGE[1] and self.first_write_after_outage is None:
            self.first_write_after_outage = self.now
        self.largest_write = max(self.largest_write, sum(len(b.payload) for b in batches))
        super().add_batches(batches)


ACKNOWLEDGED, REFUSED, UNLOGGED = 0, 1, 2  # a step's fate: logged, 503, dropped by policy
STEPS = int(END_S / STEP_S)


@dataclass
class Run:
    """What a simulated run saw (``fates`` is allocated up front: the run's own
    bookkeeping must not count as the logger's memory)."""

    store: FlakyStore
    logger: InferenceLogger
    fates: np.ndarray = field(default_factory=lambda: np.full(STEPS, -1, dtype=np.int8))
    wal_peak_bytes: int = 0
    backlog_at_recovery: int = 0
    memory_growth_bytes: int = 0  # peak traced during the outage over its start

    def ids(self, fate: int) -> list[str]:
        steps = np.flatnonzero(self.fates == fate)
        return [f"req-{step * PER_STEP + i}" for step in steps for i in range(PER_STEP)]

    @property
    def acknowledged(self) -> list[str]:
        return self.ids(ACKNOWLEDGED)

    @property
    def refused(self) -> list[str]:
        return self.ids(REFUSED)

    @property
    def unlogged(self) -> list[str]:
        return self.ids(UNLOGGED)


def wal_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.log"))


def simulate(root: Path, *, max_wal_bytes: int, when_full: str = "reject") -> Run:
    store = FlakyStore()
    logger = InferenceLogger(
        store, root, worker="w", ingest=False, max_wal_bytes=max_wal_bytes,
        segment_bytes=SEGMENT_BYTES, when_full=when_full,
    )  # fmt: skip
    ingester = LogIngester(
        store, root, follow=lambda: ["w"], batch_bytes=BATCH_BYTES, interval_s=1.0
    )
    run = Run(store, logger)
    rows = np.linspace(0.0, 1.0, 8 * PER_STEP).reshape(PER_STEP, 8)
    next_pass = 0.0
    names = [f"f{i}" for i in range(8)]
    tracemalloc.start()
    try:
        for step in range(STEPS):
            now = step * STEP_S
            store.now = now
            if not store.down and OUTAGE[0] <= now < OUTAGE[1]:
                store.down = True
                tracemalloc.reset_peak()
                at_start = tracemalloc.get_traced_memory()[0]
            elif store.down and now >= OUTAGE[1]:
                store.down = False
                run.memory_growth_bytes = tracemalloc.get_traced_memory()[1] - at_start
                run.backlog_at_recovery = logger.stats().backlog_bytes
            ids = [f"req-{step * PER_STEP + i}" for i in range(PER_STEP)]
            logger.record_batch(
                model="m", version=1, request_ids=ids, ts=[now] * PER_STEP,
                deployments=["fraud"] * PER_STEP, arms=["primary"] * PER_STEP,
                spans=[(i, i + 1) for i in range(PER_STEP)], latency_ms=[2.0] * PER_STEP,
                inputs=rows, input_names=names,
                outputs={"score": rows[:, 0]},
            )  # fmt: skip
            try:
                logged = logger.commit()
            except OverloadedError:
                run.fates[step] = REFUSED  # the server answers these 503 + Retry-After
            else:
                run.fates[step] = ACKNOWLEDGED if logged else UNLOGGED
            run.wal_peak_bytes = max(run.wal_peak_bytes, wal_bytes(root / "w"))
            while next_pass <= now:  # passes back to back while the ingester is behind
                next_pass = now + ingester.step()
        while ingester.step() == 0.0:  # the traffic stopped: store the rest
            pass
    finally:
        tracemalloc.stop()
    return run


def stored_ids(store: FlakyStore) -> Counter[str]:
    return Counter(read_window(store, "fraud", 0.0, END_S + 1).request_ids.tolist())


def test_retries_back_off_to_one_every_five_seconds_and_never_stop() -> None:
    delays = [retry_delay(n) for n in range(12)]
    assert delays[:4] == [0.0, 0.05, 0.1, 0.2]
    assert delays[-1] == 5.0
    assert retry_delay(10**6) == 5.0
    assert delays == sorted(delays)


def test_a_ten_minute_outage_loses_no_acknowledged_record_and_stays_bounded(
    tmp_path: Path,
) -> None:
    cap = 4 * 1024 * 1024  # holds the whole outage
    run = simulate(tmp_path / "wal", max_wal_bytes=cap)
    outage_requests = (OUTAGE[1] - OUTAGE[0]) / STEP_S * PER_STEP
    assert (run.refused, run.unlogged) == ([], [])
    assert len(run.acknowledged) == END_S / STEP_S * PER_STEP
    assert stored_ids(run.store) == Counter(run.acknowledged)  # all of them, each once
    # The backlog of ten minutes waited on disk, under the cap...
    assert run.backlog_at_recovery > 16 * BATCH_BYTES
    assert run.backlog_at_recovery >= outage_requests * 100  # bytes: the rows are in it
    assert run.wal_peak_bytes <= cap
    # ...not in memory: what the outage added is a few reads' worth, not the backlog.
    assert run.memory_growth_bytes < 4 * BATCH_BYTES < run.backlog_at_recovery / 4
    assert run.store.largest_write <= BATCH_BYTES + 8 * 1024  # one read, one transaction
    # Retried about every 5 s, and written to within 5 s of the store's return.
    attempts = run.store.attempts_while_down
    assert (OUTAGE[1] - OUTAGE[0]) / 5.0 <= len(attempts) <= (OUTAGE[1] - OUTAGE[0]) / 5.0 + 10
    assert max(np.diff(attempts)) <= 5.0 + STEP_S
    assert run.store.first_write_after_outage is not None
    assert run.store.first_write_after_outage <= OUTAGE[1] + 5.0 + STEP_S
    stats = run.logger.stats()
    assert stats.backlog_bytes == 0
    assert not (tmp_path / "wal" / "w").exists() or wal_bytes(tmp_path / "wal" / "w") < cap
    run.logger.close()


@pytest.mark.parametrize("when_full", ["reject", "drop"])
def test_an_outage_past_the_cap_refuses_or_drops_by_policy_and_loses_nothing_acknowledged(
    tmp_path: Path, when_full: str
) -> None:
    cap = 512 * 1024  # about a third of the outage
    run = simulate(tmp_path / "wal", max_wal_bytes=cap, when_full=when_full)
    turned_away = run.refused if when_full == "reject" else run.unlogged
    assert len(turned_away) > len(run.acknowledged) / 3
    assert run.refused == [] or run.unlogged == []
    assert stored_ids(run.store) == Counter(run.acknowledged)
    assert not set(turned_away) & set(stored_ids(run.store))
    assert run.wal_peak_bytes <= cap
    assert run.memory_growth_bytes < 4 * BATCH_BYTES
    # Once the store was back the log drained and requests were acknowledged again.
    after = [int(i.split("-")[1]) for i in run.acknowledged]
    assert max(after) == END_S / STEP_S * PER_STEP - 1
    if when_full == "drop":
        assert run.logger.stats().dropped_when_full == {"fraud": len(run.unlogged)}
    run.logger.close()
