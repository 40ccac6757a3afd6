"""Training recommenders: implicit-feedback matrix factorisation (``implicit``) and popularity.

``implicit`` (Ben Frederickson's library: ALS of Hu, Koren and Volinsky 2008, and BPR)
does the factorisation; this module only turns an ``InteractionLog`` into its CSR
input and its factors into a ``RecommenderModel``, the registry's safe format.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from modelyard.errors import ConfigurationError
from modelyard.recommend.interactions import InteractionLog, Matrix
from modelyard.registry.flavours.recommender import RecommenderModel

__all__ = ["example_requests", "train_mf", "train_popularity"]


def _popularity(matrix: Matrix) -> np.ndarray:
    counts = np.asarray((matrix.weights > 0).sum(axis=0)).ravel().astype(np.float32)
    return counts / max(float(counts.max()), 1.0)


def _base(matrix: Matrix) -> dict[str, Any]:
    csr = matrix.weights
    return {
        "users": matrix.users,
        "items": matrix.items,
        "popularity": _popularity(matrix),
        "seen_indptr": csr.indptr.astype(np.int64),
        "seen_indices": csr.indices.astype(np.int64),
    }


def train_popularity(
    log: InteractionLog, *, items: np.ndarray | None = None, epsilon: float = 0.0
) -> RecommenderModel:
    """Everyone gets the items most users interacted with (the baseline)."""
    return RecommenderModel(**_base(log.matrix(items)), epsilon=epsilon, kind="popularity")


def train_mf(
    log: InteractionLog,
    *,
    items: np.ndarray | None = None,
    algorithm: Literal["als", "bpr"] = "als",
    factors: int = 32,
    iterations: int = 15,
    regularization: float = 0.05,
    alpha: float = 10.0,
    seed: int = 0,
    epsilon: float = 0.0,
) -> RecommenderModel:
    """Implicit ALS (or BPR) on ``log``; unknown users fall back to popularity when served."""
    try:
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError as error:  # pragma: no cover - the extra is missing
        raise ConfigurationError(
            "matrix factorisation needs implicit: pip install 'modelyard[recommend]'"
        ) from error
    matrix = log.matrix(items)
    model: Any
    # implicit parallelises itself; a threaded BLAS under it only oversubscribes the cores.
    limits = threadpool_limits(1, "blas")
    if algorithm == "als":
        model = AlternatingLeastSquares(
            factors=factors, iterations=iterations, regularization=regularization,
            alpha=alpha, random_state=seed, num_threads=1, calculate_training_loss=False,
        )  # fmt: skip
    else:
        model = BayesianPersonalizedRanking(
            factors=factors, iterations=iterations, regularization=regularization,
            random_state=seed, num_threads=1,
        )  # fmt: skip
    try:
        model.fit(matrix.weights.tocsr(), show_progress=False)
    finally:
        limits.restore_original_limits()
    return RecommenderModel(
        **_base(matrix),
        user_factors=np.asarray(model.user_factors, dtype=np.float32),
        item_factors=np.asarray(model.item_factors, dtype=np.float32),
        epsilon=epsilon,
        kind=f"mf-{algorithm}",
    )


def example_requests(model: RecommenderModel, rows: int = 64) -> dict[str, np.ndarray]:
    """Requests in the columns the recommender flavour takes, to register ``model`` with:
    the registry infers the signature and the reference profile from them. Users spread
    over the whole id map and seeds drawn as serving draws them (48 bits), so that the
    drift checks compare live traffic with traffic like it."""
    users = model.users[np.linspace(0, len(model.users) - 1, rows).astype(np.int64)]
    return {
        "user": users.astype(object),
        "k": np.full(rows, 10, dtype=np.int64),
        "exclude": np.full(rows, "[]", dtype=object),
        "candidates": np.full(rows, "", dtype=object),
        "exclude_seen": np.ones(rows, dtype=np.int64),
        "seed": np.random.default_rng(0).integers(0, 2**48, rows, dtype=np.int64),
    }
