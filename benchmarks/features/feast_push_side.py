"""Feast's side of the streaming benchmark: run by ``bench_streaming.py`` with the throwaway
venv's python (``benchmarks/.venvs/feast/bin/python``).

The same generated events (seed 0) as the modelyard side, as pandas frames of 1,000
(built before the timing), pushed with ``FeatureStore.push(..., to=PushMode.ONLINE)``
through a ``PushSource`` to a feature view of the same three fields on Feast's SQLite
online store. Prints one JSON object on stdout: events, wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

T0 = 1_700_000_000.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--cards", type=int, required=True)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    import numpy as np
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.data_source import PushMode
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64, String

    rng = np.random.default_rng(0)
    n = args.events
    card = rng.integers(0, args.cards, n)
    amount = np.round(rng.lognormal(3, 1, n), 2)
    merchant = rng.integers(0, 5_000, n)
    channel = rng.integers(0, 3, n)
    frame = pd.DataFrame(
        {
            "card_id": [f"card{c:07d}" for c in card],
            "event_timestamp": pd.to_datetime(T0 + np.arange(n) / 10, unit="s", utc=True),
            "amount": amount,
            "merchant": [f"m{m}" for m in merchant],
            "channel": channel,
        }
    )
    batches = [frame.iloc[i : i + 1_000].reset_index(drop=True) for i in range(0, n, 1_000)]

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    sample = work / "sample.parquet"
    frame.iloc[:10].to_parquet(sample)
    config = RepoConfig(
        project="bench_push",
        registry=str(work / "registry.db"),
        provider="local",
        online_store={"type": "sqlite", "path": str(work / "online.db")},
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=str(work),
    )
    store = FeatureStore(config=config)
    card_entity = Entity(name="card", join_keys=["card_id"], value_type=ValueType.STRING)
    source = PushSource(
        name="transactions_push",
        batch_source=FileSource(path=str(sample), timestamp_field="event_timestamp"),
    )
    view = FeatureView(
        name="card_activity",
        entities=[card_entity],
        ttl=timedelta(days=1),
        schema=[
            Field(name="amount", dtype=Float64),
            Field(name="merchant", dtype=String),
            Field(name="channel", dtype=Int64),
        ],
        source=source,
        online=True,
    )
    store.apply([card_entity, source, view])
    store.push("transactions_push", batches[0].iloc[:10], to=PushMode.ONLINE)  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        store.push("transactions_push", batch, to=PushMode.ONLINE)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    store.teardown()
    real_stdout.write(
        json.dumps(
            {"events": n, "wall_s": wall, "cpu_s": cpu, "eps_wall": n / wall, "eps_cpu": n / cpu}
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
