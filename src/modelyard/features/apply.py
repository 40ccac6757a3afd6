"""``apply``: compare a new set of definitions with the stored one, plan what changes,
refuse a change that breaks a deployment, and write the plan in one transaction.

A set of definitions is the whole desired state (as ``feast apply`` treats a repo):
a stored view that is not in the new set is removed. The plan lists every entity, view
and on-demand feature as added, changed (with each difference: features added, removed
or retyped, the source, the TTL, ...), removed or unchanged; digests decide "changed".

A change breaks a deployment when a feature it reads goes away or changes type, or the
entity key its requests carry changes: removing a view (or an on-demand feature) in
use, removing or retyping a feature in use, changing the key name or type of a view in
use. Such a plan carries ``conflicts`` and applying it raises ``ConflictError`` naming
each deployment and feature; nothing is written. What is in use comes from the caller
(``UsedFeatures``: view -> deployment -> features it reads; on-demand features under
``ON_DEMAND``), since routing owns deployments; ``nothing_used`` until they declare
feature views.

``plan_apply`` is pure; ``apply`` runs it inside the repository's ``change``, so the
plan is made from the definitions as they stand when it is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Literal

from modelyard.errors import ConflictError
from modelyard.features.definition_set import Definition, Definitions, digest, document
from modelyard.features.definitions import FeatureView, duration_label
from modelyard.features.on_demand import ON_DEMAND
from modelyard.features.repository import (
    KINDS,
    DefinitionRepository,
    DefinitionWrite,
    Kind,
    StoredDefinition,
)

__all__ = [
    "ApplyPlan",
    "Change",
    "Conflict",
    "Definitions",
    "Difference",
    "UsedFeatures",
    "apply",
    "nothing_used",
    "plan_apply",
]

UsedFeatures = Callable[[], Mapping[str, Mapping[str, AbstractSet[str]]]]
Action = Literal["added", "changed", "removed", "unchanged"]


def nothing_used() -> dict[str, dict[str, set[str]]]:
    """``UsedFeatures`` while no deployment declares the feature views it reads."""
    return {}


# -- the plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """One thing that differs: ``field`` (``feature``, ``aggregation``, ``ttl``,
    ``source.path``, ``entity.key``, ``expression``, ``dtype``, ...), ``name`` for a
    feature or aggregation, and the values before and after (None: absent)."""

    field: str
    before: Any
    after: Any
    name: str | None = None

    @property
    def change(self) -> Literal["added", "removed", "retyped", "changed"]:
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        return "retyped" if self.field in ("feature", "dtype") else "changed"

    def __str__(self) -> str:
        subject = self.field if self.name is None else f"{self.field} {self.name}"
        if self.field == "feature":
            if self.change in ("added", "removed"):
                return f"{subject} {self.change} ({self.after or self.before})"
            return f"{subject} retyped {self.before} -> {self.after}"
        return f"{subject}: {_shown(self.field, self.before)} -> {_shown(self.field, self.after)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "name": self.name,
            "change": self.change,
            "before": self.before,
            "after": self.after,
        }


def _shown(field: str, value: Any) -> str:
    if value is None:
        return "none"
    if field == "ttl":
        return duration_label(float(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, "")) + "}"
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Change:
    """What applying does to one entity, view or on-demand feature."""

    kind: Kind
    name: str
    action: Action
    differences: tuple[Difference, ...] = ()
    definition: dict[str, Any] | None = None  # as it will stand (None: removed)
    digest: str | None = None

    @property
    def summary(self) -> str:
        """The differences, one line."""
        return "; ".join(str(d) for d in self.differences)

    def features(self, change: str) -> list[str]:
        """Names of the features ``added``, ``removed`` or ``retyped`` by this change."""
        return [
            d.name
            for d in self.differences
            if d.field == "feature" and d.change == change and d.name is not None
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "summary": self.summary,
            "differences": [d.to_dict() for d in self.differences],
            "digest": self.digest,
        }


@dataclass(frozen=True)
class Conflict:
    """A deployment that a change would break: it reads ``ref`` (``view:feature``, or a
    whole view), and the change ``breaks`` it (removes it, retypes it, ...)."""

    deployment: str
    ref: str
    breaks: str

    def __str__(self) -> str:
        return f"deployment {self.deployment!r} reads {self.ref}, and this apply {self.breaks}"

    def to_dict(self) -> dict[str, str]:
        return {"deployment": self.deployment, "ref": self.ref, "breaks": self.breaks}


@dataclass(frozen=True)
class ApplyPlan:
    """Every definition's change (by kind, then name) and the deployments it would break."""

    changes: tuple[Change, ...]
    conflicts: tuple[Conflict, ...] = ()

    def of(self, action: Action, kind: Kind | None = None) -> tuple[Change, ...]:
        return tuple(
            c for c in self.changes if c.action == action and (kind is None or c.kind == kind)
        )

    @property
    def added(self) -> tuple[Change, ...]:
        return self.of("added")

    @property
    def changed(self) -> tuple[Change, ...]:
        return self.of("changed")

    @property
    def removed(self) -> tuple[Change, ...]:
        return self.of("removed")

    @property
    def unchanged(self) -> tuple[Change, ...]:
        return self.of("unchanged")

    @property
    def has_changes(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)

    def check(self) -> None:
        """Raise ``ConflictError`` naming every deployment the plan would break."""
        if self.conflicts:
            raise ConflictError(
                "refused, nothing applied: " + "; ".join(str(c) for c in self.conflicts)
            )

    def writes(self) -> list[DefinitionWrite]:
        """What the repository is to keep."""
        return [
            DefinitionWrite(c.kind, c.name, c.action, c.definition, c.digest, c.summary)
            for c in self.changes
            if c.action != "unchanged"
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": [c.to_dict() for c in self.added],
            "changed": [c.to_dict() for c in self.changed],
            "removed": [c.to_dict() for c in self.removed],
            "unchanged": [c.to_dict() for c in self.unchanged],
            "conflicts": [c.to_dict() for c in self.conflicts],
        }


