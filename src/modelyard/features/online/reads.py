"""Online reads: the features of many entities as of a time, from the online store.

A plain feature is the value of the entity's latest row, or null when there is none,
when it is newer than ``at`` or when it is as old as the view's TTL (``definitions``:
``event_time`` in ``(at - ttl, at]``). An aggregation is ``windows.aggregate`` over the
entity's events since ``at`` minus the largest window asked for, so a served value is
the one the offline join computes for a label at ``at``. One store round trip per view
for all the entities (one for its latest rows and events together where the store
offers ``get_latest_and_events``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.errors import FeatureViewNotFoundError, ValidationError
from modelyard.features.definitions import (
    Aggregation,
    Dtype,
    FeatureRef,
    FeatureView,
    parse_refs,
)
from modelyard.features.epoch import epoch_seconds
from modelyard.features.online.keys import key_texts
from modelyard.features.online.store import Event, LatestRow, OnlineStore
from modelyard.features.windows import aggregate, horizon

_EMPTY: Mapping[str, Any] = {}
EntityKeys = Sequence[Any] | npt.NDArray[Any] | Mapping[str, Sequence[Any] | npt.NDArray[Any]]


@dataclass(frozen=True)
class OnlineFeatures:
    """One value per entity for each feature, in the order the entities were given.

    ``columns`` hold plain Python values (``None`` for null) keyed by feature name (or
    ``view__feature`` with ``full_names``); ``dtypes`` their declared types; ``found``,
    per view, whether the store had anything for each entity as of ``at`` (a usable
    latest row, or an event in the window), so a caller can tell a missing entity from
    one whose values are null."""

    columns: dict[str, list[Any]]
    dtypes: dict[str, Dtype]
    found: dict[str, list[bool]]

    @property
    def all_found(self) -> list[bool]:
        """Whether each entity was found in every view."""
        masks = list(self.found.values())
        return [all(flags) for flags in zip(*masks, strict=True)] if masks else []

    def missing(self) -> list[int]:
        """The positions of the entities some view did not find."""
        return [i for i, ok in enumerate(self.all_found) if not ok]

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The columns as numpy arrays: floats with NaN for null, int64 (float64 with NaN
        where a value is null), bool (object where one is null), strings as objects."""
        return {name: _array(values, self.dtypes[name]) for name, values in self.columns.items()}


def get_online_features(
    store: OnlineStore,
    views: Mapping[str, FeatureView] | Iterable[FeatureView],
    entity_keys: EntityKeys,
    refs: Sequence[str | FeatureRef],
    at: Any,
    *,
    full_names: bool = False,
) -> OnlineFeatures:
    """The features ``refs`` (``"view:feature"``) of the entities ``entity_keys`` as of
    ``at`` (epoch seconds or a datetime).

    ``entity_keys`` is one key per entity (every view is keyed by it), or a mapping from
    an entity's key column to its keys (views of several entities in one call). An
    unknown view or feature is a ``FeatureViewNotFoundError``; a view that is not online
    or a key column that is missing is a ``ValidationError``. A caller that reads the
    same features again and again (serving) builds their ``OnlineQuery`` once."""
    return OnlineQuery(views, refs, full_names=full_names).read(store, entity_keys, at)


@dataclass(frozen=True)
class _ViewPlan:
    """What to read from one view and where its values go."""

    view: FeatureView
    plain: tuple[str, ...]  # plain features asked for
    aggregations: tuple[Aggregation, ...]  # aggregations asked for
    ints: frozenset[str]  # aggregations served as int64
    since: float  # how far back events matter, before the read's time
    names: tuple[tuple[str, str], ...]  # (feature, output column)


class OnlineQuery:
    """The reads of a fixed list of features, checked and planned once: ``read`` then only
    reads. Serving holds one per deployment."""

    def __init__(
        self,
        views: Mapping[str, FeatureView] | Iterable[FeatureView],
        refs: Sequence[str | FeatureRef],
        *,
        full_names: bool = False,
    ) -> None:
        by_name = dict(views) if isinstance(views, Mapping) else {v.name: v for v in views}
        wanted = _group(parse_refs(refs), by_name)
        names = _column_names(wanted, full_names)
        self.dtypes: dict[str, Dtype] = {}
        plans = []
        for view, asked_refs in wanted.values():
            asked = {ref.feature for ref in asked_refs}
            aggregations = tuple(a for a in view.aggregations if a.feature_name in asked)
            plans.append(
                _ViewPlan(
                    view,
                    tuple(f.name for f in view.features if f.name in asked),
                    aggregations,
                    frozenset(
                        a.feature_name
                        for a in aggregations
                        if view.dtype_of(a.feature_name) == "int64"
                    ),
                    horizon(aggregations),
                    tuple((ref.feature, names[ref]) for ref in asked_refs),
                )
            )
            for ref in asked_refs:
                self.dtypes[names[ref]] = view.dtype_of(ref.feature)
        self._plans = tuple(plans)
        self.columns = [names[ref] for _, refs_of_view in wanted.values() for ref in refs_of_view]

    def read(self, store: OnlineStore, entity_keys: EntityKeys, at: Any) -> OnlineFeatures:
        """The features of ``entity_keys`` as of ``at``: one store round trip per view."""
        t = epoch_seconds(at, "the time of an online read")
        n = _entity_count(entity_keys)
        columns: dict[str, list[Any]] = {}
        found: dict[str, list[bool]] = {}
        for plan in self._plans:
            keys = _keys_for(plan.view, entity_keys, n)
            values, found[plan.view.name] = _read_view(store, plan, keys, t)
            for feature, name in plan.names:
                columns[name] = values[feature]
        return OnlineFeatures({name: columns[name] for name in self.columns}, self.dtypes, found)


