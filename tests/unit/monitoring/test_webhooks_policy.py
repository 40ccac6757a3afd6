"""The retry schedule of webhook deliveries: exponential, capped, jittered, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import ValidationError
from modelyard.monitoring.webhooks import RetryPolicy


def test_delays_double_up_to_the_cap_with_at_most_half_dropped() -> None:
    policy = RetryPolicy(base_delay_s=10.0, max_delay_s=300.0)
    rng = np.random.default_rng(0)
    for failed, ceiling in [(1, 10.0), (2, 20.0), (3, 40.0), (5, 160.0), (6, 300.0), (30, 300.0)]:
        delays = [policy.delay(failed, rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2
        assert max(delays) <= ceiling
        assert np.std(delays) > 0  # jittered: receivers that failed together spread out


def test_the_same_seed_gives_the_same_schedule() -> None:
    policy = RetryPolicy()
    first = [policy.delay(n, np.random.default_rng(7)) for n in range(1, 6)]
    again = [policy.delay(n, np.random.default_rng(7)) for n in range(1, 6)]
    assert first == again


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be >= 1, got 0"),
        ({"base_delay_s": 0.0}, "base_delay_s must be > 0, got 0.0"),
        ({"timeout_s": -1.0}, "timeout_s must be > 0, got -1.0"),
    ],
)
def test_bad_policies_say_what_is_allowed(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
