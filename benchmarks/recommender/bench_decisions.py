"""Decision quality of the recommender A/B test: 500 simulated A/A and 500 A/B tests with a
look every simulated day, the always-valid sequential test against a fixed horizon.

    .venv/bin/python benchmarks/recommender/bench_decisions.py [--tests 500] [--seed 0]

Each day each arm serves ``--lists`` lists; a list is clicked with the arm's CTR
(control 10%; treatment 10% in A/A, 11% in A/B: a 10% relative lift). The sequential
test (``recommend.judge_ctr``: ``routing.abtest`` mSPRT, previous look carried) is
looked at every day and stops at its first verdict; the fixed-horizon test, sized
for that lift at 80% power, decides once, on the day it reaches its sample size. A
"decision" for A/A is a false positive; for A/B, power counts only the right winner.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from modelyard.recommend import judge_ctr
from modelyard.routing.abtest import (
    Conversions,
    ExperimentVerdict,
    FixedHorizon,
    Sequential,
    analyze,
)

WEIGHTS = {"control": 50.0, "treatment": 50.0}


def run(ctr: float, lift: float, tests: int, lists: int, days: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    design = Sequential(tau=0.01, min_samples_per_arm=1000)
    fixed = FixedHorizon.for_conversions(ctr, ctr * 0.10)  # sized for the A/B lift, both runs
    fixed_day = math.ceil(fixed.n_per_arm / lists)
    seq_right = seq_any = fix_right = fix_any = peek_any = 0
    seq_days: list[int] = []
    for _ in range(tests):
        clicks = {"control": rng.binomial(lists, ctr, days),
                  "treatment": rng.binomial(lists, ctr * (1 + lift), days)}  # fmt: skip
        previous = None
        for day in range(1, days + 1):
            served = {arm: lists * day for arm in WEIGHTS}
            clicked = {arm: int(c[:day].sum()) for arm, c in clicks.items()}
            look = judge_ctr(served, clicked, "control", WEIGHTS, design, previous)
            previous = look.report
            if look.verdict is ExperimentVerdict.WINNER:
                seq_any += 1
                seq_right += look.winner == "treatment"
                seq_days.append(day)
                break
        for day in range(1, days + 1):  # the fixed-horizon z-test, wrongly peeked at daily
            arms = {a: Conversions(int(c[:day].sum()), lists * day) for a, c in clicks.items()}
            if (
                analyze(arms, "control", FixedHorizon(lists, 0.05)).verdict
                is ExperimentVerdict.WINNER
            ):
                peek_any += 1
                break
        if fixed_day <= days:
            n = lists * fixed_day
            arms = {a: Conversions(int(c[:fixed_day].sum()), n) for a, c in clicks.items()}
            report = analyze(arms, "control", fixed)
            fix_any += report.verdict is ExperimentVerdict.WINNER
            fix_right += report.winner == "treatment"
    return {
        "sequential_decided": seq_any / tests,
        "sequential_right": seq_right / tests,
        "sequential_median_days": float(np.median(seq_days)) if seq_days else float("nan"),
        "fixed_decided": fix_any / tests,
        "fixed_right": fix_right / tests,
        "fixed_days": float(fixed_day),
        "peeked_decided": peek_any / tests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=500)
    parser.add_argument("--lists", type=int, default=2000, help="lists per arm per day")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    aa = run(0.10, 0.0, args.tests, args.lists, args.days, args.seed)
    ab = run(0.10, 0.10, args.tests, args.lists, args.days, args.seed + 1)
    print(f"{args.tests} tests each, {args.lists} lists per arm per day, up to {args.days} days, "
          f"a look every day")  # fmt: skip
    print("| | sequential (always valid, daily looks) | fixed horizon (one look) "
          "| fixed horizon peeked daily |")  # fmt: skip
    print("|---|---|---|---|")
    print(f"| A/A false-positive rate (nominal 5%) | {aa['sequential_decided']:.1%} | "
          f"{aa['fixed_decided']:.1%} | {aa['peeked_decided']:.1%} |")  # fmt: skip
    print(f"| A/B power (+10% relative CTR) | {ab['sequential_right']:.1%} | "
          f"{ab['fixed_right']:.1%} | - |")  # fmt: skip
    print(f"| A/B days to decision (median of decided) | {ab['sequential_median_days']:.0f} | "
          f"{ab['fixed_days']:.0f} (always) | - |")  # fmt: skip
    assert aa["sequential_decided"] <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / args.tests), aa


if __name__ == "__main__":
    main()
