"""The recommender format: exclusions, clamping, cold start, exploration, a safe round trip."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import ValidationError
from modelyard.recommend import InteractionLog, train_popularity
from modelyard.registry.flavours.recommender import RecommenderModel, RecommenderPredictor
from modelyard.registry.signature import infer_signature

LOG = InteractionLog.of(
    [("alice", "a", 1, 1), ("alice", "b", 2, 1), ("bob", "a", 1, 1), ("carol", "a", 1, 1),
     ("carol", "c", 2, 1), ("dan", "d", 3, 1)]
)  # fmt: skip


def factor_model(epsilon: float = 0.0) -> RecommenderModel:
    base = train_popularity(LOG)
    # alice likes d most, then c; everyone else likes a
    items = np.eye(4, dtype=np.float32)
    users = np.asarray([[0, 0, 1, 2], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], np.float32)
    return RecommenderModel(
        base.users, base.items, base.popularity, base.seen_indptr, base.seen_indices,
        users, items, epsilon, "mf-test",
    )  # fmt: skip


def test_seen_items_are_excluded_by_default_and_can_be_shown() -> None:
    model = factor_model()
    assert model.recommend("alice", 4).items == ["d", "c"]  # a and b were seen
    assert model.recommend("alice", 2, exclude_seen=False).items == ["d", "c"]
    assert model.recommend("alice", 4, exclude_seen=False).items[:2] == ["d", "c"]


def test_unknown_user_gets_popularity_and_says_so() -> None:
    found = factor_model().recommend("zoe", 2)
    assert found.fallback
    assert found.items[0] == "a"  # three users of four had a
    assert not factor_model().recommend("alice", 1).fallback


def test_unknown_excluded_item_is_ignored_and_k_is_clamped() -> None:
    found = factor_model().recommend("alice", 50, exclude=["nope", "d"])
    assert found.items == ["c"]
    assert factor_model().recommend("alice", 0).items == []


def test_candidates_restrict_the_list() -> None:
    assert factor_model().recommend("bob", 5, candidates=["c", "d", "ghost"]).items in (
        ["c", "d"],
        ["d", "c"],
    )


def test_exploration_logs_the_propensity_of_each_slot() -> None:
    model = factor_model(epsilon=0.5)
    greedy = model.with_epsilon(0.0).recommend("zoe", 4)
    assert greedy.propensities == [1.0] * 4
    for seed in range(20):
        found = model.recommend("zoe", 3, seed=seed)
        assert len(set(found.items)) == 3
        for p in found.propensities:
            assert 0 < p <= 1
        # the same seed draws the same list (a logged request can be replayed)
        assert model.recommend("zoe", 3, seed=seed) == found


def test_round_trip_without_pickle() -> None:
    model = factor_model(epsilon=0.1)
    loaded = RecommenderModel.from_bytes(model.to_bytes())
    assert loaded.kind == "mf-test"
    assert loaded.recommend("alice", 2, seed=3) == model.recommend("alice", 2, seed=3)
    with pytest.raises(ValidationError, match="epsilon"):
        model.with_epsilon(1.0)


def test_top_k_of_a_large_catalogue_is_exact() -> None:
    rng = np.random.default_rng(0)
    n = 50_000
    users, items = np.asarray(["u"]), np.asarray([f"i{i}" for i in range(n)])
    popularity = rng.random(n).astype(np.float32)
    popularity[:100] = 2.0  # ties at the top, some of them seen
    model = RecommenderModel(
        users, items, popularity, np.asarray([0, 3]), np.asarray([0, 1, 2]), kind="popularity"
    )
    found = model.recommend("u", 20, exclude=["i3"])
    assert set(found.items) <= {f"i{i}" for i in range(4, 100)}
    unseen = np.delete(popularity, [0, 1, 2, 3])
    assert found.scores[-1] == np.sort(unseen)[-20]


def test_predictor_answers_each_row_and_tolerates_a_malformed_list() -> None:
    model = factor_model()
    columns = {
        "user": np.asarray(["alice", "zoe"], dtype=object),
        "k": np.asarray([2, 1]),
        "exclude": np.asarray(['["d"]', "not json"], dtype=object),
        "candidates": np.asarray(["", ""], dtype=object),
        "exclude_seen": np.asarray([1, 1]),
        "seed": np.asarray([0, 0]),
    }
    predictor = RecommenderPredictor(model, infer_signature(columns))
    outputs = predictor.predict_prepared(columns)
    assert outputs["fallback"].tolist() == [0, 1]
    assert '"items":["c"]' in outputs["recommendations"][0]
    assert '"items":["a"]' in outputs["recommendations"][1]
