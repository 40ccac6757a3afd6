"""Sampling and retention decisions of the inference log."""

from __future__ import annotations

import pytest

from modelyard.errors import ValidationError
from modelyard.monitoring.inference_log.policy import LogPolicy, retention_cutoffs, sampled


def test_sampling_is_a_stable_choice_per_request_id_near_the_rate() -> None:
    ids = [f"req-{i}" for i in range(20_000)]
    kept = [i for i in ids if sampled(i, 0.1)]
    assert 0.09 < len(kept) / len(ids) < 0.11
    assert kept == [i for i in ids if sampled(i, 0.1)]  # the same in every worker and replay
    assert set(kept) <= {i for i in ids if sampled(i, 0.5)}  # a higher rate keeps a superset
    assert all(sampled(i, 1.0) for i in ids[:100])
    assert not any(sampled(i, 0.0) for i in ids[:100])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": 1.5}, "sample_rate must be between 0 and 1"),
        ({"sample_rate": -0.1}, "sample_rate must be between 0 and 1"),
        ({"ttl_s": 0}, "ttl_s must be a positive number"),
        ({"ttl_s": float("inf")}, "ttl_s must be a positive number"),
    ],
)
def test_policy_bounds(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LogPolicy(**kwargs)


def test_retention_cutoffs_follow_each_deployments_ttl_or_the_default() -> None:
    policies = {"fraud": LogPolicy(ttl_s=100.0), "recs": LogPolicy(sample_rate=0.5)}
    cutoffs = retention_cutoffs(["fraud", "recs", "other"], policies, LogPolicy(ttl_s=10.0), 1000.0)
    assert cutoffs == {"fraud": 900.0, "other": 990.0}  # recs has no TTL of its own
    assert retention_cutoffs(["a"], {}, LogPolicy(), 1000.0) == {}
