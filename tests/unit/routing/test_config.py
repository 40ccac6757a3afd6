"""Deployment configuration: validation that names the field, JSON round trips, routing."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import ConflictError, ValidationError
from modelyard.registry.signature import FieldSpec, Signature
from modelyard.routing import (
    Deployment,
    DeploymentConfig,
    Experiment,
    ExperimentArm,
    FixedHorizon,
    Rollout,
    RolloutPolicy,
    RoutingKey,
    Sequential,
    Shadow,
    pause,
    start_rollout,
)
from modelyard.routing.analysis import CHECKS, ArmTraffic, run_checks
from modelyard.routing.deployment import describe_input_difference, dumps

BASE = DeploymentConfig("fraud", champion=3)


def experiment(*weights: float) -> Experiment:
    arms = tuple(ExperimentArm(f"arm{i}", i + 1, w) for i, w in enumerate(weights))
    return Experiment(arms, Sequential(tau=0.02), started_at=10.0)


def deployment(config: DeploymentConfig, rollout: Rollout | None = None) -> Deployment:
    return Deployment("fraud-api", config, rollout, 1, 0.0, 0.0)


@pytest.mark.parametrize("weight", [-1, 100.5, 150, float("nan")])
def test_canary_weight_outside_0_100_is_refused(weight: float) -> None:
    with pytest.raises(ValidationError, match=r"canary_weight must be between 0 and 100, got"):
        DeploymentConfig("fraud", 3, canary=4, canary_weight=weight)


def test_canary_rules_name_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="canary_weight is 5 but no canary version is set"):
        DeploymentConfig("fraud", 3, canary_weight=5)
    with pytest.raises(ValidationError, match="canary must differ from the champion"):
        DeploymentConfig("fraud", 3, canary=3, canary_weight=5)
    with pytest.raises(ValidationError, match=r"champion must be a version number .* got 0"):
        DeploymentConfig("fraud", 0)
    with pytest.raises(ValidationError, match="canary_weight must be a number, got '5'"):
        DeploymentConfig("fraud", 3, canary=4, canary_weight="5")  # type: ignore[arg-type]


@pytest.mark.parametrize("share", [0, -0.1, 1.5])
def test_shadow_share_must_be_in_0_1(share: float) -> None:
    with pytest.raises(ValidationError, match=r"shadows\[0\]\.share must be in \(0, 1\], got"):
        DeploymentConfig("fraud", 3, shadows=(Shadow(4, share),))


def test_shadows_are_distinct_and_not_the_champion() -> None:
    with pytest.raises(ValidationError, match="shadows must be distinct versions"):
        DeploymentConfig("fraud", 3, shadows=(Shadow(3, 0.1),))
    with pytest.raises(ValidationError, match="shadows must be distinct versions"):
        DeploymentConfig("fraud", 3, shadows=(Shadow(4, 0.1), Shadow(4, 0.2)))


def test_experiment_arms_must_sum_to_100() -> None:
    with pytest.raises(
        ValidationError, match=r"weights must sum to 100, got 90 \(arm0=50, arm1=40\)"
    ):
        experiment(50, 40)
    with pytest.raises(ValidationError, match="weight of arm 'arm0' must be between 0 and 100"):
        experiment(120, -20)
    with pytest.raises(ValidationError, match="at least two arms"):
        experiment(100)
    with pytest.raises(ValidationError, match="control must name one of the arms"):
        replace(experiment(50, 50), control="nope")
    assert experiment(50, 50).control == "arm0"


def test_a_canary_and_an_experiment_do_not_mix() -> None:
    with pytest.raises(ValidationError, match="a canary or an experiment, not both"):
        DeploymentConfig("fraud", 3, canary=4, canary_weight=5, experiment=experiment(50, 50))


def test_routing_key_parses_headers_and_fields() -> None:
    key = RoutingKey.parse("header:X-User-Id")
    assert key.extract({"x-user-id": "u1"}, {}) == "u1"
    assert key.extract({}, {"X-User-Id": "u1"}) is None
    assert RoutingKey.parse("field:user_id").extract({}, {"user_id": 42}) == "42"
    with pytest.raises(ValidationError, match="routing_key must be 'header:<name>'"):
        RoutingKey.parse("cookie:x")


def test_config_round_trips_through_json() -> None:
    config = DeploymentConfig(
        "fraud",
        3,
        shadows=(Shadow(5, 0.25),),
        experiment=Experiment(
            (ExperimentArm("a", 3, 50), ExperimentArm("b", 4, 50)),
            FixedHorizon(1000, 0.01),
            metric="revenue",
            kind="mean",
            started_at=12.5,
        ),
        routing_key=RoutingKey("field", "user_id"),
        follow_alias="champion",
        log_sample_rate=0.25,
        log_ttl_days=7,
    )
    assert DeploymentConfig.from_dict(config.to_dict()) == config
    older = {k: v for k, v in config.to_dict().items() if not k.startswith("log_")}
    assert DeploymentConfig.from_dict(older).log_sample_rate is None  # stored before they were
    assert config.versions == {3, 4, 5}
    assert config.role_of(5) == "shadow"
    assert config.role_of(4) == "experiment arm b"


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("log_sample_rate", 1.5, "between 0 and 1"),
        ("log_sample_rate", True, "between 0 and 1"),
        ("log_ttl_days", -1, ">= 0"),
    ],
)
def test_log_settings_out_of_range_are_refused(field: str, value: object, allowed: str) -> None:
    with pytest.raises(ValidationError, match=f"{field} must be a number {allowed}"):
        DeploymentConfig("fraud", 1, **{field: value})  # type: ignore[arg-type]


def test_rollout_round_trips_through_json() -> None:
    policy = RolloutPolicy(step_weights=(10, 100), interval_s=30)
    state = pause(start_rollout(policy, 100.0), 130.0, "look").new_state
    record = Rollout(4, policy, state, 130.0, "ana")
    assert Rollout.from_dict(record.to_dict()) == record
    with pytest.raises(ValidationError, match=r"unknown rollout policy field\(s\) \['speed'\]"):
        RolloutPolicy.from_dict({"speed": 3})


@given(st.floats(min_value=0, max_value=100), st.text(min_size=1, max_size=20))
def test_routing_is_sticky_per_key(weight: float, key: str) -> None:
    found = deployment(DeploymentConfig("fraud", 3, canary=4, canary_weight=weight))
    first = found.route(key, draw=0.5)
    assert all(found.route(key, draw=d) == first for d in (0.0, 0.3, 0.99))
    assert first.version == (4 if first.arm == "canary" else 3)


def test_routing_follows_the_weights_and_mirrors_shadows() -> None:
    config = DeploymentConfig("fraud", 3, canary=4, canary_weight=20, shadows=(Shadow(5, 0.1),))
    found = deployment(config)
    rng = np.random.default_rng(0)
    routes = [found.route(None, rng.random(), rng.random()) for _ in range(20_000)]
    arms = Counter(r.arm for r in routes)
    assert arms["canary"] / len(routes) == pytest.approx(0.2, abs=0.01)
    mirrored = sum(1 for r in routes if r.shadows == (5,))
    assert mirrored / len(routes) == pytest.approx(0.1, abs=0.01)
    assert found.route(None, 0.5).shadows == ()


def test_experiments_route_over_their_arms() -> None:
    found = deployment(replace(BASE, experiment=experiment(50, 30, 20)))
    assert found.arms == {"arm0": 1, "arm1": 2, "arm2": 3}
    assert {found.route(f"user-{i}", 0.0).arm for i in range(200)} == {"arm0", "arm1", "arm2"}


def test_require_idle_names_the_running_rollout() -> None:
    policy = RolloutPolicy()
    record = Rollout(4, policy, start_rollout(policy, 0.0), 0.0)
    busy = deployment(replace(BASE, canary=4, canary_weight=5), record)
    with pytest.raises(ConflictError, match="a rollout of version 4 is progressing at 5%"):
        busy.require_idle("start a rollout")
    with pytest.raises(ConflictError, match="an experiment is running"):
        deployment(replace(BASE, experiment=experiment(50, 50))).require_idle("start a rollout")


def test_input_differences_are_spelled_out() -> None:
    four = Signature(tuple(FieldSpec(f"f{i}", "float32") for i in range(4)))
    six = Signature(tuple(FieldSpec(f"f{i}", "float32") for i in range(6)))
    wide = Signature((FieldSpec("f0", "float64"), *four.inputs[1:]))
    assert describe_input_difference(six, four) == "missing inputs f4, f5"
    assert describe_input_difference(four, six) == "extra inputs f4, f5"
    assert describe_input_difference(four, wide) == "f0 is float64[] instead of float32[]"


def test_figures_are_stored_as_strict_json() -> None:
    assert dumps({"ratio": float("inf"), "xs": (1.0, float("nan"))}) == (
        '{"ratio": "inf", "xs": [1.0, "nan"]}'
    )


def test_the_gates_moved_to_analysis_keep_their_order() -> None:
    empty = ArmTraffic(0, 0)
    names = [c.name for c in run_checks(RolloutPolicy(), empty, empty)]
    assert names == [
        "error_rate",
        "error_rate_vs_champion",
        "p99",
        "p99_vs_champion",
        "decisions",
        "live_quality",
        "prediction_divergence",
    ]
    assert len(CHECKS) == 7
