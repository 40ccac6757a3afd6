"""The ports routing's services stand on: where deployments are kept, and the registry's versions.

``DeploymentRepository`` keeps deployments, their history and their events. Its one
write is ``change``: read a deployment locked against every other writer, let the
caller decide what it becomes, write that (the new row, its history entry, its
events) or nothing, all in one transaction. The rules (names, versions, which
change is allowed) are the caller's (``DeploymentStore``); the repository only
keeps what it is given. ``EventLog`` is the part of it that the experiment reporter
needs. ``VersionCatalog`` is what routing asks of the registry: a version's
signature, where a reference points, and moving an alias after a promotion.

Adapters: ``routing.sql`` (the metadata database) and ``routing.memory`` (in memory,
for tests); ``tests/integration/routing/test_repository_contract.py`` holds both to
the same behaviour.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from modelyard.registry.refs import ModelRef
from modelyard.registry.signature import Signature
from modelyard.routing.deployment import Deployment, Event, HistoryEntry

__all__ = [
    "CatalogVersion",
    "DeploymentRepository",
    "EventLog",
    "Revision",
    "VersionCatalog",
]


@dataclass(frozen=True)
class Revision:
    """One change as the repository keeps it: the deployment after it, who and why, its events.

    The history entry is derived from it (the deployment's revision, ``updated_at`` and
    configuration, with ``actor`` and ``reason``), so the two cannot disagree.
    """

    deployment: Deployment
    actor: str | None
    reason: str
    events: tuple[Event, ...] = ()


class EventLog(Protocol):
    """Decision events (``rollout.*``, ``experiment.*``, ...) about a subject, kept in order."""

    def record(self, event: Event) -> None:
        """Append ``event`` (its payload is kept as JSON: non-finite floats become strings)."""
        ...

    def events(self, subject: str, kind_prefix: str = "", limit: int = 100) -> list[Event]:
        """The subject's events whose kind starts with ``kind_prefix``, newest first."""
        ...


class DeploymentRepository(EventLog, Protocol):
    """Deployments with their history and events."""

    def get(self, name: str) -> Deployment | None: ...

    def list(self) -> builtins.list[Deployment]:
        """Every deployment, by name."""
        ...

    def revision(self, name: str) -> int | None:
        """The deployment's revision (None: no such deployment), one indexed lookup."""
        ...

    def revisions(self) -> dict[str, int]:
        """Every deployment's revision, for workers polling for changes."""
        ...

    def history(self, name: str) -> builtins.list[HistoryEntry]:
        """Every revision of the deployment, oldest first (empty: no such deployment)."""
        ...

    def change(
        self, name: str, fn: Callable[[Deployment | None], Revision | None]
    ) -> Deployment | None:
        """Read ``name`` locked, call ``fn`` on it, and keep what it returns, atomically.

        ``fn`` gets the deployment as it is now (None: there is none) while no other
        ``change`` of it can run; it returns the revision to keep (a new deployment when
        there was none, else the changed one) or None to keep nothing. Whatever ``fn``
        raises leaves nothing behind. A new deployment whose name is taken meanwhile
        raises ``RejectedWriteError``. Returns the deployment as it stands after: ``fn``'s
        new one, or the current one (None: none) when ``fn`` keeps nothing.
        """
        ...


class CatalogVersion(Protocol):
    """One registered version, as far as routing needs it."""

    @property
    def version(self) -> int: ...

    @property
    def signature(self) -> Signature: ...


class VersionCatalog(Protocol):
    """What routing needs from the registry (``registry.Registry`` is one)."""

    def get_version(self, model: str, version: int, /) -> CatalogVersion:
        """The version (``VersionNotFoundError``/``ModelNotFoundError`` when there is none)."""
        ...

    def resolve(self, ref: ModelRef, /) -> tuple[str, int]:
        """The ``(model, version)`` a reference points at now (a version, an alias, latest)."""
        ...

    def set_alias(
        self,
        model: str,
        alias: str,
        version: int,
        /,
        *,
        actor: str | None = None,
        reason: str = "",
    ) -> object:
        """Point ``alias`` at ``version`` and record who moved it and why."""
        ...
