"""Offline ranking quality: NDCG@k, recall@k and catalogue coverage on held-out interactions."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from modelyard.recommend.interactions import InteractionLog

__all__ = ["OfflineQuality", "coverage", "evaluate", "ndcg_at_k", "recall_at_k"]

Ranker = Callable[[str, int], Sequence[str]]


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Binary-relevance NDCG@k: DCG of ``ranked[:k]`` over the best DCG possible."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Share of the relevant items found in ``ranked[:k]`` (capped at k, as Microsoft
    Recommenders' ``recall_at_k`` is not: here a user with 20 held-out items can reach 1)."""
    if not relevant:
        return 0.0
    hits = len(relevant.intersection(ranked[:k]))
    return hits / min(len(relevant), k)


def coverage(lists: Sequence[Sequence[str]], catalogue_size: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    shown = {item for items in lists for item in items}
    return len(shown) / catalogue_size if catalogue_size else 0.0


@dataclass(frozen=True)
class OfflineQuality:
    users: int
    ndcg: float
    recall: float
    coverage: float
    k: int


def evaluate(rank: Ranker, held_out: InteractionLog, k: int, catalogue_size: int) -> OfflineQuality:
    """Mean NDCG@k and recall@k over every user with held-out interactions."""
    relevant: dict[str, set[str]] = {}
    for user, item in zip(held_out.users.tolist(), held_out.items.tolist(), strict=True):
        relevant.setdefault(user, set()).add(item)
    ndcgs, recalls, lists = [], [], []
    for user, items in relevant.items():
        ranked = list(rank(user, k))
        lists.append(ranked)
        ndcgs.append(ndcg_at_k(ranked, items, k))
        recalls.append(recall_at_k(ranked, items, k))
    return OfflineQuality(
        len(relevant),
        float(np.mean(ndcgs)) if ndcgs else 0.0,
        float(np.mean(recalls)) if recalls else 0.0,
        coverage(lists, catalogue_size),
        k,
    )
