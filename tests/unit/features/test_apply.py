"""``apply``: plans added / changed / removed / unchanged definitions with what changed,
refuses a change that breaks a deployment, and writes versions on the in-memory fake."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import ConflictError, FeatureViewNotFoundError, ValidationError
from modelyard.features import (
    ON_DEMAND,
    Aggregation,
    Definitions,
    Entity,
    Feature,
    FeatureRegistry,
    FeatureView,
    FileSource,
    InMemoryDefinitionRepository,
    OnDemandFeature,
    StreamSource,
)
from modelyard.features.apply import Difference, plan_apply

CARD = Entity("card", key="card_id")
USER = Entity("user", key="user_id", dtype="int64")
EVENTS = StreamSource("transactions", fields=(Feature("amount", "float64"),))
STATS = FeatureView(
    "card_stats",
    CARD,
    EVENTS,
    aggregations=(Aggregation("count", "1h"), Aggregation("mean", "1d", "amount")),
)
PROFILE = FeatureView(
    "card_profile",
    CARD,
    FileSource("profile.parquet"),
    features=(Feature("limit", "float64"), Feature("country", "string")),
    ttl="30d",
)
RATIO = OnDemandFeature("amount_ratio", "amount / (card_stats.amount_mean_1d + 1)")
BASE = Definitions(views=(STATS, PROFILE), on_demand=(RATIO,))
T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def registry(
    used: Mapping[str, Mapping[str, set[str]]] | None = None,
    repository: InMemoryDefinitionRepository | None = None,
) -> FeatureRegistry:
    return FeatureRegistry(
        repository or InMemoryDefinitionRepository(), used=lambda: used or {}, clock=Clock()
    )


def names(changes: tuple[object, ...]) -> list[tuple[str, str]]:
    return [(c.kind, c.name) for c in changes]  # type: ignore[attr-defined]


# -- sets of definitions --------------------------------------------------------------


def test_a_set_holds_the_entities_of_its_views_sorted_and_once() -> None:
    found = Definitions.collect([PROFILE, STATS, CARD, RATIO, "not a definition", STATS])
    assert found.entities == (CARD,)
    assert [v.name for v in found.views] == ["card_profile", "card_stats"]
    assert found.on_demand == (RATIO,)
    assert len(found) == 4


def test_two_different_definitions_of_one_name_are_refused() -> None:
    other_card = Entity("card", key="pan")
    with pytest.raises(
        ValidationError,
        match="two different entity definitions are named 'card' "
        "\\(key 'pan' string and key 'card_id'",
    ):
        Definitions(entities=(other_card,), views=(STATS,))
    with pytest.raises(
        ValidationError, match="two different feature view definitions .* 'card_stats'"
    ):
        Definitions(views=(STATS, replace(STATS, ttl="2d")))


def test_a_view_may_not_take_the_on_demand_name() -> None:
    with pytest.raises(ValidationError, match="no feature view may be named 'on_demand'"):
        Definitions(views=(replace(STATS, name=ON_DEMAND),))


def test_an_on_demand_feature_must_read_views_and_features_of_the_set() -> None:
    with pytest.raises(
        ValidationError,
        match="'amount_ratio' reads card_stats:amount_mean_1d, but there is no view 'card_stats'",
    ):
        Definitions(views=(PROFILE,), on_demand=(RATIO,))
    short = replace(STATS, aggregations=(Aggregation("count", "1h"),))
    with pytest.raises(ValidationError, match="view 'card_stats' has no feature 'amount_mean_1d'"):
        Definitions(views=(short,), on_demand=(RATIO,))


# -- plans ----------------------------------------------------------------------------


def test_a_first_apply_adds_everything_and_a_second_changes_nothing() -> None:
    features = registry()
    plan = features.apply(BASE, actor="ana")
    assert names(plan.added) == [
        ("entity", "card"),
        ("view", "card_profile"),
        ("view", "card_stats"),
        ("on_demand", "amount_ratio"),
    ]
    assert not plan.changed
    assert not plan.removed
    again = features.apply(BASE, actor="ana")
    assert not again.has_changes
    assert len(again.unchanged) == 4
    assert [v.version for v in features.record("card_stats").history] == [1]


def test_a_change_lists_features_added_removed_and_retyped_and_each_setting() -> None:
    features = registry()
    features.apply(BASE)
    profile = replace(
        PROFILE,
        features=(Feature("limit", "int64"), Feature("segment", "string")),
        source=FileSource("profile-v2.parquet", created_time="written_at"),
        ttl="60d",
        online=False,
        tags={"team": "risk"},
    )
    plan = features.apply(replace(BASE, views=(STATS, profile)), actor="bo")
    (change,) = plan.changed
    assert change.name == "card_profile"
    assert change.features("added") == ["segment"]
    assert change.features("removed") == ["country"]
    assert change.features("retyped") == ["limit"]
    assert [str(d) for d in change.differences] == [
        "feature limit retyped float64 -> int64",
        "feature segment added (string)",
        "feature country removed (string)",
        "source.path: 'profile.parquet' -> 'profile-v2.parquet'",
        "source.created_time: none -> 'written_at'",
        "ttl: 30d -> 60d",
        "online: True -> False",
        "tags: {} -> {team=risk}",
    ]
    assert names(plan.unchanged) == [
        ("entity", "card"),
        ("view", "card_stats"),
        ("on_demand", "amount_ratio"),
    ]
    stored = features.record("card_profile")
    assert [(v.version, v.action, v.actor) for v in stored.history] == [
        (1, "added", None),
        (2, "changed", "bo"),
    ]
    assert stored.history[-1].summary == change.summary
    assert features.view("card_profile") == profile


def test_aggregation_changes_and_entity_changes_are_named() -> None:
    features = registry()
    features.apply(BASE)
    card = Entity("card", key="card_number")
    stats = replace(
        STATS,
        entity=card,
        aggregations=(
            Aggregation("count", "1h"),
            Aggregation("max", "1d", "amount", name="amount_mean_1d"),
        ),
    )
    profile = replace(PROFILE, entity=card)
    plan = features.plan(Definitions(views=(stats, profile), on_demand=(RATIO,)))
    assert names(plan.changed) == [
        ("entity", "card"),
        ("view", "card_profile"),
        ("view", "card_stats"),
    ]
    differences = {c.name: [str(d) for d in c.differences] for c in plan.changed}
    assert differences["card"] == ["key: 'card_id' -> 'card_number'"]
    assert differences["card_stats"] == [
        "aggregation amount_mean_1d: {function=mean, window=86400.0, column=amount, "
        "name=amount_mean_1d} -> {function=max, window=86400.0, column=amount, "
        "name=amount_mean_1d}",
        "entity.key: 'card_id' -> 'card_number'",
    ]


def test_an_on_demand_feature_change_names_expression_and_dtype() -> None:
    features = registry()
    features.apply(BASE)
    changed = OnDemandFeature("amount_ratio", "amount / card_stats.amount_mean_1d", "float32")
    plan = features.plan(replace(BASE, on_demand=(changed,)))
    (change,) = plan.changed
    assert [d.field for d in change.differences] == ["expression", "dtype"]
    assert change.differences[1] == Difference("dtype", "float64", "float32")
    assert change.differences[1].change == "retyped"


def test_removed_definitions_are_listed_and_can_come_back_with_a_new_version() -> None:
    features = registry()
    features.apply(BASE)
    plan = features.apply(Definitions(views=(PROFILE,)))
    assert names(plan.removed) == [("view", "card_stats"), ("on_demand", "amount_ratio")]
    with pytest.raises(FeatureViewNotFoundError, match="view 'card_stats'; defined: card_profile"):
        features.view("card_stats")
    record = features.record("card_stats")
    assert record.current is None
    assert [(v.version, v.action) for v in record.history] == [(1, "added"), (1, "removed")]
    features.apply(BASE)
    record = features.record("card_stats")
    assert record.current is not None
    assert record.current.version == 2
    assert [(v.version, v.action) for v in record.history][-1] == (2, "added")


def test_a_dry_run_writes_nothing() -> None:
    repository = InMemoryDefinitionRepository()
    features = registry(repository=repository)
    plan = features.apply(BASE, dry_run=True)
    assert len(plan.added) == 4
    assert repository.current() == []
    assert features.plan(BASE).added == plan.added


def test_a_plan_is_a_document() -> None:
    plan = plan_apply(Definitions(), Definitions(views=(STATS,)), {})
    document = plan.to_dict()
    assert [c["name"] for c in document["added"]] == ["card", "card_stats"]
    assert document["changed"] == document["removed"] == document["conflicts"] == []


# -- refusals -------------------------------------------------------------------------

USED = {
    "card_stats": {"fraud": {"amount_mean_1d"}, "limits": {"count_1h"}},
    ON_DEMAND: {"fraud": {"amount_ratio"}},
}


def applied(used: Mapping[str, Mapping[str, set[str]]] = USED) -> FeatureRegistry:
    features = registry(used)
    features.apply(BASE)
    return features


def test_removing_a_view_in_use_is_refused_naming_each_deployment() -> None:
    features = applied()
    with pytest.raises(
        ConflictError,
        match="refused, nothing applied: deployment 'fraud' reads card_stats:amount_mean_1d, and "
        "this apply removes view 'card_stats'; deployment 'limits' reads card_stats:count_1h",
    ):
        features.apply(Definitions(views=(PROFILE,)))
    assert features.view("card_stats") == STATS


def test_removing_or_retyping_a_feature_in_use_is_refused() -> None:
    features = applied()
    fewer = replace(STATS, aggregations=(Aggregation("mean", "1d", "amount"),))
    with pytest.raises(
        ConflictError, match="deployment 'limits' reads card_stats:count_1h, and this apply removes"
    ):
        features.apply(replace(BASE, views=(fewer, PROFILE)))
    events = StreamSource("transactions", fields=(Feature("amount", "int64"),))
    as_max = Aggregation("max", "1d", "amount", name="amount_mean_1d")
    retyped = replace(STATS, source=events, aggregations=(Aggregation("count", "1h"), as_max))
    with pytest.raises(
        ConflictError,
        match="deployment 'fraud' reads card_stats:amount_mean_1d, and this apply retypes it "
        "float64 -> int64",
    ):
        features.apply(replace(BASE, views=(retyped, PROFILE)))
    assert features.record("card_stats").current.version == 1  # type: ignore[union-attr]


def test_changing_the_entity_key_of_a_view_in_use_is_refused() -> None:
    features = applied()
    card = Entity("card", key="pan")
    moved = Definitions(
        views=(replace(STATS, entity=card), replace(PROFILE, entity=card)), on_demand=(RATIO,)
    )
    with pytest.raises(
        ConflictError,
        match="deployment 'fraud' reads card_stats, and this apply changes its entity key "
        "card_id -> pan",
    ):
        features.apply(moved)


def test_removing_or_retyping_an_on_demand_feature_in_use_is_refused() -> None:
    features = applied()
    with pytest.raises(ConflictError, match="reads on_demand:amount_ratio, and this apply removes"):
        features.apply(replace(BASE, on_demand=()))
    retyped = replace(RATIO, dtype="float32")
    with pytest.raises(ConflictError, match="on_demand:amount_ratio.*retypes it float64 -> float3"):
        features.apply(replace(BASE, on_demand=(retyped,)))
    # a new expression of the same type is fine
    rewritten = OnDemandFeature("amount_ratio", "amount / (card_stats.amount_mean_1d + 2)")
    assert len(features.apply(replace(BASE, on_demand=(rewritten,))).changed) == 1


def test_a_dry_run_is_refused_the_same_way() -> None:
    features = applied()
    with pytest.raises(ConflictError, match="removes view 'card_stats'"):
        features.apply(Definitions(views=(PROFILE,)), dry_run=True)


def test_changes_that_break_nothing_pass_when_the_view_is_in_use() -> None:
    features = applied()
    more = replace(
        STATS,
        aggregations=(*STATS.aggregations, Aggregation("sum", "1h", "amount")),
        description="per card",
        ttl="2d",
    )
    plan = features.apply(replace(BASE, views=(more, PROFILE)))
    assert plan.changed[0].features("added") == ["amount_sum_1h"]
    # a view nobody uses may lose anything
    plan = features.apply(replace(BASE, views=(more,)))
    assert names(plan.removed) == [("view", "card_profile")]


def test_the_plan_is_made_inside_the_write() -> None:
    """A plan is checked against the definitions as they stand when it is written."""
    repository = InMemoryDefinitionRepository()
    features = registry(USED, repository)
    features.apply(BASE)
    calls: list[int] = []
    original = repository.change

    def spying(decide, *, at, actor):  # type: ignore[no-untyped-def]
        calls.append(len(repository.current()))
        return original(decide, at=at, actor=actor)

    repository.change = spying  # type: ignore[method-assign]
    features.apply(BASE)
    assert calls == [4]


# -- the repository's own rules -------------------------------------------------------


def test_a_write_that_does_not_fit_the_state_is_a_bug_and_writes_nothing() -> None:
    from modelyard.features.repository import DefinitionWrite

    repository = InMemoryDefinitionRepository()
    registry(repository=repository).apply(Definitions(entities=(USER,)))
    bad = [
        DefinitionWrite("entity", "card", "added", {"name": "card"}, "d"),
        DefinitionWrite("entity", "user", "added", {"name": "user"}, "d"),
    ]
    with pytest.raises(ValueError, match="entity 'user' is defined already: it cannot be added"):
        repository.change(lambda _: bad, at=T0, actor=None)
    assert [d.name for d in repository.current()] == ["user"]
    with pytest.raises(ValueError, match="entity 'card' is not defined: it cannot be changed"):
        repository.change(
            lambda _: [DefinitionWrite("entity", "card", "changed", {}, "d")], at=T0, actor=None
        )


def test_reading_an_unknown_name_is_not_found() -> None:
    features = registry()
    with pytest.raises(FeatureViewNotFoundError, match="nothing named 'nope' was ever defined"):
        features.record("nope")
    with pytest.raises(FeatureViewNotFoundError, match="no on-demand feature 'nope'"):
        features.on_demand("nope")
    with pytest.raises(FeatureViewNotFoundError, match="no entity 'nope'"):
        features.entity("nope")


# -- property: a digest changes exactly when a difference is listed -------------------

VIEWS = st.builds(
    FeatureView,
    name=st.just("v"),
    entity=st.sampled_from(
        [CARD, Entity("card", key="pan"), Entity("card", key="card_id", dtype="int64")]
    ),
    source=st.sampled_from(
        [
            StreamSource("s", fields=tuple(Feature(n, "float64") for n in "abc")),
            FileSource("a.parquet"),
            FileSource("b.csv", created_time="c"),
        ]
    ),
    features=st.lists(
        st.builds(Feature, st.sampled_from(["a", "b", "c"]), st.sampled_from(["int64", "float64"])),
        unique_by=lambda f: f.name,
        max_size=3,
    ).map(tuple),
    aggregations=st.lists(
        st.builds(
            Aggregation,
            st.sampled_from(["count", "time_since_last"]),
            st.sampled_from(["1h", "1d"]),
        ),
        unique_by=lambda a: a.feature_name,
        min_size=1,
        max_size=2,
    ).map(tuple),
    ttl=st.sampled_from([None, "1d", "2d"]),
    online=st.booleans(),
    description=st.sampled_from(["", "x"]),
)


@given(VIEWS, VIEWS)
def test_a_plan_changes_a_view_exactly_when_its_digest_does_and_says_what(
    old: FeatureView, new: FeatureView
) -> None:
    plan = plan_apply(Definitions(views=(old,)), Definitions(views=(new,)), {})
    (view_change,) = plan.of("changed", "view") or plan.of("unchanged", "view")
    assert (view_change.action == "changed") == (old.digest != new.digest)
    assert bool(view_change.differences) == (old.digest != new.digest)
    removed = {n for n in old.feature_names if n not in new.feature_names}
    assert set(view_change.features("removed")) == removed
