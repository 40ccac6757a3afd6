"""Thompson-sampling allocation over recommenders, with a guard-rail.

Each arm's CTR gets a Beta(1 + clicked lists, 1 + lists without a click) posterior; an
arm's share of traffic is the probability that it is the best, estimated from draws
(Chapelle and Li, "An empirical evaluation of Thompson sampling", 2011). Every arm keeps
``floor`` percent so its estimate keeps improving, and an arm that breaks its guard-rail
(latency or errors, judged by the caller) is held at the floor whatever its CTR. The
weights sum to 100, as an experiment's arms do; moving them moves users between arms
(``routing.assignment``), so apply them between looks, not per request.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from modelyard.errors import ValidationError
from modelyard.routing.abtest import Conversions

__all__ = ["thompson_weights"]


def thompson_weights(
    arms: Mapping[str, Conversions],
    rng: np.random.Generator,
    *,
    draws: int = 10_000,
    floor: float = 5.0,
    held: Collection[str] = (),
) -> dict[str, float]:
    """Traffic weights (percent) for ``arms``; the arms in ``held`` get ``floor`` only."""
    names = list(arms)
    if len(names) < 2:
        raise ValidationError(f"a bandit needs at least two arms, got {names}")
    if not 0 <= floor * len(names) < 100:
        raise ValidationError(f"floor must leave room above it for {len(names)} arms, got {floor}")
    unknown = set(held) - set(names)
    if unknown:
        raise ValidationError(f"held names arms that do not exist: {sorted(unknown)}")
    samples = np.column_stack(
        [rng.beta(1 + a.successes, 1 + a.trials - a.successes, draws) for a in arms.values()]
    )
    open_arms = np.asarray([name not in held for name in names])
    if not open_arms.any():
        return dict.fromkeys(names, 100.0 / len(names))
    samples[:, ~open_arms] = -np.inf
    best = np.bincount(samples.argmax(axis=1), minlength=len(names)) / draws
    shares = floor + (100.0 - floor * len(names)) * best
    return dict(zip(names, shares.tolist(), strict=True))
