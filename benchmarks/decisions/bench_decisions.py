"""Simulated traffic through the routing decisions; prints a Markdown table and exits.

    .venv/bin/python benchmarks/decisions/bench_decisions.py [--seed N]

Rollouts: each interval the canary arm gets 300-3,000 requests and the champion
the rest of a split at the current weight; latencies are lognormal, predictions
beta-distributed; the metrics adapter is assumed to hand over reservoir samples
of at most 2,000 latencies and predictions per arm. Experiments: conversion
rates, one look after every batch of outcomes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from modelyard.routing.abtest import (
    Conversions,
    ExperimentReport,
    ExperimentVerdict,
    FixedHorizon,
    Sequential,
    analyze,
)
from modelyard.routing.assignment import TrafficSplit
from modelyard.routing.canary import (
    ArmTraffic,
    Phase,
    RolloutPolicy,
    decide,
    start_rollout,
)

RESERVOIR = 2_000
MAX_INTERVALS = 30


@dataclass(frozen=True)
class Service:
    """One version's behaviour: error rate, lognormal latency, beta predictions."""

    error_rate: float
    median_ms: float
    sigma: float
    beta: tuple[float, float]

    def snapshot(self, rng: np.random.Generator, requests: int) -> ArmTraffic:
        kept = min(requests, RESERVOIR)
        return ArmTraffic(
            request_count=requests,
            error_count=int(rng.binomial(requests, self.error_rate)),
            latency_samples_ms=rng.lognormal(np.log(self.median_ms), self.sigma, kept),
            prediction_sample=rng.beta(*self.beta, kept),
        )


def healthy(rng: np.random.Generator) -> Service:
    return Service(
        error_rate=float(rng.uniform(0.001, 0.01)),
        median_ms=float(rng.uniform(20, 80)),
        sigma=float(rng.uniform(0.3, 0.7)),
        beta=(float(rng.uniform(1, 5)), float(rng.uniform(1, 5))),
    )


def simulate_rollout(
    rng: np.random.Generator, policy: RolloutPolicy, champion: Service, canary: Service
) -> tuple[Phase, int]:
    """Run one rollout to its end; return the final phase and the analyses it took."""
    state = start_rollout(policy, now=0.0)
    now = 0.0
    for analyses in range(1, MAX_INTERVALS + 1):
        now += policy.interval_s
        canary_n = int(rng.integers(300, 3_001))
        champion_n = round(canary_n * (100 - state.weight) / state.weight)
        decision = decide(
            policy,
            state,
            champion.snapshot(rng, champion_n),
            canary.snapshot(rng, canary_n),
            now,
        )
        state = decision.new_state
        if state.phase in (Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED):
            return state.phase, analyses
    return state.phase, MAX_INTERVALS


def rollouts(
    rng: np.random.Generator,
    policy: RolloutPolicy,
    count: int,
    pair: Callable[[np.random.Generator], tuple[Service, Service]],
) -> tuple[int, int, int]:
    """(promoted, rolled back, rolled back at the first analysis) over ``count`` rollouts."""
    promoted = rolled = first = 0
    for _ in range(count):
        champion, canary = pair(rng)
        phase, analyses = simulate_rollout(rng, policy, champion, canary)
        promoted += phase is Phase.PROMOTED
        rolled += phase is Phase.ROLLED_BACK
        first += phase is Phase.ROLLED_BACK and analyses == 1
    return promoted, rolled, first


def good_pair(rng: np.random.Generator) -> tuple[Service, Service]:
    champion = healthy(rng)
    return champion, champion


def erroring_pair(rng: np.random.Generator) -> tuple[Service, Service]:
    champion = replace(healthy(rng), error_rate=0.001)
    return champion, replace(champion, error_rate=0.05)


def slow_pair(rng: np.random.Generator) -> tuple[Service, Service]:
    champion = healthy(rng)
    return champion, replace(champion, median_ms=champion.median_ms * 1.5)


def declares(report: ExperimentReport) -> bool:
    return report.verdict is ExperimentVerdict.WINNER


