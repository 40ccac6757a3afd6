"""Judging a candidate ranker on traffic another policy served (off-policy evaluation).

Item-position model (Li et al., KDD 2018): each logged slot carries the propensity
the serving policy gave its item there; a deterministic candidate that would put the
same item in the same slot gets weight ``1 / propensity``, otherwise 0. IPS averages
the weighted clicks per list (unbiased, noisy); self-normalised IPS (SNIPS, Swaminathan
and Joachims 2015) divides by the mean weight instead (slightly biased, far steadier).
Both estimate the expected clicks per list the candidate would get; with one slot the
figure is its CTR.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from modelyard.recommend.feedback import Joined, Served

__all__ = ["OffPolicyEstimate", "estimate"]

# (user, k, served list) -> the candidate's list for that request
Candidate = Callable[[Served, int], Sequence[str]]


@dataclass(frozen=True)
class OffPolicyEstimate:
    lists: int
    ips: float
    snips: float
    matched_slots: int
    effective_sample_size: float


def estimate(
    served: Sequence[Served],
    joined: Joined,
    candidate: Candidate,
    slots: int | None = None,
    clip: float | None = None,
) -> OffPolicyEstimate:
    """IPS and SNIPS of ``candidate``'s expected clicks per list over the logged ``served``
    (the first ``slots`` positions only, if given).

    ``slots=1`` is the safest reading: at the top slot the logged propensity is the
    policy's marginal probability, with no assumption about the slots above; further down
    it is conditional on them, which the item-position model takes as given. ``clip``
    caps each weight (Bottou et al. 2013): less variance, biased low."""
    weights: list[float] = []
    rewards: list[float] = []
    for s in served:
        depth = len(s.items) if slots is None else min(slots, len(s.items))
        proposed = list(candidate(s, depth))
        clicked = joined.clicks.get(s.request_id, frozenset())
        shown = zip(s.items[:depth], s.propensities[:depth], strict=True)
        for position, (item, propensity) in enumerate(shown):
            match = position < len(proposed) and proposed[position] == item
            weights.append(1.0 / propensity if match and propensity > 0 else 0.0)
            rewards.append(1.0 if position in clicked else 0.0)
    w, r = np.asarray(weights), np.asarray(rewards)
    if clip is not None:
        w = np.minimum(w, clip)
    n = len(served)
    per_list = len(w) / n if n else 0.0
    ips = float((w * r).sum() / n) if n else 0.0
    snips = float((w * r).sum() / w.sum() * per_list) if w.sum() > 0 else 0.0
    ess = float(w.sum() ** 2 / (w * w).sum()) if (w * w).sum() > 0 else 0.0
    return OffPolicyEstimate(n, ips, snips, int((w > 0).sum()), ess)
