"""The port the feature registry stands on: definitions kept with every version.

A definition is an entity, a feature view or an on-demand feature, kept as the JSON of
its ``to_dict()`` with its digest. Each name has a current version (none once removed)
and a history: one entry per change, who made it and when, what it became and a
one-line summary of what changed. Versions count per name from 1; a removal is an entry
that repeats the version it removed, and adding the name again continues the count.

The one write is ``change``: read every current definition locked against every other
change, let the caller decide what to write (``features.apply`` plans it), write all of
it or nothing. The repository keeps what it is given; the rules are the caller's.

Adapters: ``features.sql`` (the metadata database) and ``features.memory`` (in memory,
for tests); ``tests/integration/features/test_repository_contract.py`` holds both to the
same behaviour.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "KINDS",
    "Action",
    "DefinitionRepository",
    "DefinitionVersion",
    "DefinitionWrite",
    "Kind",
    "StoredDefinition",
    "next_versions",
]

Kind = Literal["entity", "view", "on_demand"]
KINDS: tuple[Kind, ...] = ("entity", "view", "on_demand")
KIND_NAMES: dict[Kind, str] = {
    "entity": "entity",
    "view": "feature view",
    "on_demand": "on-demand feature",
}  # as messages and tables name them
Action = Literal["added", "changed", "removed"]


@dataclass(frozen=True)
class StoredDefinition:
    """A definition as it stands: its current version."""

    kind: Kind
    name: str
    version: int
    digest: str
    definition: dict[str, Any]  # the object's to_dict()
    created_at: float  # when the name was (last) added
    updated_at: float  # when this version was written
    updated_by: str | None


@dataclass(frozen=True)
class DefinitionVersion:
    """One entry of a definition's history."""

    kind: Kind
    name: str
    version: int
    action: Action
    digest: str | None  # None for a removal
    definition: dict[str, Any] | None  # None for a removal
    summary: str  # what changed, one line ("" when added or removed)
    at: float
    actor: str | None


@dataclass(frozen=True)
class DefinitionWrite:
    """One change the caller decided: ``definition`` and ``digest`` are None for a removal."""

    kind: Kind
    name: str
    action: Action
    definition: dict[str, Any] | None = None
    digest: str | None = None
    summary: str = ""


Decide = Callable[[builtins.list[StoredDefinition]], Sequence[DefinitionWrite]]


class DefinitionRepository(Protocol):
    """Entities, feature views and on-demand features, with their versions."""

    def current(self) -> builtins.list[StoredDefinition]:
        """Every definition that stands, by kind (as ``KINDS`` orders them) then name."""
        ...

    def get(self, kind: Kind, name: str) -> StoredDefinition | None: ...

    def history(self, kind: Kind, name: str) -> builtins.list[DefinitionVersion]:
        """Every change of the name, oldest first (empty: never defined)."""
        ...

    def change(
        self, decide: Decide, *, at: float, actor: str | None
    ) -> builtins.list[DefinitionVersion]:
        """Call ``decide`` on the current definitions while no other ``change`` can run, and
        keep what it returns, atomically; the history entries written, in order.

        ``added`` gets version 1, or one past the name's last version when it was removed
        before; ``changed`` one past the current version; ``removed`` drops the current
        row and records its version. An ``added`` name that stands already, or a
        ``changed``/``removed`` one that does not, is a ``ValueError`` (a caller's bug)
        and nothing is written; so is anything ``decide`` raises.
        """
        ...


def next_versions(
    writes: builtins.list[DefinitionWrite],
    current: dict[tuple[Kind, str], StoredDefinition],
    last: dict[tuple[Kind, str], int],
    *,
    at: float,
    actor: str | None,
) -> builtins.list[DefinitionVersion]:
    """The history entries for ``writes``, numbered as the port says; a write that does not
    fit the current state (adding a name that stands, changing one that does not, the same
    name twice) is a ``ValueError``. The adapters share it, so
    they number alike."""
    entries: builtins.list[DefinitionVersion] = []
    seen: set[tuple[Kind, str]] = set()
    for write in writes:
        key = (write.kind, write.name)
        if write.kind not in KINDS or key in seen:
            raise ValueError(f"a change writes {write.kind} {write.name!r} twice or of no kind")
        seen.add(key)
        stands = current.get(key)
        if (write.action == "added") != (stands is None):
            state = "is defined already" if stands else "is not defined"
            raise ValueError(f"{write.kind} {write.name!r} {state}: it cannot be {write.action}")
        if write.action == "removed":
            assert stands is not None
            entries.append(
                DefinitionVersion(
                    write.kind, write.name, stands.version, "removed", None, None, "", at, actor
                )
            )
            continue
        if write.definition is None or write.digest is None:
            raise ValueError(f"{write.action} {write.kind} {write.name!r} carries no definition")
        version = last.get(key, 0) + 1 if stands is None else stands.version + 1
        entries.append(
            DefinitionVersion(
                write.kind,
                write.name,
                version,
                write.action,
                write.digest,
                write.definition,
                write.summary,
                at,
                actor,
            )
        )
    return entries
