"""A set of definitions: the entities, feature views and on-demand features that are
applied together, each once, consistent with one another.

``Definitions.collect`` gathers them from a user's objects (``features.loader`` passes
a module's), ``from_stored`` rebuilds them from the repository, and ``document`` and
``digest`` say what the repository keeps of each and when two are the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from modelyard.errors import ValidationError
from modelyard.features.definitions import Entity, FeatureView
from modelyard.features.on_demand import ON_DEMAND, OnDemandFeature
from modelyard.features.repository import Kind, StoredDefinition

__all__ = ["Definition", "Definitions", "digest", "document"]

Definition = Entity | FeatureView | OnDemandFeature
_D = TypeVar("_D", Entity, FeatureView, OnDemandFeature)


@dataclass(frozen=True)
class Definitions:
    """Entities, feature views and on-demand features that belong together, each once.

    The entities of the views are part of the set whether or not they are listed. Refused
    with a ``ValidationError``: two different definitions of one name, a view named
    ``on_demand``, an on-demand feature that reads ``view.feature`` of a view not in the
    set or a feature the view does not have.
    """

    entities: tuple[Entity, ...] = ()
    views: tuple[FeatureView, ...] = ()
    on_demand: tuple[OnDemandFeature, ...] = ()

    def __post_init__(self) -> None:
        views = _unique("feature view", self.views)
        entities = _unique("entity", [*self.entities, *(view.entity for view in views)])
        on_demand = _unique("on-demand feature", self.on_demand)
        if any(view.name == ON_DEMAND for view in views):
            raise ValidationError(
                f"no feature view may be named {ON_DEMAND!r}: on-demand features are "
                f"referenced as '{ON_DEMAND}:<name>'"
            )
        by_name = {view.name: view for view in views}
        for feature in on_demand:
            for ref in feature.view_features:
                view = by_name.get(ref.view)
                if view is None:
                    raise ValidationError(
                        f"on-demand feature {feature.name!r} reads {ref}, but there is no view "
                        f"{ref.view!r}; views: {', '.join(sorted(by_name)) or '(none)'}"
                    )
                if ref.feature not in view.feature_names:
                    raise ValidationError(
                        f"on-demand feature {feature.name!r} reads {ref}, but view {view.name!r} "
                        f"has no feature {ref.feature!r}; it has {view.feature_names}"
                    )
        object.__setattr__(self, "entities", entities)
        object.__setattr__(self, "views", views)
        object.__setattr__(self, "on_demand", on_demand)

    @classmethod
    def collect(cls, objects: Iterable[object]) -> Definitions:
        """The entities, views and on-demand features among ``objects``; others are ignored."""
        found = list(objects)
        return cls(
            entities=tuple(o for o in found if isinstance(o, Entity)),
            views=tuple(o for o in found if isinstance(o, FeatureView)),
            on_demand=tuple(o for o in found if isinstance(o, OnDemandFeature)),
        )

    @classmethod
    def from_stored(cls, stored: Iterable[StoredDefinition]) -> Definitions:
        """The definitions a repository keeps, rebuilt."""
        entities: list[Entity] = []
        views: list[FeatureView] = []
        on_demand: list[OnDemandFeature] = []
        for item in stored:
            if item.kind == "entity":
                entities.append(Entity(**item.definition))
            elif item.kind == "view":
                views.append(FeatureView.from_dict(item.definition))
            else:
                on_demand.append(OnDemandFeature.from_dict(item.definition))
        return cls(tuple(entities), tuple(views), tuple(on_demand))

    def by_key(self) -> dict[tuple[Kind, str], Definition]:
        """Every definition by ``(kind, name)``."""
        keyed: dict[tuple[Kind, str], Definition] = {}
        keyed.update({("entity", e.name): e for e in self.entities})
        keyed.update({("view", v.name): v for v in self.views})
        keyed.update({("on_demand", f.name): f for f in self.on_demand})
        return keyed

    def __len__(self) -> int:
        return len(self.entities) + len(self.views) + len(self.on_demand)


def _unique(kind: str, items: Iterable[_D]) -> tuple[_D, ...]:
    by_name: dict[str, _D] = {}
    for item in items:
        seen = by_name.setdefault(item.name, item)
        if seen != item:
            detail = ""
            if isinstance(seen, Entity) and isinstance(item, Entity):
                detail = f" (key {seen.key!r} {seen.dtype} and key {item.key!r} {item.dtype})"
            raise ValidationError(
                f"two different {kind} definitions are named {item.name!r}{detail}"
            )
    return tuple(by_name[name] for name in sorted(by_name))


def document(definition: Definition) -> dict[str, Any]:
    """What the repository keeps of a definition (its ``to_dict()``)."""
    if isinstance(definition, Entity):
        return {
            "name": definition.name,
            "key": definition.key,
            "dtype": definition.dtype,
            "description": definition.description,
        }
    return definition.to_dict()


def digest(definition: Definition) -> str:
    """sha256 of the canonical JSON of ``document`` (as ``FeatureView.digest``)."""
    if isinstance(definition, Entity):
        text = json.dumps(document(definition), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()
    return definition.digest
