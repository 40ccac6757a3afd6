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

import flagger  # benchmarks/decisions/flagger.py, beside this script
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
    """One version's behaviour: error rate, lognormal latency, beta predictions, and the
    share of requests on which the champion would decide otherwise."""

    error_rate: float
    median_ms: float
    sigma: float
    beta: tuple[float, float]
    decision_change: float = 0.02  # another seed of the same recipe, as measured live

    def snapshot(self, rng: np.random.Generator, requests: int) -> ArmTraffic:
        kept = min(requests, RESERVOIR)
        return ArmTraffic(
            request_count=requests,
            error_count=int(rng.binomial(requests, self.error_rate)),
            latency_samples_ms=rng.lognormal(np.log(self.median_ms), self.sigma, kept),
            prediction_sample=rng.beta(*self.beta, kept),
            decisions_compared=kept,
            decisions_changed=int(rng.binomial(kept, self.decision_change)),
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
) -> tuple[Phase, int, list[flagger.Interval]]:
    """Run one rollout to its end; return the final phase, the analyses it took and what
    Flagger's builtin metrics would have seen of the canary in each."""
    state = start_rollout(policy, now=0.0)
    now = 0.0
    seen: list[flagger.Interval] = []
    for analyses in range(1, MAX_INTERVALS + 1):
        now += policy.interval_s
        canary_n = int(rng.integers(300, 3_001))
        champion_n = round(canary_n * (100 - state.weight) / state.weight)
        ours = canary.snapshot(rng, canary_n)
        assert ours.latency_samples_ms is not None
        p99 = float(np.quantile(ours.latency_samples_ms, 0.99))
        seen.append(flagger.Interval(ours.request_count, ours.error_count, p99))
        decision = decide(policy, state, champion.snapshot(rng, champion_n), ours, now)
        state = decision.new_state
        if state.phase in (Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED):
            return state.phase, analyses, seen
    return state.phase, MAX_INTERVALS, seen


@dataclass
class Tally:
    """Rollouts of one scenario: how they ended, and Flagger's verdicts on their windows."""

    promoted: int = 0
    rolled: int = 0
    first: int = 0  # rolled back at the first analysis
    within_two: int = 0
    flagger: dict[str, int] | None = None

    def flagger_text(self) -> str:
        return ", ".join(f"{n} {v}" for v, n in sorted((self.flagger or {}).items()))


def rollouts(
    rng: np.random.Generator,
    policy: RolloutPolicy,
    count: int,
    pair: Callable[[np.random.Generator], tuple[Service, Service]],
) -> Tally:
    """How ``count`` rollouts of ``pair`` ended."""
    tally = Tally(flagger={})
    assert tally.flagger is not None
    steps = len(policy.step_weights)
    for _ in range(count):
        champion, canary = pair(rng)
        phase, analyses, seen = simulate_rollout(rng, policy, champion, canary)
        tally.promoted += phase is Phase.PROMOTED
        tally.rolled += phase is Phase.ROLLED_BACK
        tally.first += phase is Phase.ROLLED_BACK and analyses == 1
        tally.within_two += phase is Phase.ROLLED_BACK and analyses <= 2
        # Flagger's rule gets the same windows, and more of the canary's where it would
        # still be running after modelyard ended the rollout.
        judged = flagger.verdict(seen, policy.failure_threshold, steps)
        while judged == "undecided" and len(seen) < MAX_INTERVALS:
            window = canary.snapshot(rng, int(rng.integers(300, 3_001)))
            assert window.latency_samples_ms is not None
            p99 = float(np.quantile(window.latency_samples_ms, 0.99))
            seen.append(flagger.Interval(window.request_count, window.error_count, p99))
            judged = flagger.verdict(seen, policy.failure_threshold, steps)
        tally.flagger[judged] = tally.flagger.get(judged, 0) + 1
    return tally


def good_pair(rng: np.random.Generator) -> tuple[Service, Service]:
    champion = healthy(rng)
    return champion, champion


def erroring_pair(rng: np.random.Generator) -> tuple[Service, Service]:
    champion = replace(healthy(rng), error_rate=0.001)
    return champion, replace(champion, error_rate=0.05)


