"""Weighted traffic assignment over arms: sticky by routing key, or by a passed-in draw.

A ``TrafficSplit`` lays its arms side by side on [0, 1) in the order given, each
as wide as its weight. A routing key is hashed with the deployment's salt
(keyed BLAKE2b, stable across processes and machines, unlike ``hash()``) to a
point in [0, 1); without a key the caller passes a uniform random draw. With
two arms, growing the second arm's weight only widens its interval from the
right-hand side downwards, so a key that was already on the canary stays on it
as the canary steps up.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from collections.abc import Mapping
from numbers import Real

from modelyard.errors import ValidationError

__all__ = ["TrafficSplit", "bucket"]

# 53 bits: exactly what a double holds below 1.0, so every bucket is distinct and < 1.
_BITS = 53
_SCALE = 2.0**-_BITS
_SHIFT = 64 - _BITS
_WEIGHT_SUM = 100.0
# Float weights such as 33.3 + 33.3 + 33.4 miss 100 by an ulp or so.
_SUM_TOLERANCE = 1e-6


def _salt_key(salt: str | bytes) -> bytes:
    raw = salt.encode() if isinstance(salt, str) else bytes(salt)
    # BLAKE2b takes a key of at most 64 bytes; longer salts are folded first.
    return raw if len(raw) <= 64 else hashlib.blake2b(raw, digest_size=32).digest()


def bucket(key: str | bytes, salt: str | bytes) -> float:
    """Map ``key`` to a uniform point in [0, 1), the same in every process for a given salt."""
    data = key.encode() if isinstance(key, str) else key
    digest = hashlib.blake2b(data, digest_size=8, key=_salt_key(salt)).digest()
    return (int.from_bytes(digest, "big") >> _SHIFT) * _SCALE


class TrafficSplit:
    """Assign requests to arms in proportion to weights that sum to 100.

    ``TrafficSplit({"champion": 95, "canary": 5}, salt="deploy-7")``; then
    ``assign(key="user-42")`` (sticky) or ``assign(draw=rng.random())``.
    """

    __slots__ = ("_arms", "_edges", "_hasher", "_weights")

    def __init__(self, weights: Mapping[str, float], salt: str | bytes) -> None:
        self._weights = _validate(weights)
        self._arms = tuple(self._weights)
        edges: list[float] = []
        total = 0.0
        for weight in self._weights.values():
            total += weight
            edges.append(total / _WEIGHT_SUM)
        # The last edge is 1.0 exactly, so rounding never leaves a point unassigned.
        edges[-1] = 1.0
        self._edges = tuple(edges)
        # Hashing continues from a copy of a keyed prototype: cheaper than rekeying per call.
        self._hasher = hashlib.blake2b(digest_size=8, key=_salt_key(salt))

    @property
    def weights(self) -> dict[str, float]:
        """The arms and their weights, in layout order."""
        return dict(self._weights)

    def assign(self, key: str | bytes | None = None, *, draw: float | None = None) -> str:
        """Return the arm for ``key`` (sticky), or for ``draw``, uniform in [0, 1), without one."""
        if key is not None:
            hasher = self._hasher.copy()
            hasher.update(key.encode() if isinstance(key, str) else key)
            point = (int.from_bytes(hasher.digest(), "big") >> _SHIFT) * _SCALE
        elif draw is not None:
            if not 0.0 <= draw < 1.0:
                raise ValidationError(f"draw must be in [0, 1), got {draw!r}")
            point = draw
        else:
            raise ValidationError("assign needs a routing key or a random draw, got neither")
        # bisect_right skips zero-width arms: a point on an edge belongs to the arm above it.
        return self._arms[bisect_right(self._edges, point)]

    def __repr__(self) -> str:
        return f"TrafficSplit({self._weights!r})"


def _validate(weights: Mapping[str, float]) -> dict[str, float]:
    if not weights:
        raise ValidationError("weights must name at least one arm, got none")
    clean: dict[str, float] = {}
    for name, weight in weights.items():
        if not isinstance(name, str) or not name:
            raise ValidationError(f"arm names must be non-empty strings, got {name!r}")
        if isinstance(weight, bool) or not isinstance(weight, Real):
            raise ValidationError(f"weight of arm {name!r} must be a number, got {weight!r}")
        value = float(weight)
        if not math.isfinite(value) or not 0.0 <= value <= _WEIGHT_SUM:
            raise ValidationError(
                f"weight of arm {name!r} must be between 0 and 100, got {weight!r}"
            )
        clean[name] = value
    total = math.fsum(clean.values())
    if abs(total - _WEIGHT_SUM) > _SUM_TOLERANCE:
        listed = ", ".join(f"{n}={w:g}" for n, w in clean.items())
        raise ValidationError(f"weights must sum to 100, got {total:g} ({listed})")
    return clean
