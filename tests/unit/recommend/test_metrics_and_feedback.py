"""Offline metrics, feedback joined by request id and item, figures per arm, off-policy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelyard.recommend import (
    Click,
    InteractionLog,
    Served,
    arm_figures,
    clicked_items,
    coverage,
    estimate,
    join_clicks,
    ndcg_at_k,
    recall_at_k,
)


def test_ranking_metrics_match_hand_computed_values() -> None:
    assert ndcg_at_k(["a", "b", "c"], {"a"}, 3) == 1.0
    assert ndcg_at_k(["x", "a"], {"a"}, 2) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["x"], set(), 1) == 0.0
    assert recall_at_k(["a", "x", "b"], {"a", "b", "c"}, 2) == 0.5
    assert coverage([["a", "b"], ["b", "c"]], 6) == 0.5


def test_split_last_holds_out_each_users_latest() -> None:
    log = InteractionLog.of(
        [("u", "a", 1, 1), ("u", "b", 3, 1), ("u", "c", 2, 1), ("v", "a", 1, 1)]
    )
    train, held = log.split_last()
    assert held.items.tolist() == ["b"]  # v has one interaction only: kept for training
    assert sorted(train.items.tolist()) == ["a", "a", "c"]


SERVED = [
    Served("r1", "u1", "a", 1, ("x", "y", "z"), (1.0, 0.5, 0.5), 2.0),
    Served("r2", "u2", "a", 1, ("y", "x", "w"), (1.0, 1.0, 1.0), 4.0),
    Served("r3", "u3", "b", 2, ("x", "y"), (1.0, 1.0), 3.0),
]


def test_clicks_join_by_request_id_and_item_and_count_once() -> None:
    clicks = [Click("r1", "y"), Click("r1", "y"), Click("r1", "x"), Click("r2", "w"),
              Click("r9", "x"), Click("r3", "nope")]  # fmt: skip
    joined = join_clicks(SERVED, clicks)
    assert joined.clicks == {"r1": frozenset({0, 1}), "r2": frozenset({2})}
    assert joined.unmatched == (Click("r9", "x"), Click("r3", "nope"))


def test_arm_figures_per_arm_and_position() -> None:
    joined = join_clicks(SERVED, [Click("r1", "y"), Click("r1", "y"), Click("r2", "y")])
    a, b = arm_figures(SERVED, joined, catalogue_size=8)
    assert (a.arm, a.lists, a.clicked_lists, a.clicks, a.ctr) == ("a", 2, 2, 2, 1.0)
    assert a.ctr_at_position == (0.5, 0.5, 0.0)
    assert a.coverage == 4 / 8
    assert (b.arm, b.version, b.ctr) == ("b", 2, 0.0)


def test_ips_recovers_the_candidate_value_on_uniform_logs() -> None:
    rng = np.random.default_rng(0)
    appeal = {"a": 0.6, "b": 0.2, "c": 0.1, "d": 0.05}
    served, clicks = [], []
    for n in range(20_000):
        item = str(rng.choice(list(appeal)))  # a uniform one-slot logging policy
        served.append(Served(f"r{n}", "u", "log", 1, (item,), (0.25,)))
        if rng.random() < appeal[item]:
            clicks.append(Click(f"r{n}", item))
    found = estimate(served, join_clicks(served, clicks), lambda s, k: ["a"])
    assert found.ips == pytest.approx(0.6, abs=0.03)
    assert found.snips == pytest.approx(0.6, abs=0.02)
    assert found.effective_sample_size == pytest.approx(5000, rel=0.1)


def test_clicked_items_read_from_a_feedback_label() -> None:
    assert clicked_items('{"clicked": 1, "item": "i3", "position": 2}') == ["i3"]
    assert clicked_items('{"clicked": 1, "items": ["i3", "i4"]}') == ["i3", "i4"]
    assert clicked_items('{"clicked": 0, "item": "i3"}') == []
    assert clicked_items("1") == []
