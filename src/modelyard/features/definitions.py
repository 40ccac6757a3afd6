"""What a feature store is told: entities, feature views, their sources and aggregations.

Plain frozen dataclasses, checked when built (a bad name, type, window or TTL is a
``ValidationError`` naming it), turned into JSON-ready dicts and back for the
metadata store (``to_dict``/``from_dict``), with a digest that changes exactly when
the definition does (``apply`` compares digests). Nothing here reads data.

The semantics every part of the context keeps (offline joins, the online store,
streaming aggregates, serving):

* A **plain feature** of a view is a column of its source. Its value for an entity at
  time ``t`` is the one of the entity's latest row with ``event_time <= t`` and
  ``event_time > t - ttl``; with a ``created_time`` column, rows created after ``t``
  are never used (no leakage). Ties on ``event_time`` go to the latest
  ``created_time``, then to the row read last.
* An **aggregation** summarises the entity's events with ``event_time`` in
  ``(t - window, t]`` (created at or before ``t``): ``count`` (0 when empty), ``sum``
  (0 when empty), ``mean``, ``min``, ``max`` (null when empty), ``distinct`` (distinct
  non-null values, 0 when empty) and ``time_since_last`` (``t`` minus the latest
  event time in the window, in seconds; null when empty).
* ``t`` is the label's timestamp offline and the request's time online, so a value
  served is the value trained on.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from modelyard.errors import ValidationError

Dtype = Literal["int64", "float64", "float32", "string", "bool"]
DTYPES: tuple[str, ...] = ("int64", "float64", "float32", "string", "bool")
Function = Literal["count", "sum", "mean", "min", "max", "distinct", "time_since_last"]
FUNCTIONS: tuple[str, ...] = ("count", "sum", "mean", "min", "max", "distinct", "time_since_last")
# Functions that need a source column (count and time_since_last count events).
_NEEDS_COLUMN = frozenset({"sum", "mean", "min", "max", "distinct"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def check_name(kind: str, name: object) -> str:
    """A name usable as a column and a key: letters, digits and ``_``, not first a digit."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"{kind} name {name!r} is not allowed: use letters, digits and '_', "
            "starting with a letter or '_' (at most 128 characters)"
        )
    return name


def seconds(value: object, what: str) -> float:
    """Seconds from a number or ``"90s"``, ``"10m"``, ``"1h"``, ``"1d"``; must be positive."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationError(f"{what} must be seconds or a duration like '1h', got {value!r}")
    if isinstance(value, str):
        found = _DURATION.match(value)
        if found is None:
            raise ValidationError(
                f"{what} must be a duration like 90s, 10m, 1h or 1d, got {value!r}"
            )
        value = float(found.group(1)) * _UNIT_S[found.group(2)]
    if not value > 0 or value != value or value == float("inf"):
        raise ValidationError(f"{what} must be a positive duration, got {value!r}")
    return float(value)


def duration_label(value: float) -> str:
    """``3600`` -> ``"1h"``, ``600`` -> ``"10m"``, ``90`` -> ``"90s"``: a window's name part."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"


def _dtype(value: object, what: str) -> Dtype:
    if value not in DTYPES:
        raise ValidationError(f"{what} must be one of {', '.join(DTYPES)}, got {value!r}")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class Entity:
    """What features are about (a card, a user): its name and its key column."""

    name: str
    key: str
    dtype: Dtype = "string"
    description: str = ""

    def __post_init__(self) -> None:
        check_name("entity", self.name)
        check_name(f"entity {self.name!r}: key", self.key)
        _dtype(self.dtype, f"entity {self.name!r}: dtype")


@dataclass(frozen=True)
class Feature:
    """A typed column a view serves."""

    name: str
    dtype: Dtype

    def __post_init__(self) -> None:
        check_name("feature", self.name)
        _dtype(self.dtype, f"feature {self.name!r}: dtype")


