"""What a log-store outage costs: disk per request, how long the cap lasts, the catch-up.

    .venv/bin/python benchmarks/monitoring/bench_log_outage.py [--backlog-mib 32 128]

While the metadata database cannot take writes, each serving worker's answered
requests wait in its write-ahead log on disk, capped by ``monitoring.wal_max_bytes``
(then the worker answers 503). This measures, for requests of 1 row x 30 float32
features with 2 outputs committed in micro-batches of 8 (what serving writes):

* the write-ahead log's bytes per request, and from it how many requests, and how
  many minutes of an outage at 1,000 and 10,000 requests a second per worker, the
  default cap holds (arithmetic on the measured bytes);
* the catch-up once the store is back: a backlog of ``--backlog-mib`` MiB built with
  the store down (``LogIngester`` passes failing), then drained into a fresh SQLite
  database (the embedded default): seconds, records a second, and the draining
  process's peak RSS growth (sampled every 10 ms), for each backlog size; RSS that
  does not grow with the backlog is the memory bound.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modelyard.config import MonitoringSettings
from modelyard.errors import StoreError
from modelyard.monitoring import InferenceLogger, SqlInferenceLogRepository
from modelyard.monitoring.inference_log.ingest import LogIngester
from modelyard.monitoring.inference_log.repository import StoredBatch
from modelyard.store.database import Database

PER_BATCH = 8
FEATURES = 30


class Down(SqlInferenceLogRepository):
    """The real SQLite adapter, failing every write while ``down``."""

    down = True

    def add_batches(self, batches: Sequence[StoredBatch]) -> None:
        if self.down:
            raise StoreError("the metadata database failed: database is locked")
        super().add_batches(batches)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def commit_batches(logger: InferenceLogger, batches: int, start: int) -> int:
    rng = np.random.default_rng(start)
    for b in range(batches):
        inputs = rng.standard_normal((PER_BATCH, FEATURES)).astype(np.float32)
        ids = [f"r{start + b * PER_BATCH + i}" for i in range(PER_BATCH)]
        logger.record_batch(
            model="fraud", version=1, request_ids=ids, ts=[time.time()] * PER_BATCH,
            deployments=["fraud"] * PER_BATCH, arms=["primary"] * PER_BATCH,
            spans=[(i, i + 1) for i in range(PER_BATCH)], latency_ms=[1.0] * PER_BATCH,
            inputs=inputs, input_names=[f"f{i}" for i in range(FEATURES)],
            outputs={"label": inputs[:, 0] > 0, "score": inputs[:, 1]},
        )  # fmt: skip
        logger.commit()
    return batches * PER_BATCH


def bytes_per_request(root: Path) -> float:
    logger = InferenceLogger(Down(Database(f"sqlite:///{root}/a.db")), root, worker="probe",
                             ingest=False, max_wal_bytes=None)  # fmt: skip
    requests = commit_batches(logger, 2000, 0)
    size = logger.stats().backlog_bytes
    logger.close()
    return size / requests


def catch_up(root: Path, backlog_bytes: int) -> tuple[int, float, int]:
    """(records, seconds to drain, peak RSS growth in bytes) for one backlog."""
    store = Down(Database(f"sqlite:///{root}/store.db"))
    logger = InferenceLogger(store, root / "wal", worker="w", ingest=False,
                             max_wal_bytes=None)  # fmt: skip
    ingester = LogIngester(store, root / "wal", follow=lambda: ["w"])
    requests = 0
    while logger.stats().backlog_bytes < backlog_bytes:
        requests += commit_batches(logger, 500, requests)
        ingester.step()  # a failing pass, as during the outage
    store.down = False
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            samples.append(rss_bytes())

    before = rss_bytes()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    stored = ingester.drain()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    assert stored == requests, (stored, requests)
    logger.close()
    return requests, seconds, max(samples, default=before) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog-mib", type=int, nargs="+", default=[32, 128])
    args = parser.parse_args()
    cap = MonitoringSettings().wal_max_bytes
    with tempfile.TemporaryDirectory() as tmp:
        per_request = bytes_per_request(Path(tmp))
    held = cap / per_request
    print(f"write-ahead log: {per_request:.0f} bytes a request (1 row x {FEATURES} float32, "
          f"micro-batches of {PER_BATCH})")  # fmt: skip
    print(f"default cap {cap / 2**20:.0f} MiB per worker holds {held:,.0f} requests: "
          f"{held / 1000 / 60:.1f} min at 1,000 req/s, {held / 10000 / 60:.1f} min at "
          f"10,000 req/s per worker")  # fmt: skip
    for mib in args.backlog_mib:
        with tempfile.TemporaryDirectory() as tmp:
            records, seconds, growth = catch_up(Path(tmp), mib * 2**20)
        print(f"catch-up of a {mib} MiB backlog ({records:,} requests) into SQLite: "
              f"{seconds:.1f} s, {records / seconds:,.0f} records/s, peak RSS growth "
              f"{growth / 2**20:.1f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
