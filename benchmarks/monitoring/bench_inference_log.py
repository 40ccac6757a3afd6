"""The inference log's two costs: the hot path per request, and the store writer's rate (issue 4).

    .venv/bin/python benchmarks/monitoring/bench_inference_log.py [--repeat 5] [--records 50000]

Hot path: what a serving worker pays per micro-batch of 64 requests, i.e. 64
``record()`` calls (one row each, 30 float32 features, 2 outputs) and one
``commit()`` (one ``os.write`` into the write-ahead log), in microseconds per
request; the median of ``--repeat`` runs of 200 batches, for three ways the
serving layer may pass the inputs (``LAYOUTS``). The same with
``fsync_interval_s=0`` (fsync on every commit: durable against power loss
too) shows what that option costs on this disk.

Writer: ``--records`` records are committed to the write-ahead log first, then
``drain()`` moves them into a fresh SQLite database (WAL mode, the embedded
default) in batches of 1,000, as the background thread does; records per
second of wall time, median of ``--repeat`` runs. With
``MODELYARD_BENCH_POSTGRES_URL`` set, the same on PostgreSQL.
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

from modelyard.monitoring import InferenceLogger
from modelyard.store.database import Database

BATCH = 64
BATCHES = 200
FEATURES = [f"f{i}" for i in range(30)]
LAYOUTS = {
    "batch": "the batch's merged input (dict of 30 columns) and outputs, with row spans",
    "request-dict": "each request's own dict of 30 one-row columns, batch outputs with spans",
    "request-matrix": "each request's own 1 x 30 matrix, batch outputs with spans",
}


class Batch:
    """One micro-batch of 64 one-row requests, as the serving layer holds it."""

    def __init__(self, rng: np.random.Generator) -> None:
        matrix = rng.normal(size=(BATCH, len(FEATURES))).astype(np.float32)
        self.columns = {name: np.ascontiguousarray(matrix[:, i]) for i, name in enumerate(FEATURES)}
        self.rows = [matrix[i : i + 1] for i in range(BATCH)]
        self.dicts = [{n: c[i : i + 1] for n, c in self.columns.items()} for i in range(BATCH)]
        self.outputs = {
            "label": (matrix[:, 0] > 0).astype(np.int64),
            "score": matrix[:, 1].astype(np.float64),
        }

    def record(self, logger: InferenceLogger, layout: str, number: int, ts: float) -> None:
        per_request: list[Any] = {"request-dict": self.dicts, "request-matrix": self.rows}.get(
            layout, [self.columns] * BATCH
        )
        names = FEATURES if layout == "request-matrix" else None
        for i in range(BATCH):
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


def hot_path(root: Path, db: Database, layout: str, fsync: bool) -> tuple[float, float]:
    """Microseconds per request for ``record()`` x 64 + ``commit()``: wall time, CPU time."""
    logger = InferenceLogger(
        db, root, worker=layout, max_wal_bytes=None, fsync_interval_s=0.0 if fsync else None
    )
    batch = Batch(np.random.default_rng(0))
    ts = time.time()
    started, cpu = time.perf_counter(), time.process_time()
    for number in range(BATCHES):
        batch.record(logger, layout, number, ts)
        logger.commit()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    logger._wal.close()  # not drained: the files go with the temporary directory
    return elapsed / (BATCHES * BATCH) * 1e6, cpu / (BATCHES * BATCH) * 1e6


def ingest_rate(root: Path, url: str, records: int) -> tuple[float, float]:
    """Records per second from the write-ahead log into the store: per wall, per CPU second."""
    db = Database(url)
    logger = InferenceLogger(db, root, worker="ingest", max_wal_bytes=None)
    batch = Batch(np.random.default_rng(1))
    for number in range(records // BATCH):
        batch.record(logger, "batch", number, 1000.0 + number)
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
    figures: dict[str, list[tuple[float, float]]] = {}
    for repetition in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            db = Database(f"sqlite:///{home / 'hot.db'}")
            for layout in LAYOUTS:
                figures.setdefault(layout, []).append(hot_path(home / "wal", db, layout, False))
            figures.setdefault("fsync", []).append(hot_path(home / "wal", db, "batch", True))
            db.dispose()
            url = f"sqlite:///{home / 'ingest.db'}"
            figures.setdefault("sqlite", []).append(ingest_rate(home / "wal", url, args.records))
            if postgres:
                schema_url = _fresh_schema(postgres, repetition)
                rate = ingest_rate(home / "wal", schema_url, args.records)
                figures.setdefault("postgres", []).append(rate)
    median = {
        name: (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
        for name, values in figures.items()
    }
    print(f"record() x {BATCH} + commit(), us per request (wall / CPU):")
    for layout, meaning in LAYOUTS.items():
        print(f"  {median[layout][0]:7.2f} / {median[layout][1]:6.2f}  {layout}: {meaning}")
    wall, cpu = median["fsync"]
    print(f"  {wall:7.2f} / {cpu:6.2f}  batch, with fsync on every commit (fsync_interval_s=0)")
    print("writer ingest, records/s (per wall second / per CPU second):")
    for backend in ("sqlite", "postgres"):
        if backend in median:
            wall, cpu = median[backend]
            print(f"  {backend}: {wall:,.0f} / {cpu:,.0f}")
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