@dataclass(frozen=True)
class FileSource:
    """Rows in Parquet or CSV files (a path or a glob), one event per row."""

    path: str
    event_time: str = "event_time"
    created_time: str | None = None  # when the row was written: the leakage guard's column

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ValidationError("a file source needs a path (a Parquet or CSV file or glob)")
        check_name("source column", self.event_time)
        if self.created_time is not None:
            check_name("source column", self.created_time)

    @property
    def format(self) -> Literal["parquet", "csv"]:
        return "csv" if self.path.lower().rstrip("*").endswith((".csv", ".csv.gz")) else "parquet"


@dataclass(frozen=True)
class SqlSource:
    """Rows of a table (or a ``SELECT``) in a SQL database; ``url`` defaults to the
    metadata database."""

    query: str
    event_time: str = "event_time"
    created_time: str | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.query, str) or not self.query.strip():
            raise ValidationError("a SQL source needs a table name or a SELECT query")
        check_name("source column", self.event_time)
        if self.created_time is not None:
            check_name("source column", self.created_time)


@dataclass(frozen=True)
class StreamSource:
    """Events pushed to the store (``push``, ``POST /v1/features/push``, a Redis stream);
    they are appended to the offline store as they arrive, so training reads the same
    events. ``fields`` are the event's columns besides the entity key and event time."""

    name: str
    fields: tuple[Feature, ...] = ()
    event_time: str = "event_time"

    def __post_init__(self) -> None:
        check_name("stream", self.name)
        check_name("source column", self.event_time)
        object.__setattr__(self, "fields", tuple(self.fields))
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValidationError(f"stream {self.name!r} names a field twice: {names}")


Source = FileSource | SqlSource | StreamSource


@dataclass(frozen=True)
class Aggregation:
    """``function`` of ``column`` over the events of the last ``window`` (see the module
    docstring); its feature is named ``<column>_<function>_<window>`` (``count_<window>``,
    ``time_since_last_<window>`` without a column), or ``name``."""

    function: Function
    window: float | str
    column: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.function not in FUNCTIONS:
            raise ValidationError(
                f"aggregation function must be one of {', '.join(FUNCTIONS)}, got {self.function!r}"
            )
        object.__setattr__(self, "window", seconds(self.window, "aggregation window"))
        if self.function in _NEEDS_COLUMN and self.column is None:
            raise ValidationError(f"aggregation {self.function!r} needs a column")
        if self.column is not None:
            check_name("aggregated column", self.column)
        if self.name is None:
            parts = [self.column] if self.column and self.function in _NEEDS_COLUMN else []
            label = duration_label(float(self.window))
            object.__setattr__(self, "name", "_".join([*parts, self.function, label]))
        check_name("feature", self.name)

    @property
    def feature_name(self) -> str:
        assert self.name is not None
        return self.name

    @property
    def window_s(self) -> float:
        return float(self.window)


