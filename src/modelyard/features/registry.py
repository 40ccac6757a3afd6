"""``FeatureRegistry``: the definitions a feature store serves, read and applied.

What the other parts of the context ask for (``view("card_stats")`` for a training set
or a materialization, ``definitions()`` for the server), and ``apply`` for
``modelyard features apply``. It stands on a ``DefinitionRepository`` and is given
the clock and what deployments use (``UsedFeatures``), so it reads neither itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelyard.errors import FeatureViewNotFoundError
from modelyard.features.apply import ApplyPlan, UsedFeatures, apply, nothing_used
from modelyard.features.definition_set import Definitions
from modelyard.features.definitions import Entity, FeatureView
from modelyard.features.on_demand import OnDemandFeature
from modelyard.features.repository import (
    KIND_NAMES,
    KINDS,
    DefinitionRepository,
    DefinitionVersion,
    Kind,
    StoredDefinition,
)

__all__ = ["DefinitionRecord", "FeatureRegistry"]

_NAMED: dict[Kind, str] = {
    "entity": "entity",
    "view": "feature view",
    "on_demand": "on-demand feature",
}


@dataclass(frozen=True)
class DefinitionRecord:
    """A name's current definition (None once removed) and its whole history."""

    kind: Kind
    name: str
    current: StoredDefinition | None
    history: list[DefinitionVersion]


class FeatureRegistry:
    """Entities, feature views and on-demand features, as the metadata store keeps them."""

    def __init__(
        self,
        repository: DefinitionRepository,
        *,
        used: UsedFeatures = nothing_used,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._used = used
        self._clock = clock

    def definitions(self) -> Definitions:
        """Everything defined now."""
        return Definitions.from_stored(self._repository.current())

    def stored(self) -> list[StoredDefinition]:
        """Everything defined now, with versions and times."""
        return self._repository.current()

    def view(self, name: str) -> FeatureView:
        """The view ``name`` (``FeatureViewNotFoundError`` naming the views there are)."""
        return FeatureView.from_dict(self._definition("view", name))

    def on_demand(self, name: str) -> OnDemandFeature:
        return OnDemandFeature.from_dict(self._definition("on_demand", name))

    def entity(self, name: str) -> Entity:
        return Entity(**self._definition("entity", name))

    def _definition(self, kind: Kind, name: str) -> dict[str, Any]:
        found = self._repository.get(kind, name)
        if found is None:
            raise FeatureViewNotFoundError(
                f"no {KIND_NAMES[kind]} {name!r}; defined: {self._names(kind)}"
            )
        return found.definition

    def record(self, name: str, kind: Kind | None = None) -> DefinitionRecord:
        """``name``'s definition and history: a view's, else an on-demand feature's, else an
        entity's (or only ``kind``'s); a removed one has its history and no definition."""
        for candidate in KINDS[1:] + KINDS[:1] if kind is None else (kind,):
            current = self._repository.get(candidate, name)
            history = self._repository.history(candidate, name)
            if current is not None or history:
                return DefinitionRecord(candidate, name, current, history)
        raise FeatureViewNotFoundError(
            f"nothing named {name!r} was ever defined; views: {self._names('view')}"
        )

    def plan(self, new: Definitions) -> ApplyPlan:
        """What ``apply(new)`` would do; ``ConflictError`` if it would break a deployment."""
        return self.apply(new, dry_run=True)

    def apply(
        self, new: Definitions, *, actor: str | None = None, dry_run: bool = False
    ) -> ApplyPlan:
        """Make ``new`` the definitions (see ``features.apply``) and return the plan done."""
        return apply(
            self._repository, new, at=self._clock(), actor=actor, used=self._used, dry_run=dry_run
        )

    def _names(self, kind: Kind) -> str:
        names = [d.name for d in self._repository.current() if d.kind == kind]
        return ", ".join(names) or "(none)"
