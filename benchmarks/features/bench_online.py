"""Online reads: 20 features of 1 entity and of 100 entities in one call, modelyard's
SQLite and Redis online stores against Feast 0.67's, in the same run, same rows.

    .venv/bin/python benchmarks/features/bench_online.py --setup      # once: Feast's venv
    .venv/bin/python benchmarks/features/bench_online.py [--repeat 3] [--quick]

The rows (``--entities`` cards, 10 float and 10 integer features, seed 0) are written
to a Parquet file both sides load. modelyard writes them with ``put_latest`` and reads
them with ``features.online.reads.get_online_features`` (TTL checked, values decoded,
one column per feature); Feast (``benchmarks/.venvs/feast``, run as a subprocess by
``feast_online_side.py``) with ``write_to_online_store`` and
``get_online_features(...).to_dict()``. Both read the same keys in the same order:
``--single`` calls of one random entity, ``--batches`` calls of 100. modelyard's
calls are ``OnlineQuery.read`` (the query planned once, as serving holds it). Latency is the
wall time of the call in the calling process (in-process: no server), p50 and p99
over the calls of a round; with ``--repeat`` the figures are the medians over rounds,
the two sides alternating. Redis is the local server (127.0.0.1:6379), modelyard
under a random key prefix, Feast in database 14; both are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelyard.features.definitions import Entity, Feature, FeatureView, FileSource
from modelyard.features.online.memory import InMemoryOnlineStore
from modelyard.features.online.reads import OnlineQuery, get_online_features
from modelyard.features.online.redis import RedisOnlineStore
from modelyard.features.online.sqlite import SqliteOnlineStore
from modelyard.features.online.store import OnlineStore

ROOT = Path(__file__).resolve().parents[2]
FEAST_VENV = ROOT / "benchmarks" / ".venvs" / "feast"
FEAST_PYTHON = FEAST_VENV / "bin" / "python"
FEAST_SIDE = Path(__file__).with_name("feast_online_side.py")
FEATURES = 20
BATCH = 100


def generate(entities: int, now: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"card_id": [f"card{i:07d}" for i in range(entities)]})
    for j in range(FEATURES):
        if j % 2:
            frame[f"f{j}"] = rng.integers(0, 1_000_000, entities)
        else:
            frame[f"f{j}"] = rng.normal(size=entities)
    frame["event_timestamp"] = pd.Timestamp(now - 60, unit="s", tz="UTC")
    return frame


def view_of(frame: pd.DataFrame) -> FeatureView:
    return FeatureView(
        "card_profile",
        Entity("card", "card_id"),
        FileSource("generated.parquet", event_time="event_timestamp"),
        features=tuple(
            Feature(c, "int64" if frame[c].dtype.kind == "i" else "float64")
            for c in frame.columns
            if c.startswith("f")
        ),
        ttl="1d",
    )


def load(store: OnlineStore, frame: pd.DataFrame, now: float) -> float:
    names = [c for c in frame.columns if c.startswith("f")]
    records = frame[names].to_dict("records")  # plain Python ints and floats
    rows = [(key, now - 60, values) for key, values in zip(frame["card_id"], records, strict=True)]
    started = time.perf_counter()
    for begin in range(0, len(rows), 5_000):
        store.put_latest("card_profile", rows[begin : begin + 5_000])
    return time.perf_counter() - started


def timed(
    store: OnlineStore, view: FeatureView, batches: list[list[str]], now: float
) -> list[float]:
    # serving's way: the query planned once, then read per call
    query = OnlineQuery([view], [f"card_profile:{f.name}" for f in view.features])
    for batch in batches[:50]:
        query.read(store, batch, now)
    out = []
    for batch in batches:
        started = time.perf_counter_ns()
        query.read(store, batch, now)
        out.append((time.perf_counter_ns() - started) / 1e6)
    return out


def timed_raw(store: OnlineStore, batches: list[list[str]]) -> list[float]:
    out = []
    for batch in batches:
        started = time.perf_counter_ns()
        store.get_latest("card_profile", batch)
        out.append((time.perf_counter_ns() - started) / 1e6)
    return out


def modelyard_round(
    frame: pd.DataFrame, keys: dict[str, Any], work: Path, now: float
) -> dict[str, Any]:
    view = view_of(frame)
    singles = [[k] for k in keys["single"]]
    result: dict[str, Any] = {}
    stores: dict[str, OnlineStore] = {
        "memory": InMemoryOnlineStore(),
        "sqlite": SqliteOnlineStore(work / f"online-{uuid.uuid4().hex}.sqlite"),
        "redis": RedisOnlineStore(prefix=f"bench:{uuid.uuid4().hex}:"),
    }
    for kind, store in stores.items():
        try:
            write_s = load(store, frame, now)
            check = get_online_features(
                store, [view], keys["single"][:1], ["card_profile:f0"], now
            ).columns["f0"][0]
            result[kind] = {
                "write_s": write_s,
                "single_ms": timed(store, view, singles, now),
                "batch_ms": timed(store, view, keys["batches"], now),
                "raw_single_ms": timed_raw(store, singles),
                "check": check,
            }
        finally:
            if isinstance(store, RedisOnlineStore):
                store.delete_prefix()
            store.close()
    return result


def feast_round(data: Path, keys_path: Path, work: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [
            str(FEAST_PYTHON),
            str(FEAST_SIDE),
            "--data",
            str(data),
            "--keys",
            str(keys_path),
            "--work",
            str(work / f"feast-{uuid.uuid4().hex}"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"Feast's side failed:\n{completed.stderr[-4000:]}")
    answer: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return answer


def quantiles(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values)
    return float(np.percentile(array, 50)), float(np.percentile(array, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true", help="create Feast's venv if missing")
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--single", type=int, default=5_000, help="calls of 1 entity a round")
    parser.add_argument("--batches", type=int, default=500, help="calls of 100 entities a round")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10k entities, fewer calls, 1 round")
    parser.add_argument("--no-feast", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.entities, args.single, args.batches, args.repeat = 10_000, 1_000, 100, 1
    if args.setup and not FEAST_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FEAST_VENV)], check=True)
        subprocess.run(
            [str(FEAST_PYTHON), "-m", "pip", "install", "feast==0.67.*", "duckdb", "redis"],
            check=True,
        )
    feast = not args.no_feast
    if feast and not FEAST_PYTHON.exists():
        parser.error(f"no Feast venv at {FEAST_VENV}: run once with --setup (or --no-feast)")

    now = time.time()
    frame = generate(args.entities, now)
    rng = np.random.default_rng(1)
    ids = frame["card_id"].to_numpy()
    keys = {
        "single": [str(k) for k in rng.choice(ids, args.single)],
        "batches": [
            [str(k) for k in rng.choice(ids, BATCH, replace=False)] for _ in range(args.batches)
        ],
    }
    rounds: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "generated.parquet"
        frame.to_parquet(data)
        keys_path = work / "keys.json"
        keys_path.write_text(json.dumps(keys))
        expected = float(frame["f0"].iloc[int(np.flatnonzero(ids == keys["single"][0])[0])])
        for round_ in range(args.repeat):
            sides = {"modelyard": modelyard_round(frame, keys, work, now)}
            if feast:
                sides["feast"] = feast_round(data, keys_path, work)
            for side, stores in sides.items():
                for kind, figures in stores.items():
                    if not isinstance(figures, dict):
                        continue
                    got = figures["check"]
                    value = got if side == "modelyard" else got["f0"]
                    assert abs(value - expected) < 1e-12, (side, kind, value, expected)
                    single = quantiles(figures["single_ms"])
                    batch = quantiles(figures["batch_ms"])
                    row = {
                        "single_p50": single[0],
                        "single_p99": single[1],
                        "batch_p50": batch[0],
                        "batch_p99": batch[1],
                        "write_s": figures["write_s"],
                    }
                    if "raw_single_ms" in figures:
                        raw = quantiles(figures["raw_single_ms"])
                        row["raw_p50"], row["raw_p99"] = raw
                    rounds.setdefault(f"{side} {kind}", []).append(row)
            print(f"round {round_ + 1}/{args.repeat} done", file=sys.stderr)

    print(
        f"\nOnline reads of {FEATURES} features, {args.entities:,} entities loaded; "
        f"{args.single:,} calls of 1 entity, {args.batches:,} calls of {BATCH}; "
        f"median of {args.repeat} round(s), milliseconds\n"
    )
    print(
        "| store | 1 entity p50 | 1 entity p99 | 100 entities p50 | 100 entities p99 | load (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    summary: dict[str, dict[str, float]] = {}
    for name, rows in rounds.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        summary[name] = med
        print(
            f"| {name} | {med['single_p50']:.3f} | {med['single_p99']:.3f} | "
            f"{med['batch_p50']:.3f} | {med['batch_p99']:.3f} | {med['write_s']:.2f} |"
        )
    raw = {n: s for n, s in summary.items() if "raw_p50" in s}
    if raw:
        print("\nThe store's own read (get_latest of 1 key, no reads layer):")
        for name, med in raw.items():
            print(f"  {name}: p50 {med['raw_p50']:.3f} ms, p99 {med['raw_p99']:.3f} ms")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
