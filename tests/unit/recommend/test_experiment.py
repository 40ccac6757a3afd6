"""A/B judgement of two recommenders on a simulated experiment with a known effect."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.recommend import (
    Click,
    Served,
    cuped,
    judge_ctr,
    judge_lists,
    judge_per_user,
    sample_ratio,
)
from modelyard.routing import ExperimentVerdict, Sequential, TrafficSplit

WEIGHTS = {"popularity": 50.0, "mf": 50.0}
DESIGN = Sequential(tau=0.05, min_samples_per_arm=200)


def simulate(ctr: dict[str, float], users: int, seed: int) -> tuple[dict[str, int], dict[str, int]]:
    split = TrafficSplit(WEIGHTS, salt="exp")
    rng = np.random.default_rng(seed)
    lists = dict.fromkeys(WEIGHTS, 0)
    clicked = dict.fromkeys(WEIGHTS, 0)
    for user in range(users):
        arm = split.assign(key=f"u{user}")
        lists[arm] += 1
        clicked[arm] += int(rng.random() < ctr[arm])
    return lists, clicked


def test_known_effect_is_found_with_its_interval() -> None:
    lists, clicked = simulate({"popularity": 0.10, "mf": 0.14}, 6000, seed=1)
    report = judge_ctr(lists, clicked, "popularity", WEIGHTS, DESIGN)
    assert report.verdict is ExperimentVerdict.WINNER
    assert report.winner == "mf"
    assert report.may_stop
    assert report.ci_low is not None
    assert report.ci_high is not None
    assert report.ci_low < 0.04 < report.ci_high
    assert report.ci_low > 0
    assert not report.srm.mismatch


def test_no_effect_keeps_collecting() -> None:
    lists, clicked = simulate({"popularity": 0.10, "mf": 0.10}, 3000, seed=2)
    report = judge_ctr(lists, clicked, "popularity", WEIGHTS, DESIGN)
    assert report.verdict is ExperimentVerdict.CONTINUE
    assert not report.may_stop


def test_sample_ratio_mismatch_blocks_the_stop() -> None:
    assert sample_ratio({"popularity": 5000, "mf": 5050}, WEIGHTS).p_value > 0.5
    srm = sample_ratio({"popularity": 5000, "mf": 5600}, WEIGHTS)
    assert srm.mismatch
    report = judge_ctr({"popularity": 5000, "mf": 5600}, {"popularity": 500, "mf": 900},
                       "popularity", WEIGHTS, DESIGN)  # fmt: skip
    assert report.winner == "mf"
    assert not report.may_stop
    assert "sample ratio mismatch" in report.reason


def test_cuped_shrinks_variance_and_keeps_the_effect() -> None:
    rng = np.random.default_rng(3)
    pre = rng.poisson(3.0, 4000).astype(float)
    arm = np.arange(4000) % 2
    outcome = pre * 0.8 + rng.normal(0, 0.5, 4000) + 0.1 * arm
    adjusted = cuped(outcome, pre)
    assert adjusted.var() < outcome.var() / 5
    lift = adjusted[arm == 1].mean() - adjusted[arm == 0].mean()
    assert lift == pytest.approx(0.1, abs=0.05)
    values = {"popularity": outcome[arm == 0], "mf": outcome[arm == 1]}
    before = {"popularity": pre[arm == 0], "mf": pre[arm == 1]}
    design = Sequential(tau=0.1, min_samples_per_arm=200)
    plain = judge_per_user(values, "popularity", WEIGHTS, design)
    adjusted_report = judge_per_user(values, "popularity", WEIGHTS, design, pre=before)
    assert adjusted_report.winner == "mf"
    width = lambda r: r.ci_high - r.ci_low  # noqa: E731
    assert width(adjusted_report) < width(plain) / 2


def test_served_lists_and_their_clicks_are_judged_per_list_with_users_as_units() -> None:
    split = TrafficSplit(WEIGHTS, salt="exp")
    rng = np.random.default_rng(4)
    served, clicks = [], []
    for n in range(6000):
        user = f"u{n % 3000}"  # every user comes twice: lists are 2x the users
        arm = split.assign(key=user)
        served.append(Served(f"r{n}", user, arm, 1, ("a", "b"), (1.0, 1.0)))
        if rng.random() < {"popularity": 0.10, "mf": 0.14}[arm]:
            clicks += [Click(f"r{n}", "a"), Click(f"r{n}", "a"), Click(f"r{n}", "b")]
    served.append(Served("other", "u1", "old-arm", 1, ("a",), (1.0,)))  # not of this test
    report = judge_lists(served, clicks, "popularity", WEIGHTS, DESIGN)
    assert report.winner == "mf"
    assert report.may_stop
    assert sum(report.srm.counts.values()) == 3000
    arms = {arm.name: arm for arm in report.report.arms}
    assert arms["popularity"].n + arms["mf"].n == 6000
