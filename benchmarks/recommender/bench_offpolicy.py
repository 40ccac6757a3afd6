"""Off-policy estimates against the A/B outcome they predict, on the simulator.

    .venv/bin/python benchmarks/recommender/bench_offpolicy.py [--lists 20000] [--epsilon 0.1]

A champion (ALS) serves ``--lists`` lists of 10 with epsilon-greedy exploration,
logging each slot's propensity; the simulated users click with position bias. Each
candidate is then estimated on those logs (``recommend.offpolicy.estimate``, top slot:
click-through at position 1) and afterwards served live to as many lists, with the
same exploration, as an A/B arm would be. The table puts the estimate beside the live
figure and the simulator's exact expected value of the candidate's greedy top item.
"""

from __future__ import annotations

import argparse

import numpy as np

from modelyard.recommend import (
    Click,
    RecommenderModel,
    Served,
    World,
    estimate,
    join_clicks,
    train_mf,
    train_popularity,
)


def serve(
    model: RecommenderModel, world: World, lists: int, rng: np.random.Generator
) -> tuple[list[Served], list[Click]]:
    served, clicks = [], []
    for n in range(lists):
        user = int(rng.integers(world.n_users))
        found = model.recommend(world.user_id(user), 10, seed=int(rng.integers(2**31)))
        served.append(Served(f"r{n}", world.user_id(user), "log", 1, tuple(found.items),
                             tuple(found.propensities)))  # fmt: skip
        clicks += [Click(f"r{n}", found.items[p]) for p in world.respond(user, found.items, rng)]
    return served, clicks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=int, default=20_000)
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    world = World.create(3000, 200, seed=args.seed)
    log = world.history(10, rng)
    items = world.catalogue()
    champion = train_mf(log, items=items, factors=32, epsilon=args.epsilon, seed=1)
    candidates = {
        "ALS, another seed": train_mf(log, items=items, factors=32, epsilon=args.epsilon, seed=2),
        "ALS, 8 factors": train_mf(log, items=items, factors=8, epsilon=args.epsilon, seed=3),
        "popularity": train_popularity(log, items=items, epsilon=args.epsilon),
    }
    logged, clicks = serve(champion, world, args.lists, rng)
    joined = join_clicks(logged, clicks)
    top = [c for c in clicks if logged[int(c.request_id[1:])].items[0] == c.item]
    print(f"{args.lists:,} logged lists of the champion (epsilon {args.epsilon}); its live "
          f"top-slot CTR {len(top) / args.lists:.4f}")  # fmt: skip
    print("| candidate | IPS | SNIPS | clipped IPS (10) | effective sample | exact | live A/B |")
    print("|---|---|---|---|---|---|---|")
    for name, model in candidates.items():
        greedy = model.with_epsilon(0.0)

        def rank(s: Served, k: int, m: RecommenderModel = greedy) -> list[str]:
            return m.recommend(s.user, k).items

        found = estimate(logged, joined, rank, slots=1)
        clipped = estimate(logged, joined, rank, slots=1, clip=10.0)
        exact = np.mean([world.appeal(int(s.user[1:]))[int(rank(s, 1)[0][1:])] for s in logged])
        live, live_clicks = serve(model, world, args.lists, rng)
        live_top = sum(1 for c in live_clicks if live[int(c.request_id[1:])].items[0] == c.item)
        rate = live_top / args.lists
        print(f"| {name} | {found.ips:.4f} | {found.snips:.4f} | {clipped.ips:.4f} | "
              f"{found.effective_sample_size:,.0f} | {exact:.4f} | {rate:.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