def plan_apply(
    current: Definitions,
    new: Definitions,
    used: Mapping[str, Mapping[str, AbstractSet[str]]],
) -> ApplyPlan:
    """The plan that takes ``current`` to ``new``, with the conflicts it has with ``used``
    (view -> deployment -> features it reads)."""
    before, after = current.by_key(), new.by_key()
    order = sorted(before.keys() | after.keys(), key=lambda k: (KINDS.index(k[0]), k[1]))
    changes: list[Change] = []
    conflicts: list[Conflict] = []
    for kind, name in order:
        old, fresh = before.get((kind, name)), after.get((kind, name))
        users = _users(kind, name, used)
        if fresh is None:
            assert old is not None
            changes.append(Change(kind, name, "removed"))
            conflicts += _removal_conflicts(kind, name, users)
            continue
        doc, fresh_digest = document(fresh), digest(fresh)
        if old is None:
            changes.append(Change(kind, name, "added", (), doc, fresh_digest))
        elif digest(old) == fresh_digest:
            changes.append(Change(kind, name, "unchanged", (), doc, fresh_digest))
        else:
            differences = tuple(_differences(old, fresh))
            changes.append(Change(kind, name, "changed", differences, doc, fresh_digest))
            conflicts += _change_conflicts(kind, name, differences, users)
    return ApplyPlan(tuple(changes), tuple(conflicts))


def apply(
    repository: DefinitionRepository,
    new: Definitions,
    *,
    at: float,
    actor: str | None = None,
    used: UsedFeatures = nothing_used,
    dry_run: bool = False,
) -> ApplyPlan:
    """Plan ``new`` against the stored definitions and, unless ``dry_run``, write the plan
    in one transaction; a plan that breaks a deployment raises ``ConflictError`` either
    way, and nothing is written."""
    in_use = used()
    if dry_run:
        plan = plan_apply(Definitions.from_stored(repository.current()), new, in_use)
        plan.check()
        return plan
    planned: list[ApplyPlan] = []

    def decide(stored: list[StoredDefinition]) -> Sequence[DefinitionWrite]:
        plan = plan_apply(Definitions.from_stored(stored), new, in_use)
        plan.check()
        planned.append(plan)
        return plan.writes()

    repository.change(decide, at=at, actor=actor)
    return planned[-1]


