"""One contender of the offline benchmark, in a process of its own (``bench_offline.py``).

    python offline_side.py CONTENDER DATA_DIR OUT_FILE [--memory-limit 1GB] [--threads 2]

CONTENDER is ``modelyard`` (``modelyard-unguarded``: leakage guard off), ``floor`` or
``floor-chained`` (hand-written DuckDB ASOF
JOINs) or
``feast-file`` / ``feast-duckdb`` (Feast's local offline stores; run with the
throwaway venv's python, which has Feast and no modelyard). Each reads the labels
(pandas, as Feast takes them) and the same Parquet files, times the one call that
builds the training set as a pandas frame, writes the result to OUT_FILE
(Parquet, outside the timing) and prints one JSON line: wall and CPU seconds of the
call, the process's peak RSS and its RSS before the call, the rows returned.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

VIEWS = 3
TTL = timedelta(days=1)


def features(view: int) -> list[str]:
    return [f"f{view}_a", f"f{view}_b", f"f{view}_c"]


def rss_mib() -> float:
    """The process's resident memory now (Linux), MiB."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


Build = Any  # a callable with no arguments that returns the training set


def run_modelyard(
    data: Path, labels: pd.DataFrame, args: argparse.Namespace, guard: bool = True
) -> Build:
    from modelyard.features import Entity, Feature, FeatureView, FileSource
    from modelyard.features.offline import OfflineOptions, get_training_set

    card = Entity("card", "card_id", "int64")
    views = [
        FeatureView(
            f"v{v}",
            card,
            FileSource(str(data / f"v{v}.parquet"), "event_timestamp", "created"),
            features=[
                Feature(f"f{v}_a", "float64"),
                Feature(f"f{v}_b", "int64"),
                Feature(f"f{v}_c", "float64"),
            ],
            ttl=TTL.total_seconds(),
        )
        for v in range(VIEWS)
    ]
    refs = [f"v{v}:{f}" for v in range(VIEWS) for f in features(v)]
    options = OfflineOptions(
        memory_limit=args.memory_limit,
        threads=args.threads,
        temp_dir=Path(tempfile.mkdtemp(prefix="bench-offline-")),
        leakage_guard=guard,
    )
    return lambda: get_training_set(labels, refs, views, options=options)


def run_floor(data: Path, labels: pd.DataFrame, args: argparse.Namespace) -> Build:
    """What one writes by hand, knowing DuckDB: per view an ``ASOF LEFT JOIN`` of the label
    rows' (row, key, time) only, the TTL as a ``CASE``; the views' results joined on
    the row, in the labels' order. No tie-breaking by created time, no leakage guard."""

    parts, selected, joins = [], [], []
    for v in range(VIEWS):
        fresh = f"r.event_timestamp > l.event_timestamp - INTERVAL {TTL.days} DAY"
        values = ", ".join(f"CASE WHEN {fresh} THEN r.{f} END AS {f}" for f in features(v))
        parts.append(
            f"j{v} AS (SELECT l.row, {values} FROM keys l "
            f"ASOF LEFT JOIN read_parquet('{data / f'v{v}.parquet'}') r "
            "ON l.card_id = r.card_id AND l.event_timestamp >= r.event_timestamp)"
        )
        selected += [f"j{v}.{f}" for f in features(v)]
        joins.append(f"JOIN j{v} ON j{v}.row = l.row")
    sql = (
        "WITH keys AS (SELECT row_number() OVER () AS row, card_id, event_timestamp FROM labels), "
        f"{', '.join(parts)} "
        f"SELECT l.* EXCLUDE (row), {', '.join(selected)} "
        f"FROM (SELECT *, row_number() OVER () AS row FROM labels) l {' '.join(joins)} "
        "ORDER BY l.row"
    )
    return _duckdb_build(sql, labels, args)


