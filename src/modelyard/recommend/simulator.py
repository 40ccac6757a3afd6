"""Simulated users with hidden preferences who click on what they are shown.

Users and items have hidden vectors; a user's appeal for an item is a logistic of
their dot product plus the item's popularity. A list is examined top-down with
position bias (slot ``j`` seen with probability ``1 / (j + 1) ** bias``), and a seen
item is clicked with probability its appeal. Because the truth is known, a model's
expected clicks can be computed, not only sampled. Everything draws from the ``rng``
passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelyard.recommend.interactions import InteractionLog

__all__ = ["World"]


@dataclass(frozen=True)
class World:
    """``users`` x ``items`` with ``dims`` hidden tastes each."""

    user_vectors: np.ndarray
    item_vectors: np.ndarray
    item_bias: np.ndarray
    position_bias: float = 1.0

    @classmethod
    def create(
        cls, users: int, items: int, *, dims: int = 8, seed: int = 0, position_bias: float = 1.0
    ) -> World:
        rng = np.random.default_rng(seed)
        user_vectors = rng.normal(0, 1, (users, dims))
        item_vectors = rng.normal(0, 1, (items, dims))
        item_bias = rng.normal(-3.0, 0.7, items)
        return cls(user_vectors, item_vectors, item_bias, position_bias)

    @property
    def n_users(self) -> int:
        return len(self.user_vectors)

    @property
    def n_items(self) -> int:
        return len(self.item_vectors)

    @staticmethod
    def user_id(index: int) -> str:
        return f"u{index}"

    @staticmethod
    def item_id(index: int) -> str:
        return f"i{index}"

    def catalogue(self) -> np.ndarray:
        return np.asarray([self.item_id(i) for i in range(self.n_items)])

    def appeal(self, user: int) -> np.ndarray:
        """Probability that ``user`` clicks each item once they look at it."""
        logits = self.item_vectors @ self.user_vectors[user] * 0.8 + self.item_bias
        return np.asarray(1.0 / (1.0 + np.exp(-logits)))

    def examination(self, k: int) -> np.ndarray:
        return 1.0 / (np.arange(k) + 1.0) ** self.position_bias

    def respond(self, user: int, items: Sequence[str], rng: np.random.Generator) -> list[int]:
        """The positions ``user`` clicks in the list ``items``."""
        if not items:
            return []
        index = np.asarray([int(item[1:]) for item in items])
        p = self.appeal(user)[index] * self.examination(len(items))
        return np.flatnonzero(rng.random(len(items)) < p).tolist()

    def history(
        self, per_user: int, rng: np.random.Generator, start: float = 0.0
    ) -> InteractionLog:
        """A pre-period: each user interacts with ``per_user`` items drawn by appeal."""
        users, items, times = [], [], []
        for user in range(self.n_users):
            p = self.appeal(user) ** 2
            chosen = rng.choice(self.n_items, size=per_user, replace=False, p=p / p.sum())
            users += [self.user_id(user)] * per_user
            items += [self.item_id(i) for i in chosen]
            times += sorted(start + rng.random(per_user) * 86_400.0)
        return InteractionLog(np.asarray(users), np.asarray(items), np.asarray(times),
                              np.ones(len(users)))  # fmt: skip
