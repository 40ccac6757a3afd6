"""Streaming: push throughput in events/s on one core, the online store being SQLite, and
the Redis Streams consumer end to end; Feast 0.67's push (``FeatureStore.push`` to its
SQLite online store) in the same run as the peer.

    .venv/bin/python benchmarks/features/bench_streaming.py [--events 200000] [--repeat 3]

One stream of card transactions (amount, merchant, channel) and one view that serves
the latest amount and merchant and five windowed aggregates (count 10 min, sum / mean /
max of amount 1 h, distinct merchants 24 h). Events come in time order, 10 per second
of event time, over ``--cards`` cards, in pushes of ``--batch`` (1,000); each push
appends a Parquet file offline and writes the view's events and latest rows online.
The process is pinned to one core (``sched_setaffinity``). Figures: events/s over
wall time and over this process's CPU time, for events carrying their ids (as a
stream's messages do) and for events whose ids are derived from their content.
``--in-sequence`` draws each push's cards as consecutive keys (writes with locality),
``--dir /dev/shm`` puts the stores on tmpfs, to tell the CPU's share from the disk's.
``--consumer`` adds the Redis Streams consumer: the events ``XADD``-ed to a stream
first, then read, pushed and acknowledged by one ``StreamConsumer``.

Feast has no streaming aggregation; its push writes the latest row of each entity
(``PushMode.ONLINE``) and nothing else, so its figure is a floor for "writes the
online store", not the same work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.features.definitions import Aggregation, Entity, Feature, FeatureView, StreamSource
from modelyard.features.online.sqlite import SqliteOnlineStore
from modelyard.features.push import push

ROOT = Path(__file__).resolve().parents[2]
FEAST_PYTHON = ROOT / "benchmarks" / ".venvs" / "feast" / "bin" / "python"
FEAST_SIDE = Path(__file__).with_name("feast_push_side.py")
T0 = 1_700_000_000.0

TXN = StreamSource(
    "transactions",
    fields=(
        Feature("amount", "float64"),
        Feature("merchant", "string"),
        Feature("channel", "int64"),
    ),
)
CARD_ACTIVITY = FeatureView(
    "card_activity",
    Entity("card", "card_id"),
    TXN,
    features=(Feature("amount", "float64"), Feature("merchant", "string")),
    aggregations=(
        Aggregation("count", "10m"),
        Aggregation("sum", "1h", "amount"),
        Aggregation("mean", "1h", "amount"),
        Aggregation("max", "1h", "amount"),
        Aggregation("distinct", "1d", "merchant"),
    ),
)


def generate(
    events: int, cards: int, with_ids: bool, in_sequence: bool = False, batch: int = 1_000
) -> list[list[dict[str, Any]]]:
    """The events, in pushes of ``batch`` (the same for every run: seed 0); cards at
    random, or in sequence (each push's cards consecutive keys)."""
    rng = np.random.default_rng(0)
    card = rng.integers(0, cards, events)
    if in_sequence:
        card = np.arange(events) % cards
    amount = np.round(rng.lognormal(3, 1, events), 2)
    merchant = rng.integers(0, 5_000, events)
    channel = rng.integers(0, 3, events)
    rows = [
        {
            "card_id": f"card{card[i]:07d}",
            "event_time": T0 + i / 10,
            "amount": float(amount[i]),
            "merchant": f"m{merchant[i]}",
            "channel": int(channel[i]),
            **({"event_id": f"e{i}"} if with_ids else {}),
        }
        for i in range(events)
    ]
    return [rows[i : i + batch] for i in range(0, events, batch)]


def run_push(batches: list[list[dict[str, Any]]], work: Path) -> dict[str, float]:
    store = SqliteOnlineStore(work / f"online-{uuid.uuid4().hex}.sqlite")
    offline = work / f"offline-{uuid.uuid4().hex}"
    now = T0 + 10 * len(batches) * 1_000
    # warm-up (imports, the first file): a push of other cards, before the timing
    warm = [dict(e, card_id="warm", event_id=f"w{i}") for i, e in enumerate(batches[0][:100])]
    push(
        TXN,
        [CARD_ACTIVITY],
        warm,
        store=store,
        offline_dir=offline,
        now=now,
        allowed_lateness_s=300,
    )
    accepted = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        result = push(
            TXN,
            [CARD_ACTIVITY],
            batch,
            store=store,
            offline_dir=offline,
            now=now,
            allowed_lateness_s=300,
        )
        accepted += result.accepted
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    store.close()
    events = sum(len(b) for b in batches)
    assert accepted == events, (accepted, events)
    return {
        "events": events,
        "wall_s": wall,
        "cpu_s": cpu,
        "eps_wall": events / wall,
        "eps_cpu": events / cpu,
    }


def run_consumer(batches: list[list[dict[str, Any]]], work: Path) -> dict[str, float]:
    import orjson
    import redis

    from modelyard.features.streams import StreamConsumer

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    key = f"bench:{uuid.uuid4().hex}:transactions"
    store = SqliteOnlineStore(work / f"online-{uuid.uuid4().hex}.sqlite")
    try:
        for batch in batches:
            pipe = client.pipeline(transaction=False)
            for event in batch:
                pipe.xadd(
                    key, {"data": orjson.dumps({k: v for k, v in event.items() if k != "event_id"})}
                )
            pipe.execute()
        consumer = StreamConsumer(
            client,
            key=key,
            group="bench",
            consumer="c1",
            stream=TXN,
            views=[CARD_ACTIVITY],
            store=store,
            offline_dir=work / f"offline-{uuid.uuid4().hex}",
            allowed_lateness_s=300,
            clock=lambda: T0,
            batch_size=1_000,
            claim_idle_ms=None,
        )
        events = sum(len(b) for b in batches)
        wall, cpu = time.perf_counter(), time.process_time()
        while consumer.stats.accepted < events:
            if consumer.poll_once().messages == 0:
                break
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert consumer.stats.accepted == events, consumer.stats
        return {
            "events": events,
            "wall_s": wall,
            "cpu_s": cpu,
            "eps_wall": events / wall,
            "eps_cpu": events / cpu,
        }
    finally:
        client.delete(key, f"{key}:dead")
        client.close()
        store.close()


def run_feast(events: int, cards: int, work: Path, core: int | None) -> dict[str, Any]:
    command = [
        str(FEAST_PYTHON),
        str(FEAST_SIDE),
        "--events",
        str(events),
        "--cards",
        str(cards),
        "--work",
        str(work / f"feast-{uuid.uuid4().hex}"),
    ]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"Feast's side failed:\n{completed.stderr[-4000:]}")
    answer: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--core", type=int, default=0, help="the core to pin to (-1: none)")
    parser.add_argument("--consumer", action="store_true", help="also the Redis Streams consumer")
    parser.add_argument("--no-feast", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--dir", type=Path, help="where the stores live (default: a temp dir)")
    parser.add_argument("--batch", type=int, default=1_000, help="events per push")
    parser.add_argument(
        "--in-sequence", action="store_true", help="cards in sequence, not at random"
    )
    args = parser.parse_args()
    core = None if args.core < 0 else args.core
    if core is not None:
        os.sched_setaffinity(0, {core})
    feast = not args.no_feast and FEAST_PYTHON.exists()
    if not args.no_feast and not feast:
        print(f"(no Feast venv at {FEAST_PYTHON}: run bench_online.py --setup)", file=sys.stderr)

    workloads = {
        "push, ids given": generate(args.events, args.cards, True, args.in_sequence, args.batch),
        "push, ids derived": generate(args.events, args.cards, False, args.in_sequence, args.batch),
    }
    rounds: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        for round_ in range(args.repeat):
            for name, batches in workloads.items():
                rounds.setdefault(name, []).append(run_push(batches, work))
            if args.consumer:
                rounds.setdefault("Redis Streams consumer", []).append(
                    run_consumer(workloads["push, ids derived"], work)
                )
            if feast:
                rounds.setdefault("Feast push (online only)", []).append(
                    run_feast(args.events, args.cards, work, core)
                )
            print(f"round {round_ + 1}/{args.repeat} done", file=sys.stderr)

    print(
        f"\nStreaming into SQLite: {args.events:,} events over {args.cards:,} cards, pushes "
        f"of {args.batch:,}, one core{'' if core is None else f' (core {core})'}; "
        f"median of {args.repeat} round(s)\n"
    )
    print("| run | events/s (wall) | events/s (CPU) | seconds |")
    print("|---|---:|---:|---:|")
    summary = {}
    for name, rows in rounds.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("eps_wall", "eps_cpu", "wall_s")}
        summary[name] = med
        print(f"| {name} | {med['eps_wall']:,.0f} | {med['eps_cpu']:,.0f} | {med['wall_s']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