def experiments(
    rng: np.random.Generator,
    count: int,
    looks: int,
    batch: int,
    rates: tuple[float, float],
    designs: dict[str, FixedHorizon | Sequential],
) -> dict[str, list[int]]:
    """For each design, the look at which each experiment first declared (0: never)."""
    first: dict[str, list[int]] = {name: [] for name in designs}
    for _ in range(count):
        a = np.cumsum(rng.binomial(batch, rates[0], looks))
        b = np.cumsum(rng.binomial(batch, rates[1], looks))
        for name, design in designs.items():
            previous: ExperimentReport | None = None
            stop = 0
            for look in range(looks):
                n = batch * (look + 1)
                arms = {"A": Conversions(int(a[look]), n), "B": Conversions(int(b[look]), n)}
                previous = analyze(arms, "A", design, previous=previous)
                if declares(previous):
                    stop = look + 1
                    break
            first[name].append(stop)
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20_240_611)
    seed = parser.parse_args().seed
    rng = np.random.default_rng(seed)
    policy = RolloutPolicy()
    rows: list[tuple[str, str, str]] = []
    started = time.perf_counter()

    split = TrafficSplit({"champion": 90, "canary": 10}, salt="bench")
    keys = [f"user-{i}" for i in range(10_000)]
    tick = time.perf_counter()
    share = sum(split.assign(key) == "canary" for key in keys) / len(keys)
    micros = (time.perf_counter() - tick) / len(keys) * 1e6
    rows.append(("sticky assignment, 10,000 keys at 10%", f"{share:.2%} to canary", "10% +/- 1.5"))
    rows.append(("assignment cost (sticky key)", f"{micros:.2f} us/call", "a few us"))

    promoted, rolled, _ = rollouts(rng, policy, 100, good_pair)
    rows.append(
        (
            "good canary (same errors, latency, predictions), 100 rollouts",
            f"{promoted} promoted, {rolled} rolled back",
            "0 rolled back",
        )
    )
    _, rolled, first = rollouts(np.random.default_rng(seed + 1), policy, 100, erroring_pair)
    rows.append(
        (
            "canary 5% errors vs champion 0.1%, 100 rollouts",
            f"{first} rolled back at the 1st analysis ({rolled} in all)",
            ">= 99 within one interval",
        )
    )
    _, rolled, first = rollouts(np.random.default_rng(seed + 2), policy, 100, slow_pair)
    rows.append(
        (
            "canary 1.5x slower (all quantiles), 100 rollouts",
            f"{first} rolled back at the 1st analysis ({rolled} in all)",
            "rolled back",
        )
    )

    looks, batch = 50, 200
    horizon = FixedHorizon.for_conversions(baseline=0.10, mde=0.015)
    designs: dict[str, FixedHorizon | Sequential] = {
        "sequential": Sequential(tau=0.01),
        "naive": FixedHorizon(n_per_arm=1),  # horizon already met: a z-test at every look
    }
    aa = experiments(np.random.default_rng(seed + 3), 1_000, looks, batch, (0.10, 0.10), designs)
    seq_fp = np.mean(np.array(aa["sequential"]) > 0)
    naive_fp = np.mean(np.array(aa["naive"]) > 0)
    watched = f"1,000 A/A experiments (10%), {looks} looks of {batch}/arm"
    rows.append((f"{watched}: sequential (mSPRT) declares", f"{seq_fp:.1%}", "<= 5%"))
    rows.append(
        (f"{watched}: naive z-test at every look declares", f"{naive_fp:.1%}", "far higher")
    )

    at_horizon = experiments(
        np.random.default_rng(seed + 4),
        1_000,
        1,
        horizon.n_per_arm,
        (0.10, 0.10),
        {"fixed": horizon},
    )
    fixed_fp = np.mean(np.array(at_horizon["fixed"]) > 0)
    rows.append(
        (
            f"same, fixed horizon ({horizon.n_per_arm}/arm) judged once at the horizon",
            f"{fixed_fp:.1%}",
            "about 5%",
        )
    )

    sequential_only = {"sequential": designs["sequential"]}
    lifted = experiments(
        np.random.default_rng(seed + 5), 300, looks, batch, (0.10, 0.115), sequential_only
    )
    stops = np.array(lifted["sequential"])
    power = np.mean(stops > 0)
    median_n = int(np.median(stops[stops > 0])) * batch if power else 0
    rows.append(
        (
            f"300 experiments 10% -> 11.5%, {looks} looks of {batch}/arm: sequential",
            f"{power:.0%} declare B, median stop at {median_n}/arm",
            f"fixed needs {horizon.n_per_arm}/arm",
        )
    )

    print(f"seed {seed}, {time.perf_counter() - started:.1f} s\n")
    print("| scenario | observed | target |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
