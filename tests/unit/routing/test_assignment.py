"""Traffic assignment: weights, stickiness, share, validation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import ValidationError
from modelyard.routing.assignment import TrafficSplit, bucket


def test_bucket_is_pinned_so_every_process_agrees() -> None:
    # Literal values: a change here would move live users between arms.
    assert bucket("user-42", "deploy-7") == 0.3166729548814632
    assert bucket(b"user-42", "deploy-7") == 0.3166729548814632
    assert bucket("user-42", "x" * 100) == 0.6803284839916927


def test_same_key_always_lands_on_the_same_arm() -> None:
    first = TrafficSplit({"champion": 50, "canary": 50}, salt="d1")
    again = TrafficSplit({"champion": 50, "canary": 50}, salt="d1")
    for i in range(200):
        key = f"user-{i}"
        assert {first.assign(key) for _ in range(3)} == {again.assign(key)}


def test_ten_thousand_keys_at_ten_percent_share_within_one_and_a_half_points() -> None:
    split = TrafficSplit({"champion": 90, "canary": 10}, salt="deploy-7")
    share = sum(split.assign(f"user-{i}") == "canary" for i in range(10_000)) / 10_000
    assert abs(share - 0.10) <= 0.015


def test_salt_reshuffles_keys() -> None:
    a = TrafficSplit({"a": 50, "b": 50}, salt="one")
    b = TrafficSplit({"a": 50, "b": 50}, salt="two")
    differ = sum(a.assign(f"k{i}") != b.assign(f"k{i}") for i in range(1_000))
    assert 400 < differ < 600


def test_keys_on_the_canary_stay_there_as_it_steps_up() -> None:
    keys = [f"user-{i}" for i in range(2_000)]
    small = TrafficSplit({"champion": 95, "canary": 5}, salt="d")
    large = TrafficSplit({"champion": 75, "canary": 25}, salt="d")
    on_canary = [k for k in keys if small.assign(k) == "canary"]
    assert on_canary
    assert all(large.assign(k) == "canary" for k in on_canary)


def test_draw_picks_arms_by_position_and_skips_zero_weights() -> None:
    split = TrafficSplit({"a": 30, "idle": 0, "b": 70}, salt="s")
    assert split.assign(draw=0.0) == "a"
    assert split.assign(draw=0.2999) == "a"
    assert split.assign(draw=0.3) == "b"
    assert split.assign(draw=math.nextafter(1.0, 0.0)) == "b"


def test_float_weights_that_round_to_100_are_accepted() -> None:
    split = TrafficSplit({"a": 33.3, "b": 33.3, "c": 33.4}, salt="s")
    assert split.weights == {"a": 33.3, "b": 33.3, "c": 33.4}
    assert split.assign(draw=math.nextafter(1.0, 0.0)) == "c"


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({}, "at least one arm"),
        ({"champion": 120, "canary": -20}, "weight of arm 'champion' must be between 0 and 100"),
        ({"champion": 95, "canary": -5}, "weight of arm 'canary' must be between 0 and 100"),
        (
            {"champion": 90, "canary": 5},
            r"weights must sum to 100, got 95 \(champion=90, canary=5\)",
        ),
        ({"champion": float("nan"), "canary": 100}, "weight of arm 'champion'"),
        ({"champion": True, "canary": 99}, "weight of arm 'champion' must be a number"),
        ({"champion": "95", "canary": 5}, "must be a number, got '95'"),
        ({"": 100}, "arm names must be non-empty"),
    ],
)
def test_bad_weights_are_refused_naming_the_weight(weights: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrafficSplit(weights, salt="s")


def test_assign_needs_a_key_or_a_draw_in_range() -> None:
    split = TrafficSplit({"a": 100}, salt="s")
    with pytest.raises(ValidationError, match="routing key or a random draw"):
        split.assign()
    with pytest.raises(ValidationError, match=r"draw must be in \[0, 1\), got 1.0"):
        split.assign(draw=1.0)


@given(key=st.text() | st.binary(), salt=st.text(min_size=1))
def test_bucket_is_uniform_range_and_deterministic(key: str | bytes, salt: str) -> None:
    value = bucket(key, salt)
    assert 0.0 <= value < 1.0
    assert bucket(key, salt) == value


@given(
    weight=st.floats(min_value=0, max_value=100),
    draw=st.floats(min_value=0, max_value=1, exclude_max=True),
    key=st.text(),
)
def test_only_arms_with_weight_are_chosen(weight: float, draw: float, key: str) -> None:
    split = TrafficSplit({"a": weight, "b": 100 - weight}, salt="s")
    positive = {name for name, w in split.weights.items() if w > 0}
    assert split.assign(draw=draw) in positive
    assert split.assign(key) in positive