def _group(
    refs: list[FeatureRef], views: Mapping[str, FeatureView]
) -> dict[str, tuple[FeatureView, list[FeatureRef]]]:
    wanted: dict[str, tuple[FeatureView, list[FeatureRef]]] = {}
    for ref in refs:
        view = views.get(ref.view)
        if view is None:
            raise FeatureViewNotFoundError(
                f"feature {ref}: no feature view {ref.view!r}; views: {sorted(views)}"
            )
        if ref.feature not in view.feature_names:
            raise FeatureViewNotFoundError(
                f"feature {ref}: view {view.name!r} has no feature {ref.feature!r}; "
                f"it has {view.feature_names}"
            )
        if not view.online:
            raise ValidationError(
                f"feature {ref}: view {view.name!r} is not served online (online=False)"
            )
        wanted.setdefault(view.name, (view, []))[1].append(ref)
    return wanted


def _column_names(
    wanted: Mapping[str, tuple[FeatureView, list[FeatureRef]]], full_names: bool
) -> dict[FeatureRef, str]:
    names = {
        ref: f"{ref.view}__{ref.feature}" if full_names else ref.feature
        for _, refs in wanted.values()
        for ref in refs
    }
    if len(set(names.values())) < len(names):
        clash = sorted({n for n in names.values() if list(names.values()).count(n) > 1})
        raise ValidationError(
            f"feature name(s) {clash} come from more than one view: "
            "ask with full_names=True to get them as view__feature"
        )
    return names


def _entity_count(entity_keys: EntityKeys) -> int:
    if isinstance(entity_keys, Mapping):
        lengths = {column: len(keys) for column, keys in entity_keys.items()}
        if len(set(lengths.values())) > 1:
            raise ValidationError(f"entity key columns differ in length: {lengths}")
        return next(iter(lengths.values()), 0)
    if isinstance(entity_keys, str | bytes):
        raise ValidationError("entity keys must be a list of keys, got a single string")
    return len(entity_keys)


def _keys_for(view: FeatureView, entity_keys: EntityKeys, n: int) -> list[str]:
    column = view.entity.key
    if isinstance(entity_keys, Mapping):
        if column not in entity_keys:
            raise ValidationError(
                f"view {view.name!r} is keyed by {column!r}, which the entity keys lack; "
                f"they have {sorted(entity_keys)}"
            )
        return key_texts(entity_keys[column], column)
    return key_texts(entity_keys, column)


def _read_view(
    store: OnlineStore, plan: _ViewPlan, keys: list[str], t: float
) -> tuple[dict[str, list[Any]], list[bool]]:
    view, plain, aggregations = plan.view, plan.plain, plan.aggregations
    unique = list(dict.fromkeys(keys))
    latest: list[LatestRow | None] = []
    events: list[list[Event]] = []
    since = t - plan.since
    both = getattr(store, "get_latest_and_events", None)
    if plain and aggregations and both is not None:
        latest, events = both(view.name, unique, since)
    else:
        if plain:
            latest = store.get_latest(view.name, unique)
        if aggregations:
            events = store.get_events(view.name, unique, since)
    values: dict[str, list[Any]] = {}
    found = [False] * len(unique)
    if plain:
        fresh = [_fresh(row, view.ttl_s, t) for row in latest]
        rows: list[Mapping[str, Any]] = [_EMPTY if row is None else row.values for row in fresh]
        for name in plain:
            values[name] = [row.get(name) for row in rows]
        found = [row is not None for row in fresh]
    if aggregations:
        computed = [_aggregate(es, aggregations, plan.ints, t) for es in events]
        for aggregation in aggregations:
            name = aggregation.feature_name
            values[name] = [c[0][name] for c in computed]
        found = [a or c[1] for a, c in zip(found, computed, strict=True)]
    if len(unique) == len(keys):  # no key asked twice: already in the order asked
        return values, found
    position = {key: i for i, key in enumerate(unique)}
    order = [position[key] for key in keys]
    return (
        {name: [column[i] for i in order] for name, column in values.items()},
        [found[i] for i in order],
    )


def _fresh(row: LatestRow | None, ttl: float | None, t: float) -> LatestRow | None:
    if row is None or row.event_time > t:
        return None
    if ttl is not None and row.event_time <= t - ttl:
        return None
    return row


def _aggregate(
    events: list[Event], aggregations: Sequence[Aggregation], ints: frozenset[str], t: float
) -> tuple[dict[str, Any], bool]:
    times = np.fromiter((e.event_time for e in events), dtype=np.float64, count=len(events))
    used = {a.column for a in aggregations if a.column is not None}
    columns = {
        column: np.array([e.values.get(column) for e in events], dtype=object) for column in used
    }
    raw = aggregate(times, columns, aggregations, t)
    # windows.aggregate sums an object column as floats: the declared type decides
    values = {
        name: None if value is None else int(value) if name in ints else float(value)
        for name, value in raw.items()
    }
    window = max(a.window_s for a in aggregations)
    seen = bool(((times > t - window) & (times <= t)).any())
    return values, seen


def _array(values: list[Any], dtype: Dtype) -> npt.NDArray[Any]:
    has_null = any(v is None for v in values)
    if dtype in ("float64", "float32"):
        return np.array([np.nan if v is None else v for v in values], dtype=dtype)
    if dtype == "int64":
        if has_null:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        return np.array(values, dtype=np.int64)
    if dtype == "bool" and not has_null:
        return np.array(values, dtype=bool)
    return np.array(values, dtype=object)
