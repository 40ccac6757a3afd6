"""Feast's side of the online-read benchmark: run by ``bench_online.py`` with the throwaway
venv's python (``benchmarks/.venvs/feast/bin/python``).

It reads the same generated rows (a Parquet file the driver wrote), registers one
entity and one feature view of 20 features in a fresh repository under ``--work``,
writes the rows to Feast's SQLite or Redis online store (``write_to_online_store``),
then times ``FeatureStore.get_online_features(...).to_dict()`` for the same entity
keys the modelyard side reads, and prints one JSON object on stdout: per store, the
latencies in milliseconds of each call. Feast's own output goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument(
        "--keys", type=Path, required=True, help="JSON: {single: [...], batches: [[...]]}"
    )
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--stores", default="sqlite,redis")
    parser.add_argument("--redis", default="127.0.0.1:6379,db=14")
    args = parser.parse_args()
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # anything Feast prints stays off the answer
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64

    frame = pd.read_parquet(args.data)
    keys = json.loads(args.keys.read_text())
    features = [c for c in frame.columns if c.startswith("f")]
    answer: dict[str, Any] = {"feast": metadata.version("feast")}
    for kind in args.stores.split(","):
        work = args.work / kind
        work.mkdir(parents=True, exist_ok=True)
        online: dict[str, Any] = (
            {"type": "sqlite", "path": str(work / "online.db")}
            if kind == "sqlite"
            else {"type": "redis", "connection_string": args.redis}
        )
        config = RepoConfig(
            project=f"bench_{os.getpid()}",
            registry=str(work / "registry.db"),
            provider="local",
            online_store=online,
            offline_store={"type": "file"},
            entity_key_serialization_version=3,
            repo_path=str(work),
        )
        store = FeatureStore(config=config)
        card = Entity(name="card", join_keys=["card_id"], value_type=ValueType.STRING)
        schema = [
            Field(name=name, dtype=Int64 if frame[name].dtype.kind == "i" else Float64)
            for name in features
        ]
        view = FeatureView(
            name="card_profile",
            entities=[card],
            ttl=timedelta(days=1),
            schema=schema,
            source=FileSource(path=str(args.data.resolve()), timestamp_field="event_timestamp"),
            online=True,
        )
        store.apply([card, view])
        started = time.perf_counter()
        store.write_to_online_store("card_profile", frame)
        write_s = time.perf_counter() - started
        refs = [f"card_profile:{name}" for name in features]

        def read(batch: list[str], store: Any = store, refs: list[str] = refs) -> dict[str, Any]:
            rows = [{"card_id": key} for key in batch]
            return store.get_online_features(features=refs, entity_rows=rows).to_dict()

        check = read([keys["single"][0]])
        single = _timed(read, [[k] for k in keys["single"]])
        batches = _timed(read, keys["batches"])
        answer[kind] = {
            "write_s": write_s,
            "single_ms": single,
            "batch_ms": batches,
            "check": {name: check[name][0] for name in features[:3]},
        }
        store.teardown()
    real_stdout.write(json.dumps(answer) + "\n")


def _timed(read: Any, batches: list[list[str]]) -> list[float]:
    for batch in batches[:50]:  # warm-up: connections, caches, the registry
        read(batch)
    out = []
    for batch in batches:
        started = time.perf_counter_ns()
        read(batch)
        out.append((time.perf_counter_ns() - started) / 1e6)
    return out


if __name__ == "__main__":
    main()
