"""Training sets: each label row of an entity frame with the features as they were at its
time, computed in DuckDB (``pointintime`` for plain features, ``aggregates`` for
windowed ones).

Every label row comes back exactly once, in the order given, with its own columns
and types untouched (``frames``), plus one column per feature asked for, null where
nothing is in range (0 for ``count``, ``sum`` and ``distinct`` of an empty window).
Columns are named like online reads name them: the feature's name, or
``view__feature`` with ``full_names=True``; two features of one name from different
views, or a feature named like a column of the frame, is a ``ValidationError`` that
says so. Everything is checked before any data is read: the features exist, the
frame has the timestamp column and every key column, and each key compares with its
source's key (integers with integers, text with text).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.config.settings import Settings
from modelyard.errors import FeatureViewNotFoundError, ValidationError
from modelyard.features.definitions import Aggregation, FeatureRef, FeatureView, parse_refs
from modelyard.features.offline import schema
from modelyard.features.offline.aggregates import empty_value, join_aggregates
from modelyard.features.offline.engine import (
    OfflineOptions,
    column_types,
    fetch_arrow,
    options_of,
    quote,
    session,
)
from modelyard.features.offline.frames import (
    attach,
    columns_of,
    epoch_seconds,
    frame_kind,
    narrow,
    require,
)
from modelyard.features.offline.pointintime import LABELS, ROW, join_plain
from modelyard.features.offline.sources import open_source


@dataclass
class _ViewPlan:
    """What one view contributes: its plain features and aggregations asked for."""

    view: FeatureView
    plain: list[str] = field(default_factory=list)
    aggregations: list[Aggregation] = field(default_factory=list)


def get_training_set(
    entity_frame: Any,
    features: Sequence[str | FeatureRef],
    views: Mapping[str, FeatureView] | Iterable[FeatureView],
    *,
    timestamp: str = "event_timestamp",
    options: OfflineOptions | Settings | None = None,
    full_names: bool = False,
) -> Any:
    """``entity_frame`` (pandas, polars or Arrow; the same kind comes back) with the
    features ``features`` (``"view:feature"``) of ``views`` as of each row's
    ``timestamp`` (datetimes, naive ones UTC, or epoch seconds), point-in-time correct.

    ``options`` are the DuckDB limits and paths (``OfflineOptions``), or the settings
    to take them from (``settings.features``: memory_limit, threads; spilling under
    the home). Bad input is a ``ValidationError``; an unknown view or feature a
    ``FeatureViewNotFoundError``; both name what was wrong."""
    kind = frame_kind(entity_frame)
    refs = parse_refs(features)
    plans = plan(refs, views)
    names = column_names(refs, full_names)
    have = columns_of(entity_frame, kind)
    taken = sorted(set(names.values()) & set(have))
    if taken:
        raise ValidationError(
            f"the entity frame already has column(s) {taken}, named like features asked for; "
            "rename them or ask with full_names=True"
        )
    if timestamp not in have:
        raise ValidationError(
            f"the entity frame has no timestamp column {timestamp!r}; it has {have}"
        )
    keys = list(dict.fromkeys(p.view.entity.key for p in plans))
    for p in plans:
        if p.view.entity.key not in have:
            raise ValidationError(
                f"the entity frame has no column {p.view.entity.key!r}, the key of entity "
                f"{p.view.entity.name!r} that view {p.view.name!r} is keyed by; it has {have}"
            )
    labels = _labels(entity_frame, kind, keys, timestamp)
    opts = options_of(options)
    with session(opts) as con:
        con.register(LABELS, labels)
        label_types = column_types(con, LABELS, "the entity frame")
        selected: dict[FeatureRef, str] = {}
        joins: list[str] = []
        for i, p in enumerate(plans):
            view = p.view
            relation = open_source(con, view, p.plain, p.aggregations, opts)
            _check_key(view, label_types[view.entity.key], relation.key_type)
            if p.plain:
                table = join_plain(
                    con,
                    relation,
                    view.entity.key,
                    p.plain,
                    ttl=view.ttl_s,
                    guard=opts.leakage_guard,
                    table=f"plain.{i}",
                )
                joins.append(table)
                for name in p.plain:
                    ref = FeatureRef(view.name, name)
                    selected[ref] = _cast(f"{table}.{quote(name)}", view, name, names[ref])
            if p.aggregations:
                table = join_aggregates(
                    con,
                    relation,
                    view.entity.key,
                    p.aggregations,
                    guard=opts.leakage_guard,
                    table=f"windows.{i}",
                )
                joins.append(table)
                for aggregation in p.aggregations:
                    name = aggregation.feature_name
                    value = f"{table}.{quote(name)}"
                    empty = empty_value(aggregation)
                    if empty is not None:
                        value = f"coalesce({value}, {empty})"
                    ref = FeatureRef(view.name, name)
                    selected[ref] = _cast(value, view, name, names[ref])
        ordered = [selected[ref] for ref in refs]
        joined = " ".join(f"LEFT JOIN {t} ON {t}.{ROW} = l.{ROW}" for t in joins)
        result = fetch_arrow(
            con,
            f"SELECT {', '.join(ordered)} FROM {LABELS} l {joined} ORDER BY l.{ROW}",
            "the training set",
        )
    return attach(entity_frame, kind, result)


def plan(
    refs: Sequence[FeatureRef], views: Mapping[str, FeatureView] | Iterable[FeatureView]
) -> list[_ViewPlan]:
    """The views the references name, each with its features asked for, in the order
    first named; an unknown view or feature is a ``FeatureViewNotFoundError``."""
    catalog = dict(views) if isinstance(views, Mapping) else {v.name: v for v in views}
    plans: dict[str, _ViewPlan] = {}
    for ref in refs:
        view = catalog.get(ref.view)
        if view is None:
            raise FeatureViewNotFoundError(
                f"feature {ref}: no feature view {ref.view!r} is defined; "
                f"defined: {sorted(catalog)}"
            )
        entry = plans.setdefault(view.name, _ViewPlan(view))
        aggregation = next((a for a in view.aggregations if a.feature_name == ref.feature), None)
        if aggregation is not None:
            entry.aggregations.append(aggregation)
        elif any(f.name == ref.feature for f in view.features):
            entry.plain.append(ref.feature)
        else:
            raise FeatureViewNotFoundError(
                f"feature {ref}: view {view.name!r} has no feature {ref.feature!r}; "
                f"it has {view.feature_names}"
            )
    return list(plans.values())


def column_names(refs: Sequence[FeatureRef], full_names: bool) -> dict[FeatureRef, str]:
    """The column each feature gets: its name, or ``view__feature`` with ``full_names``;
    one name for two features is a ``ValidationError`` (as online)."""
    names = {ref: f"{ref.view}__{ref.feature}" if full_names else ref.feature for ref in refs}
    values = list(names.values())
    clash = sorted({n for n in values if values.count(n) > 1})
    if clash:
        raise ValidationError(
            f"feature name(s) {clash} come from more than one view: "
            "ask with full_names=True to get them as view__feature"
        )
    return names


def _labels(frame: Any, kind: Any, keys: Sequence[str], timestamp: str) -> Any:
    """The narrow Arrow table DuckDB joins: row number, key columns, time in seconds."""
    pa = require("pyarrow")
    columns = list(dict.fromkeys([*keys, timestamp]))
    table = narrow(frame, kind, columns)
    rows = pa.array(np.arange(table.num_rows, dtype=np.int64))
    arrays = [
        rows,
        *(table.column(k) for k in keys),
        epoch_seconds(table.column(timestamp), timestamp),
    ]
    return pa.table(arrays, names=["my.row", *keys, "my.t"])


def _check_key(view: FeatureView, label_type: str, source_type: str) -> None:
    key = view.entity.key
    label_kind = schema.key_kind(label_type)
    if label_kind is None or label_kind != schema.key_kind(source_type):
        raise ValidationError(
            f"the entity frame's column {key!r} holds {label_type} but the key {key!r} of "
            f"view {view.name!r}'s source holds {source_type}: they cannot be compared "
            "(keys are integers or text on both sides)"
        )


def _cast(value: str, view: FeatureView, feature: str, name: str) -> str:
    return f"CAST({value} AS {schema.sql_type(view.dtype_of(feature))}) AS {quote(name)}"