def run_floor_chained(data: Path, labels: pd.DataFrame, args: argparse.Namespace) -> Build:
    """The first thing one writes: the three ASOF joins chained in one query."""
    selected, joins = [], []
    for v in range(VIEWS):
        r = f"r{v}"
        joins.append(
            f"ASOF LEFT JOIN read_parquet('{data / f'v{v}.parquet'}') {r} "
            f"ON l.card_id = {r}.card_id AND l.event_timestamp >= {r}.event_timestamp"
        )
        fresh = f"{r}.event_timestamp > l.event_timestamp - INTERVAL {TTL.days} DAY"
        selected += [f"CASE WHEN {fresh} THEN {r}.{f} END AS {f}" for f in features(v)]
    sql = (
        f"SELECT l.* EXCLUDE (row), {', '.join(selected)} "
        f"FROM (SELECT *, row_number() OVER () AS row FROM labels) l {' '.join(joins)} "
        "ORDER BY l.row"
    )
    return _duckdb_build(sql, labels, args)


def _duckdb_build(sql: str, labels: pd.DataFrame, args: argparse.Namespace) -> Build:
    import duckdb

    def build() -> pd.DataFrame:
        con = duckdb.connect()
        con.execute(f"SET memory_limit = '{args.memory_limit}'")
        con.execute(f"SET threads = {args.threads}")
        con.execute(f"SET temp_directory = '{tempfile.mkdtemp(prefix='bench-floor-')}'")
        con.register("labels", labels)
        result: pd.DataFrame = con.sql(sql).df()
        return result

    return build


def run_feast(data: Path, labels: pd.DataFrame, args: argparse.Namespace, store_type: str) -> Build:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    repo = Path(tempfile.mkdtemp(prefix="bench-feast-"))
    (repo / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        f"offline_store:\n  type: {store_type}\n"
        f"online_store:\n  type: sqlite\n  path: {repo / 'online.db'}\n"
        "entity_key_serialization_version: 3\n"
    )
    store = FeatureStore(repo_path=str(repo))
    card = Entity(name="card", join_keys=["card_id"], value_type=ValueType.INT64)
    views = [
        FeatureView(
            name=f"v{v}",
            entities=[card],
            ttl=TTL,
            schema=[
                Field(name=f"f{v}_a", dtype=Float64),
                Field(name=f"f{v}_b", dtype=Int64),
                Field(name=f"f{v}_c", dtype=Float64),
            ],
            source=FileSource(
                path=str(data / f"v{v}.parquet"),
                timestamp_field="event_timestamp",
                created_timestamp_column="created",
            ),
        )
        for v in range(VIEWS)
    ]
    store.apply([card, *views])
    refs = [f"v{v}:{f}" for v in range(VIEWS) for f in features(v)]
    return lambda: store.get_historical_features(entity_df=labels, features=refs).to_df()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "contender",
        choices=[
            "modelyard", "modelyard-unguarded", "floor", "floor-chained", "feast-file",
            "feast-duckdb",
        ],
    )  # fmt: skip
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--memory-limit", default="1GB")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    labels = pd.read_parquet(args.data / "labels.parquet")
    runners: dict[str, Any] = {
        "modelyard": run_modelyard,
        "modelyard-unguarded": lambda data, frame, a: run_modelyard(data, frame, a, guard=False),
        "floor": run_floor,
        "floor-chained": run_floor_chained,
        "feast-file": lambda data, frame, a: run_feast(data, frame, a, "file"),
        "feast-duckdb": lambda data, frame, a: run_feast(data, frame, a, "duckdb"),
    }
    build = runners[args.contender](args.data, labels, args)
    before = rss_mib()
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    result = build()
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    peak = peak_rss_mib()
    result.to_parquet(args.out)
    print(
        json.dumps(
            {
                "contender": args.contender,
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_rss_mib": peak,
                "rss_before_mib": before,
                "rows": len(result),
                "columns": list(map(str, result.columns)),
            }
        )
    )


if __name__ == "__main__":
    main()
