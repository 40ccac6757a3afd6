"""The inference log's two costs: the hot path per request, and the store writer's rate (issue 4).

    .venv/bin/python benchmarks/monitoring/bench_inference_log.py [--repeat 5] [--records 50000]

Hot path: what a serving worker pays per micro-batch (one row per request, 30
float32 features, 2 outputs): one ``record_batch()`` call, as serving makes it,
or one ``record()`` call per request for three ways a caller may pass the inputs
(``LAYOUTS``), then one ``commit()`` (one ``os.write`` into the write-ahead
log); microseconds per request, the median of ``--repeat`` runs of 200 batches,
for micro-batches of 8 requests (what 32 connections on 2 workers give) and 64.
The same with ``fsync_interval_s=0`` (fsync on every commit: durable against
power loss too) shows what that option costs on this disk. In a loaded serving
worker the same calls cost about twice as much (caches are cold): measure the
whole server with benchmarks/serving.

Writer: ``--records`` records are committed to the write-ahead log first (in
micro-batches of 8 and of 64), then ``drain()`` moves them into a fresh SQLite
database (WAL mode, the embedded default), one row per micro-batch, as the log
ingester does; records per second of wall time and of CPU time, median of
``--repeat`` runs. With ``MODELYARD_BENCH_POSTGRES_URL`` set, the same on
PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.monitoring import InferenceLogger, SqlInferenceLogRepository
from modelyard.store.database import Database

BATCH_SIZES = (8, 64)
BATCHES = 200
FEATURES = [f"f{i}" for i in range(30)]
LAYOUTS = {
    "record_batch": "serving's path: one record_batch() with the batch's matrix and outputs",
    "batch": "the batch's merged input (dict of 30 columns) and outputs, with row spans",
    "request-dict": "each request's own dict of 30 one-row columns, batch outputs with spans",
    "request-matrix": "each request's own 1 x 30 matrix, batch outputs with spans",
}


class Batch:
    """One micro-batch of ``size`` one-row requests, as the serving layer holds it."""

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        self.size = size
        self.matrix = rng.normal(size=(size, len(FEATURES))).astype(np.float32)
        matrix = self.matrix
        self.columns = {name: np.ascontiguousarray(matrix[:, i]) for i, name in enumerate(FEATURES)}
        self.rows = [matrix[i : i + 1] for i in range(size)]
        self.dicts = [{n: c[i : i + 1] for n, c in self.columns.items()} for i in range(size)]
        self.outputs = {
            "label": (matrix[:, 0] > 0).astype(np.int64),
            "probabilities": np.abs(matrix[:, 1:3]),
        }

    def record(self, logger: InferenceLogger, layout: str, number: int, ts: float) -> None:
        size = self.size
        if layout == "record_batch":
            logger.record_batch(
                model="fraud",
                version=3,
                request_ids=[f"req-{number}-{i}" for i in range(size)],
                ts=[ts] * size,
                deployments=["fraud"] * size,
                arms=["primary"] * size,
                spans=[(i, i + 1) for i in range(size)],
                latency_ms=[0.8] * size,
                inputs=self.matrix,
                input_names=FEATURES,
                outputs=self.outputs,
            )
            return
        per_request: list[Any] = {"request-dict": self.dicts, "request-matrix": self.rows}.get(
            layout, [self.columns] * size
        )
        names = FEATURES if layout == "request-matrix" else None
        for i in range(size):
            logger.record(
                request_id=f"req-{number}-{i}",
                deployment="fraud",
                model="fraud",
                version=3,
                ts=ts,
                status=200,
                latency_ms=0.8,
                rows=1,
                inputs=per_request[i],
                input_names=names,
                input_rows=(i, i + 1) if layout == "batch" else None,
                outputs=self.outputs,
                output_rows=(i, i + 1),
            )


def hot_path(root: Path, db: Database, layout: str, size: int, fsync: bool) -> tuple[float, float]:
    """Microseconds per request to record one micro-batch and ``commit()``: wall, CPU."""
    logger = InferenceLogger(
        SqlInferenceLogRepository(db),
        root,
        worker=f"{layout}-{size}-{fsync}",
        max_wal_bytes=None,
        fsync_interval_s=0.0 if fsync else None,
        ingest=False,
    )
    batch = Batch(np.random.default_rng(0), size)
    ts = time.time()
    started, cpu = time.perf_counter(), time.process_time()
    for number in range(BATCHES):
        batch.record(logger, layout, number, ts)
        logger.commit()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    logger.close()  # not stored: the files go with the temporary directory
    return elapsed / (BATCHES * size) * 1e6, cpu / (BATCHES * size) * 1e6


def ingest_rate(root: Path, url: str, records: int, size: int) -> tuple[float, float]:
    """Records per second from the write-ahead log into the store: per wall, per CPU second."""
    db = Database(url)
    log = SqlInferenceLogRepository(db)
    logger = InferenceLogger(log, root, worker=f"ingest-{size}", max_wal_bytes=None)
    batch = Batch(np.random.default_rng(1), size)
    for number in range(records // size):
        batch.record(logger, "record_batch", number, 1000.0 + number)
        logger.commit()
    started, cpu = time.perf_counter(), time.process_time()
    moved = logger.drain()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    logger.close()
    db.dispose()
    return moved / elapsed, moved / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--records", type=int, default=50_000)
    args = parser.parse_args()
    postgres = os.environ.get("MODELYARD_BENCH_POSTGRES_URL")
    figures: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for repetition in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            db = Database(f"sqlite:///{home / 'hot.db'}")
            for size in BATCH_SIZES:
                for layout in LAYOUTS:
                    timing = hot_path(home / "wal", db, layout, size, False)
                    figures.setdefault((layout, size), []).append(timing)
                timing = hot_path(home / "wal", db, "record_batch", size, True)
                figures.setdefault(("fsync", size), []).append(timing)
            db.dispose()
            for size in BATCH_SIZES:
                url = f"sqlite:///{home / f'ingest-{size}.db'}"
                rate = ingest_rate(home / "wal", url, args.records, size)
                figures.setdefault(("sqlite", size), []).append(rate)
                if postgres:
                    schema_url = _fresh_schema(postgres, repetition * 100 + size)
                    rate = ingest_rate(home / "wal", schema_url, args.records, size)
                    figures.setdefault(("postgres", size), []).append(rate)
    median = {
        key: (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
        for key, values in figures.items()
    }
    sizes = " | ".join(f"{size} a batch" for size in BATCH_SIZES)
    print(f"recording + commit(), us per request, wall / CPU ({sizes}):")
    for layout, meaning in LAYOUTS.items():
        cells = " | ".join("{:6.2f} / {:5.2f}".format(*median[(layout, s)]) for s in BATCH_SIZES)
        print(f"  {cells}  {layout}: {meaning}")
    cells = " | ".join("{:6.2f} / {:5.2f}".format(*median[("fsync", s)]) for s in BATCH_SIZES)
    print(f"  {cells}  record_batch, with fsync on every commit (fsync_interval_s=0)")
    print(f"store writer, records/s per wall second / per CPU second ({sizes}):")
    for backend in ("sqlite", "postgres"):
        if (backend, BATCH_SIZES[0]) in median:
            cells = " | ".join(
                "{:,.0f} / {:,.0f}".format(*median[(backend, s)]) for s in BATCH_SIZES
            )
            print(f"  {backend}: {cells}")
    print(f"(median of {args.repeat}; {args.records:,} records per ingest run;", end=" ")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


def _fresh_schema(url: str, repetition: int) -> str:
    from sqlalchemy import create_engine, text

    schema = f"bench_log_{os.getpid()}_{repetition}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


if __name__ == "__main__":
    main()