def slow_pair(rng: np.random.Generator) -> tuple[Service, Service]:
    champion = healthy(rng)
    return champion, replace(champion, median_ms=champion.median_ms * 1.5)


def saturated_pair(rng: np.random.Generator) -> tuple[Service, Service]:
    """Issue 16's good canary at saturation: its p99 x1.27 the champion's, at about 2 ms."""
    champion = Service(0.001, 1.0, 0.3, (2.0, 5.0))
    return champion, replace(champion, median_ms=1.27)


def twice_as_slow_pair(rng: np.random.Generator) -> tuple[Service, Service]:
    champion = Service(0.001, 8.0, 0.4, (2.0, 5.0))
    return champion, replace(champion, median_ms=16.0)


def changing(share: float) -> Callable[[np.random.Generator], tuple[Service, Service]]:
    def pair(rng: np.random.Generator) -> tuple[Service, Service]:
        champion = healthy(rng)
        return champion, replace(champion, decision_change=share)

    return pair


def recalibrated_pair(rng: np.random.Generator) -> tuple[Service, Service]:
    """The same decisions, much sharper scores: what a KS gate rolls back."""
    champion = healthy(rng)
    return champion, replace(champion, beta=(0.3, 0.6), decision_change=0.0)


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
    np.random.default_rng(seed)
    policy = RolloutPolicy()
    rows: list[tuple[str, ...]] = []
    started = time.perf_counter()

    split = TrafficSplit({"champion": 90, "canary": 10}, salt="bench")
    keys = [f"user-{i}" for i in range(10_000)]
    tick = time.perf_counter()
    share = sum(split.assign(key) == "canary" for key in keys) / len(keys)
    micros = (time.perf_counter() - tick) / len(keys) * 1e6
    rows.append(("sticky assignment, 10,000 keys at 10%", f"{share:.2%} to canary", "10% +/- 1.5"))
    rows.append(("assignment cost (sticky key)", f"{micros:.2f} us/call", "a few us"))

    scenarios: list[tuple[str, Callable[..., tuple[Service, Service]], RolloutPolicy, str]] = [
        ("good canary (same errors, latency, predictions)", good_pair, policy, "0 rolled back"),
        (
            "good canary at saturation, p99 x1.27 at ~2 ms",
            saturated_pair,
            policy,
            "0 rolled back",
        ),
        (
            "same, without the 5 ms margin (`max_p99_increase_ms=0`, the old rule)",
            saturated_pair,
            replace(policy, max_p99_increase_ms=0.0),
            "(what issue 16 saw)",
        ),
        ("canary 5% errors vs champion 0.1%", erroring_pair, policy, ">= 99 within one interval"),
        ("canary 1.5x slower (all quantiles)", slow_pair, policy, "rolled back"),
        (
            "canary twice as slow at p99 (8 -> 16 ms median)",
            twice_as_slow_pair,
            policy,
            "rolled back",
        ),
        ("decisions differ on 10% of requests", changing(0.10), policy, "within two analyses"),
        ("shuffled labels: decisions differ on 50%", changing(0.50), policy, "within two analyses"),
        ("probabilities recalibrated, same decisions", recalibrated_pair, policy, "promoted"),
        (
            "same, with `divergence_gate` (KS as a gate, the old rule)",
            recalibrated_pair,
            replace(policy, divergence_gate=True),
            "(what issue 16 saw)",
        ),
    ]
    for offset, (name, pair, chosen, target) in enumerate(scenarios):
        tally = rollouts(np.random.default_rng(seed + 10 + offset), chosen, 100, pair)
        rows.append(
            (
                f"{name}, 100 rollouts",
                f"{tally.promoted} promoted, {tally.rolled} rolled back "
                f"({tally.first} at the 1st analysis, {tally.within_two} within two)",
                target,
                tally.flagger_text(),
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
    print("| scenario | observed | target | Flagger's rule on the same windows, and more |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join((*row, "", "")[:4]) + " |")


if __name__ == "__main__":
    main()