# -- differences and conflicts --------------------------------------------------------


def _differences(old: Definition, new: Definition) -> list[Difference]:
    if isinstance(old, FeatureView) and isinstance(new, FeatureView):
        found = _view_differences(old, new)
    else:
        found = _fields(document(old), document(new))
        found = [Difference("dtype", d.before, d.after) if d.field == "dtype" else d for d in found]
    return found or [Difference("definition", document(old), document(new))]


def _view_differences(old: FeatureView, new: FeatureView) -> list[Difference]:
    found: list[Difference] = []
    types_before = {n: old.dtype_of(n) for n in old.feature_names}
    types_after = {n: new.dtype_of(n) for n in new.feature_names}
    for name in [*new.feature_names, *(n for n in old.feature_names if n not in types_after)]:
        before, after = types_before.get(name), types_after.get(name)
        if before != after:
            found.append(Difference("feature", before, after, name))
    aggregations_before = {a["name"]: a for a in old.to_dict()["aggregations"]}
    aggregations_after = {a["name"]: a for a in new.to_dict()["aggregations"]}
    for name in new.feature_names:
        was, now = aggregations_before.get(name), aggregations_after.get(name)
        if name in types_before and was != now:
            found.append(Difference("aggregation", was, now, name))
    if not found and old.feature_names != new.feature_names:
        found.append(Difference("feature order", old.feature_names, new.feature_names))
    doc_before, doc_after = old.to_dict(), new.to_dict()
    for part in ("entity", "source"):
        found += [
            Difference(f"{part}.{d.field}", d.before, d.after)
            for d in _fields(doc_before[part], doc_after[part])
        ]
    skip = {"name", "entity", "source", "features", "aggregations"}
    keep = {k: v for k, v in doc_before.items() if k not in skip}
    found += _fields(keep, {k: v for k, v in doc_after.items() if k not in skip})
    return found


def _fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Difference]:
    keys = [*before, *(k for k in after if k not in before)]
    return [
        Difference(key, before.get(key), after.get(key))
        for key in keys
        if before.get(key) != after.get(key)
    ]


def _users(
    kind: Kind, name: str, used: Mapping[str, Mapping[str, AbstractSet[str]]]
) -> Mapping[str, AbstractSet[str]]:
    """Deployment -> the features it reads of this view (or on-demand features)."""
    if kind == "entity":
        return {}  # an entity is used through its views
    return used.get(ON_DEMAND if kind == "on_demand" else name, {})


def _removal_conflicts(
    kind: Kind, name: str, users: Mapping[str, AbstractSet[str]]
) -> list[Conflict]:
    if kind == "on_demand":
        return [
            Conflict(deployment, f"{ON_DEMAND}:{name}", "removes it")
            for deployment, features in sorted(users.items())
            if name in features
        ]
    return [
        Conflict(
            deployment,
            f"{name}:{','.join(sorted(features))}" if features else name,
            f"removes view {name!r}",
        )
        for deployment, features in sorted(users.items())
    ]


def _change_conflicts(
    kind: Kind,
    name: str,
    differences: Sequence[Difference],
    users: Mapping[str, AbstractSet[str]],
) -> list[Conflict]:
    found: list[Conflict] = []
    for deployment, features in sorted(users.items()):
        if kind == "on_demand":
            for d in differences:
                if d.field == "dtype" and name in features:
                    breaks = f"retypes it {d.before} -> {d.after}"
                    found.append(Conflict(deployment, f"{ON_DEMAND}:{name}", breaks))
            continue
        for d in differences:
            if d.field == "feature" and d.name in features and d.change != "added":
                breaks = "removes it" if d.after is None else f"retypes it {d.before} -> {d.after}"
                found.append(Conflict(deployment, f"{name}:{d.name}", breaks))
            elif d.field in ("entity.key", "entity.dtype"):
                what = "key" if d.field == "entity.key" else "key type"
                breaks = f"changes its entity {what} {d.before} -> {d.after}"
                found.append(Conflict(deployment, name, breaks))
    return found
