"""Online reads over the in-memory store: TTL edges, aggregations as of a time, missing
entities and their mask, several views and entities, one store call per view."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import FeatureViewNotFoundError, ValidationError
from modelyard.features.definitions import (
    Aggregation,
    Entity,
    Feature,
    FeatureView,
    FileSource,
    StreamSource,
)
from modelyard.features.online.memory import InMemoryOnlineStore
from modelyard.features.online.reads import OnlineQuery, get_online_features
from modelyard.features.online.store import Event, LatestRow

T = 1_700_000_000.0
CARD = Entity("card", "card_id")
MERCHANT = Entity("merchant", "merchant_id", dtype="int64")
TXN = StreamSource(
    "txn", fields=(Feature("amount", "float64"), Feature("n", "int64"), Feature("shop", "string"))
)
PROFILE = FeatureView(
    "profile",
    CARD,
    FileSource("p.parquet"),
    features=(Feature("age", "int64"), Feature("score", "float64"), Feature("tier", "string")),
    ttl="1h",
)
ACTIVITY = FeatureView(
    "activity",
    CARD,
    TXN,
    features=(Feature("amount", "float64"),),
    aggregations=(
        Aggregation("count", "10m"),
        Aggregation("sum", "1h", "n"),
        Aggregation("mean", "1h", "amount"),
        Aggregation("max", "1h", "n"),
        Aggregation("distinct", "1h", "shop"),
        Aggregation("time_since_last", "1h"),
    ),
    ttl=None,
)
SHOP = FeatureView(
    "shop", MERCHANT, FileSource("m.parquet"), features=(Feature("score", "float64"),), ttl="1d"
)
VIEWS = {v.name: v for v in (PROFILE, ACTIVITY, SHOP)}


class CountingStore(InMemoryOnlineStore):
    """The fake, counting the reads it answers."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, str, int]] = []

    def get_latest(self, view: str, keys: Sequence[str]) -> list[LatestRow | None]:
        self.reads.append(("latest", view, len(keys)))
        return super().get_latest(view, keys)

    def get_events(self, view: str, keys: Sequence[str], since: float) -> list[list[Event]]:
        self.reads.append(("events", view, len(keys)))
        return super().get_events(view, keys, since)


class CombinedStore(CountingStore):
    def get_latest_and_events(
        self, view: str, keys: Sequence[str], since: float
    ) -> tuple[list[LatestRow | None], list[list[Event]]]:
        self.reads.append(("both", view, len(keys)))
        return InMemoryOnlineStore.get_latest(self, view, keys), InMemoryOnlineStore.get_events(
            self, view, keys, since
        )


@pytest.fixture
def store() -> CountingStore:
    store = CountingStore()
    store.put_latest(
        "profile",
        [("c1", T - 60, {"age": 30, "score": 0.5, "tier": "gold"}), ("c2", T - 3600, {"age": 41})],
    )
    store.put_latest("activity", [("c1", T - 30, {"amount": 12.5})])
    store.add_events(
        "activity",
        [
            Event("c1", T - 30, "e1", {"amount": 12.5, "n": 2, "shop": "a"}),
            Event("c1", T - 700, "e2", {"amount": 7.5, "n": 3, "shop": "b"}),
            Event("c1", T - 4000, "e3", {"amount": 100.0, "n": 50, "shop": "c"}),
            Event("c1", T + 5, "e4", {"amount": 1.0, "n": 1, "shop": "d"}),  # after t
        ],
    )
    store.put_latest("shop", [("7", T - 10, {"score": 0.9})])
    store.reads.clear()
    return store


def test_plain_features_with_nulls_and_the_found_mask(store: CountingStore) -> None:
    got = get_online_features(
        store, VIEWS, ["c1", "c2", "nobody"], ["profile:age", "profile:tier", "profile:score"], T
    )

    assert got.columns == {
        "age": [30, None, None],  # c2's row is exactly one TTL old: out
        "tier": ["gold", None, None],
        "score": [0.5, None, None],
    }
    assert got.found == {"profile": [True, False, False]}
    assert got.missing() == [1, 2]
    assert got.dtypes == {"age": "int64", "tier": "string", "score": "float64"}


def test_ttl_edges_and_rows_newer_than_the_read(store: CountingStore) -> None:
    def age_at(t: float) -> Any:
        return get_online_features(store, VIEWS, ["c2"], ["profile:age"], t).columns["age"][0]

    assert age_at(T - 3600) == 41  # event_time == t
    assert age_at(T - 1) == 41  # just inside (t - ttl, t]
    assert age_at(T) is None  # event_time == t - ttl
    assert age_at(T - 3601) is None  # the row is newer than the read


def test_aggregations_as_of_the_read_with_their_declared_types(store: CountingStore) -> None:
    refs = [f"activity:{name}" for name in ACTIVITY.feature_names]

    got = get_online_features(store, VIEWS, ["c1", "c9"], refs, T)

    assert got.columns == {
        "amount": [12.5, None],
        "count_10m": [1, 0],  # e2 is 700 s old: outside 10 min
        "n_sum_1h": [5, 0],
        "amount_mean_1h": [10.0, None],
        "n_max_1h": [3, None],
        "shop_distinct_1h": [2, 0],
        "time_since_last_1h": [30.0, None],
    }
    assert [type(v) for v in (got.columns["n_sum_1h"][0], got.columns["n_sum_1h"][1])] == [int, int]
    assert got.found == {"activity": [True, False]}


def test_one_store_call_per_view_for_many_entities(store: CountingStore) -> None:
    keys = [f"c{i}" for i in range(100)]
    get_online_features(store, VIEWS, keys, ["profile:age", "activity:count_10m"], T)

    assert store.reads == [("latest", "profile", 100), ("events", "activity", 100)]


