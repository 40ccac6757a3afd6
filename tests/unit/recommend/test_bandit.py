"""Thompson-sampling weights: the better arm gets the traffic, a guard-rail holds an arm."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import ValidationError
from modelyard.recommend.bandit import thompson_weights
from modelyard.routing import Conversions, TrafficSplit


def test_the_better_arm_gets_most_traffic_and_every_arm_its_floor() -> None:
    arms = {"popularity": Conversions(100, 1000), "mf": Conversions(160, 1000)}
    weights = thompson_weights(arms, np.random.default_rng(0))
    assert sum(weights.values()) == pytest.approx(100)
    assert weights["mf"] > 90
    assert weights["popularity"] == pytest.approx(5.0, abs=0.5)
    TrafficSplit(weights, salt="bandit")  # valid experiment weights


def test_no_evidence_splits_evenly_and_a_held_arm_gets_the_floor() -> None:
    even = thompson_weights({"a": Conversions(0, 0), "b": Conversions(0, 0)},
                            np.random.default_rng(1))  # fmt: skip
    assert even["a"] == pytest.approx(50, abs=2)
    arms = {"a": Conversions(100, 1000), "b": Conversions(300, 1000)}
    held = thompson_weights(arms, np.random.default_rng(2), held={"b"})
    assert held == {"a": 95.0, "b": 5.0}
    with pytest.raises(ValidationError, match="floor"):
        thompson_weights(arms, np.random.default_rng(3), floor=60)
