"""Offline quality: NDCG@10 and recall@10 of implicit's ALS and BPR against popularity.

    .venv/bin/python benchmarks/recommender/bench_offline.py [--users 2000 --items 500]
    .venv/bin/python benchmarks/recommender/bench_offline.py --movielens path/to/u.data

On the simulator's data (users with hidden tastes, ``recommend.simulator``) by default:
each user's latest two interactions are held out. With ``--movielens`` it reads
MovieLens-100k's ``u.data`` (tab-separated user, item, rating, timestamp; not
downloaded here: fetch it yourself from grouplens.org), keeps ratings >= 4 as
implicit interactions, and holds out each user's latest 20%-ish (two per user), as
Microsoft Recommenders' BPR notebook reports NDCG@10 0.44 on a random 75/25 split;
the split differs, so compare the margin over popularity, not the absolute figure.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from modelyard.recommend import InteractionLog, World, evaluate, train_mf, train_popularity


def movielens(path: Path) -> InteractionLog:
    data = np.loadtxt(path, dtype=np.int64)
    keep = data[:, 2] >= 4
    return InteractionLog(
        data[keep, 0].astype(str), data[keep, 1].astype(str), data[keep, 3].astype(float),
        np.ones(int(keep.sum())),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--per-user", type=int, default=15)
    parser.add_argument("--movielens", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.movielens:
        log, source = movielens(args.movielens), f"MovieLens file {args.movielens}"
    else:
        world = World.create(args.users, args.items, seed=args.seed)
        log = world.history(args.per_user, np.random.default_rng(args.seed + 1))
        source = f"simulator: {args.users} users, {args.items} items, {args.per_user} each"
    train, held = log.split_last(2)
    catalogue = np.unique(log.items)
    print(f"{source}; {len(train)} training rows, {len(held)} held out")
    print("| model | NDCG@10 | recall@10 | coverage | train s |")
    print("|---|---|---|---|---|")
    results = {}
    for name, fit in [
        ("popularity", lambda: train_popularity(train, items=catalogue)),
        ("ALS", lambda: train_mf(train, items=catalogue, factors=32, iterations=15)),
        (
            "BPR",
            lambda: train_mf(
                train,
                items=catalogue,
                algorithm="bpr",
                factors=32,
                iterations=100,
                regularization=0.01,
            ),
        ),  # fmt: skip
    ]:
        started = time.perf_counter()
        model = fit()
        seconds = time.perf_counter() - started
        quality = evaluate(lambda u, k, m=model: m.recommend(u, k).items, held, 10, len(catalogue))
        results[name] = quality
        print(f"| {name} | {quality.ndcg:.4f} | {quality.recall:.4f} | {quality.coverage:.1%} | "
              f"{seconds:.1f} |")  # fmt: skip
    base = results["popularity"].ndcg
    for name in ("ALS", "BPR"):
        margin = results[name].ndcg - base
        print(f"{name} NDCG@10 margin over popularity: {margin:+.4f} ({margin / base:+.0%})")


if __name__ == "__main__":
    main()