@dataclass(frozen=True)
class FeatureView:
    """Features of one entity from one source: plain columns (``features``, the latest
    value within ``ttl``) and windowed aggregations of its events (``aggregations``)."""

    name: str
    entity: Entity
    source: Source
    features: tuple[Feature, ...] = ()
    aggregations: tuple[Aggregation, ...] = ()
    ttl: float | str | None = "1d"  # None: a value never expires (aggregations ignore it)
    online: bool = True  # materialized to the online store
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("feature view", self.name)
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "aggregations", tuple(self.aggregations))
        object.__setattr__(self, "tags", dict(self.tags))
        if self.ttl is not None:
            object.__setattr__(self, "ttl", seconds(self.ttl, f"view {self.name!r}: ttl"))
        if not self.features and not self.aggregations:
            raise ValidationError(f"view {self.name!r} has no features and no aggregations")
        names = self.feature_names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValidationError(f"view {self.name!r} names feature(s) twice: {dupes}")
        reserved = {self.entity.key, self.source.event_time}
        clash = sorted(reserved & set(names))
        if clash:
            raise ValidationError(
                f"view {self.name!r}: feature(s) {clash} clash with the entity key or event time"
            )
        if isinstance(self.source, StreamSource):
            fields = {f.name for f in self.source.fields}
            unknown = sorted(
                {a.column for a in self.aggregations if a.column is not None} - fields
                | {f.name for f in self.features} - fields
            )
            if unknown:
                raise ValidationError(
                    f"view {self.name!r} reads column(s) {unknown} that stream "
                    f"{self.source.name!r} does not carry; it has {sorted(fields)}"
                )

    @property
    def ttl_s(self) -> float | None:
        return None if self.ttl is None else float(self.ttl)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features] + [a.feature_name for a in self.aggregations]

    def dtype_of(self, feature: str) -> Dtype:
        """The dtype a feature of this view is served as."""
        for plain in self.features:
            if plain.name == feature:
                return plain.dtype
        for aggregation in self.aggregations:
            if aggregation.feature_name == feature:
                return _aggregate_dtype(aggregation, self.source)
        raise ValidationError(
            f"view {self.name!r} has no feature {feature!r}; it has {self.feature_names}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, and the input of ``digest``: ``from_dict`` gives the view back."""
        return {
            "name": self.name,
            "entity": _plain(self.entity),
            "source": {"kind": type(self.source).__name__, **_plain(self.source)},
            "features": [_plain(f) for f in self.features],
            "aggregations": [_plain(a) for a in self.aggregations],
            "ttl": self.ttl_s,
            "online": self.online,
            "description": self.description,
            "tags": dict(sorted(self.tags.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureView:
        source = dict(data["source"])
        kind = source.pop("kind")
        if kind == "StreamSource":
            source["fields"] = tuple(Feature(**f) for f in source.get("fields", ()))
        source_cls = {
            "FileSource": FileSource,
            "SqlSource": SqlSource,
            "StreamSource": StreamSource,
        }
        return cls(
            name=data["name"],
            entity=Entity(**data["entity"]),
            source=source_cls[kind](**source),
            features=tuple(Feature(**f) for f in data.get("features", ())),
            aggregations=tuple(Aggregation(**a) for a in data.get("aggregations", ())),
            ttl=data.get("ttl"),
            online=data.get("online", True),
            description=data.get("description", ""),
            tags=data.get("tags", {}),
        )

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON: equal exactly when the definitions are."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _aggregate_dtype(aggregation: Aggregation, source: Source) -> Dtype:
    if aggregation.function in ("count", "distinct"):
        return "int64"
    if aggregation.function in ("mean", "time_since_last"):
        return "float64"
    column_dtype: Dtype = "float64"
    if isinstance(source, StreamSource):
        column_dtype = next(
            (f.dtype for f in source.fields if f.name == aggregation.column), "float64"
        )
    return "int64" if aggregation.function == "sum" and column_dtype == "int64" else column_dtype


def _plain(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in value.__dataclass_fields__:
        item = getattr(value, name)
        if isinstance(item, tuple):
            item = [_plain(x) if hasattr(x, "__dataclass_fields__") else x for x in item]
        out[name] = item
    return out


@dataclass(frozen=True)
class FeatureRef:
    """``view:feature``, as training sets, online reads and deployments name a feature."""

    view: str
    feature: str

    @classmethod
    def parse(cls, text: object) -> FeatureRef:
        if not isinstance(text, str) or text.count(":") != 1:
            raise ValidationError(f"a feature is named 'view:feature', got {text!r}")
        view, feature = text.split(":")
        return cls(check_name("feature view", view), check_name("feature", feature))

    def __str__(self) -> str:
        return f"{self.view}:{self.feature}"


def parse_refs(refs: Sequence[str | FeatureRef]) -> list[FeatureRef]:
    """Feature references, each once, in the order given; a repeat is refused."""
    parsed = [r if isinstance(r, FeatureRef) else FeatureRef.parse(r) for r in refs]
    if not parsed:
        raise ValidationError("name at least one feature ('view:feature')")
    seen: set[FeatureRef] = set()
    for ref in parsed:
        if ref in seen:
            raise ValidationError(f"feature {ref} is named twice")
        seen.add(ref)
    return parsed
