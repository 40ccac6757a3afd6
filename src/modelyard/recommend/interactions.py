"""The interaction log a recommender trains on: (user, item, time, weight) rows.

Plain numpy columns; ``matrix`` builds the user x item CSR matrix with the id maps,
``split_last`` holds out each user's latest interactions for offline evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from modelyard.errors import ValidationError

__all__ = ["InteractionLog", "Matrix"]


@dataclass(frozen=True)
class Matrix:
    """Users x items weights (CSR), with the ids of its rows and columns."""

    users: np.ndarray
    items: np.ndarray
    weights: sparse.csr_matrix


@dataclass(frozen=True)
class InteractionLog:
    """Parallel columns: who interacted with what, when, how strongly (clicks: 1)."""

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.users)
        for name in ("items", "times", "weights"):
            if len(getattr(self, name)) != n:
                raise ValidationError(f"interaction log column {name!r} must have {n} rows")
        object.__setattr__(self, "users", np.asarray(self.users, dtype=str))
        object.__setattr__(self, "items", np.asarray(self.items, dtype=str))
        object.__setattr__(self, "times", np.asarray(self.times, dtype=np.float64))
        object.__setattr__(self, "weights", np.asarray(self.weights, dtype=np.float32))
        weights = self.weights
        if n and (not np.all(np.isfinite(weights)) or bool(np.any(weights < 0))):
            raise ValidationError("interaction weights must be finite and non-negative")

    @classmethod
    def of(cls, rows: Iterable[tuple[str, str, float, float]]) -> InteractionLog:
        listed = list(rows)
        if not listed:
            empty = np.asarray([], dtype=str)
            return cls(empty, empty, np.zeros(0), np.zeros(0))
        users, items, times, weights = zip(*listed, strict=True)
        return cls(np.asarray(users), np.asarray(items), np.asarray(times), np.asarray(weights))

    def __len__(self) -> int:
        return len(self.users)

    def extend(self, other: InteractionLog) -> InteractionLog:
        """Both logs as one (the feedback loop appends served clicks to the training log)."""
        return InteractionLog(
            np.concatenate([self.users, other.users]),
            np.concatenate([self.items, other.items]),
            np.concatenate([self.times, other.times]),
            np.concatenate([self.weights, other.weights]),
        )

    def select(self, mask: np.ndarray) -> InteractionLog:
        return InteractionLog(
            self.users[mask], self.items[mask], self.times[mask], self.weights[mask]
        )

    def matrix(self, items: np.ndarray | None = None) -> Matrix:
        """The CSR matrix; ``items`` fixes the columns (a catalogue), else those seen."""
        if len(self) == 0:
            raise ValidationError("the interaction log is empty: nothing to train on")
        users, rows = np.unique(self.users, return_inverse=True)
        catalogue = np.unique(self.items) if items is None else np.asarray(items, dtype=str)
        order = np.argsort(catalogue)
        position = np.searchsorted(catalogue[order], self.items)
        position = np.clip(position, 0, len(catalogue) - 1)
        known = catalogue[order][position] == self.items
        columns = order[position]
        weights = sparse.csr_matrix(
            (self.weights[known], (rows[known], columns[known])),
            shape=(len(users), len(catalogue)),
            dtype=np.float32,
        )
        weights.sum_duplicates()
        return Matrix(users, catalogue, weights)

    def split_last(self, per_user: int = 1) -> tuple[InteractionLog, InteractionLog]:
        """(train, held out): each user's latest ``per_user`` interactions are held out, for
        users with more than that many."""
        order = np.lexsort((-self.times, self.users))
        users = self.users[order]
        starts = np.r_[True, users[1:] != users[:-1]]
        group = np.cumsum(starts) - 1
        rank = np.arange(len(users)) - np.flatnonzero(starts)[group]
        counts = np.bincount(group)
        held = (rank < per_user) & (counts[group] > per_user)
        mask = np.zeros(len(self), dtype=bool)
        mask[order[held]] = True
        return self.select(~mask), self.select(mask)