def test_a_view_with_rows_and_events_is_one_call_where_the_store_reads_both() -> None:
    store = CombinedStore()
    store.put_latest("activity", [("c1", T - 5, {"amount": 3.0})])
    store.add_events("activity", [Event("c1", T - 5, "e", {"amount": 3.0, "n": 1, "shop": "x"})])

    got = get_online_features(store, VIEWS, ["c1"], ["activity:amount", "activity:count_10m"], T)

    assert store.reads == [("both", "activity", 1)]
    assert got.columns == {"amount": [3.0], "count_10m": [1]}


def test_repeated_entities_are_read_once_and_answered_in_order(store: CountingStore) -> None:
    got = get_online_features(store, VIEWS, ["c2", "c1", "c2", "c1"], ["profile:age"], T - 50)

    assert got.columns["age"] == [41, 30, 41, 30]
    assert store.reads == [("latest", "profile", 2)]


def test_views_of_several_entities_take_their_keys_by_column(store: CountingStore) -> None:
    got = get_online_features(
        store,
        list(VIEWS.values()),
        {"card_id": ["c1", "c2"], "merchant_id": np.array([7, 8])},
        ["profile:score", "shop:score"],
        datetime.fromtimestamp(T, UTC),
        full_names=True,
    )

    assert got.columns == {"profile__score": [0.5, None], "shop__score": [0.9, None]}
    assert got.found == {"profile": [True, False], "shop": [True, False]}
    assert got.all_found == [True, False]


def test_arrays_keep_types_and_mark_nulls(store: CountingStore) -> None:
    got = get_online_features(
        store, VIEWS, ["c1", "c2"], ["profile:age", "profile:score", "profile:tier"], T - 50
    )
    arrays = got.arrays()

    assert arrays["age"].dtype == np.int64
    assert arrays["age"].tolist() == [30, 41]
    assert np.isnan(arrays["score"][1])
    assert arrays["tier"].tolist() == ["gold", None]
    nulls = get_online_features(store, VIEWS, ["c1", "zz"], ["profile:age"], T).arrays()
    assert nulls["age"].dtype == np.float64


@pytest.mark.parametrize(
    ("refs", "error", "match"),
    [
        (["nope:age"], FeatureViewNotFoundError, "no feature view 'nope'"),
        (["profile:height"], FeatureViewNotFoundError, "view 'profile' has no feature 'height'"),
        (["profile:score", "shop:score"], ValidationError, r"\['score'\] come from more than one"),
        (["profile"], ValidationError, "a feature is named 'view:feature'"),
    ],
)
def test_bad_references_name_what_is_wrong(
    store: CountingStore, refs: list[str], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        get_online_features(store, VIEWS, {"card_id": ["c1"], "merchant_id": [1]}, refs, T)
    assert store.reads == []


def test_bad_keys_and_offline_views_are_refused(store: CountingStore) -> None:
    offline = FeatureView(
        "cold", CARD, FileSource("c.parquet"), features=(Feature("x", "int64"),), online=False
    )
    with pytest.raises(ValidationError, match="view 'cold' is not served online"):
        get_online_features(store, [offline], ["c1"], ["cold:x"], T)
    with pytest.raises(ValidationError, match=r"keyed by 'merchant_id'.*lack"):
        get_online_features(store, VIEWS, {"card_id": ["c1"]}, ["shop:score"], T)
    with pytest.raises(ValidationError, match=r"entity key 'card_id' \(row 1\).*got 1.5"):
        get_online_features(store, VIEWS, ["c1", 1.5], ["profile:age"], T)
    with pytest.raises(ValidationError, match="the time of an online read"):
        get_online_features(store, VIEWS, ["c1"], ["profile:age"], "yesterday")


# -- against a brute force of the definitions ---------------------------------------------

events_strategy = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(-4000, 100), st.integers(-5, 5)),
    max_size=25,
)


@given(events=events_strategy, at_offset=st.integers(-100, 100))
def test_aggregates_match_the_definition(
    events: list[tuple[str, int, int]], at_offset: int
) -> None:
    store = InMemoryOnlineStore()
    store.add_events(
        "activity",
        [
            Event(k, T + dt, f"e{i}", {"n": n, "amount": float(n), "shop": str(n % 3)})
            for i, (k, dt, n) in enumerate(events)
        ],
    )
    at = T + at_offset
    refs = ["activity:count_10m", "activity:n_sum_1h", "activity:n_max_1h"]

    got = get_online_features(store, VIEWS, ["a", "b", "c"], refs, at)

    for position, key in enumerate(["a", "b", "c"]):
        last_hour = [n for k, dt, n in events if k == key and at - 3600 < T + dt <= at]
        last_10m = [n for k, dt, n in events if k == key and at - 600 < T + dt <= at]
        assert got.columns["count_10m"][position] == len(last_10m)
        assert got.columns["n_sum_1h"][position] == sum(last_hour)
        assert got.columns["n_max_1h"][position] == (max(last_hour) if last_hour else None)
        assert got.found["activity"][position] == bool(last_hour)


def test_a_query_planned_once_reads_again_and_again(store: CountingStore) -> None:
    query = OnlineQuery(VIEWS, ["activity:count_10m", "profile:age"])

    first = query.read(store, ["c1"], T)
    second = query.read(store, ["c2", "c1"], T - 50)

    assert list(first.columns) == ["count_10m", "age"]  # in the order asked
    assert first.columns == {"count_10m": [1], "age": [30]}
    assert second.columns == {"count_10m": [0, 0], "age": [41, 30]}  # e1 is after T - 50
    assert query.dtypes == {"count_10m": "int64", "age": "int64"}
