"""In-memory adapters of routing's ports, for tests and demos: no database needed.

``InMemoryDeploymentRepository`` behaves as ``routing.sql`` does (the contract test
holds both to it): ``change`` runs under one lock, and what it keeps goes through
the same JSON as the database's columns, so a payload's non-finite floats come
back as strings and a configuration comes back as ``from_dict`` rebuilds it.
``InMemoryCatalog`` stands in for the registry: versions with hand-made
signatures, and aliases.
"""

from __future__ import annotations

import builtins
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from modelyard.errors import (
    AliasNotFoundError,
    ModelNotFoundError,
    VersionNotFoundError,
)
from modelyard.registry.refs import ModelRef, check_alias, parse_ref
from modelyard.registry.signature import Signature
from modelyard.routing.deployment import (
    Deployment,
    DeploymentConfig,
    Event,
    HistoryEntry,
    Rollout,
    dumps,
)
from modelyard.routing.repository import Revision

__all__ = ["InMemoryCatalog", "InMemoryDeploymentRepository", "StoredVersion"]


class InMemoryDeploymentRepository:
    """A ``DeploymentRepository`` in dicts and lists, safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._deployments: dict[str, Deployment] = {}
        self._history: dict[str, builtins.list[HistoryEntry]] = {}
        self._events: builtins.list[Event] = []

    # -- reads ------------------------------------------------------------------------

    def get(self, name: str) -> Deployment | None:
        with self._lock:
            return self._deployments.get(name)

    def list(self) -> builtins.list[Deployment]:
        with self._lock:
            return [self._deployments[name] for name in sorted(self._deployments)]

    def revision(self, name: str) -> int | None:
        found = self.get(name)
        return None if found is None else found.revision

    def revisions(self) -> dict[str, int]:
        with self._lock:
            return {name: d.revision for name, d in self._deployments.items()}

    def history(self, name: str) -> builtins.list[HistoryEntry]:
        with self._lock:
            return builtins.list(self._history.get(name, ()))

    def events(self, subject: str, kind_prefix: str = "", limit: int = 100) -> builtins.list[Event]:
        with self._lock:
            found = [e for e in reversed(self._events) if e.subject == subject]
        return [e for e in found if e.kind.startswith(kind_prefix)][:limit]

    # -- writes -----------------------------------------------------------------------

    def change(
        self, name: str, fn: Callable[[Deployment | None], Revision | None]
    ) -> Deployment | None:
        with self._lock:
            current = self._deployments.get(name)
            revision = fn(current)
            if revision is None:
                return current
            new = revision.deployment
            if new.name != name:
                raise ValueError(f"a change of deployment {name!r} returned {new.name!r}")
            kept = _stored(new)
            if current is not None:  # the database keeps the row's creation time
                kept = replace(kept, created_at=current.created_at)
            self._deployments[name] = kept
            entry = HistoryEntry(
                new.revision, new.updated_at, revision.actor, revision.reason, kept.config
            )
            self._history.setdefault(name, []).append(entry)
            self._events.extend(_stored_event(e) for e in revision.events)
        return new

    def record(self, event: Event) -> None:
        with self._lock:
            self._events.append(_stored_event(event))


def _stored(deployment: Deployment) -> Deployment:
    """The deployment as the database's columns give it back (rebuilt from its JSON)."""
    config = DeploymentConfig.from_dict(json.loads(dumps(deployment.config.to_dict())))
    rollout = deployment.rollout
    if rollout is not None:
        rollout = Rollout.from_dict(json.loads(dumps(rollout.to_dict())))
    return Deployment(
        deployment.name,
        config,
        rollout,
        int(deployment.revision),
        float(deployment.created_at),
        float(deployment.updated_at),
    )


def _stored_event(event: Event) -> Event:
    return replace(event, payload=json.loads(dumps(event.payload)))


@dataclass(frozen=True)
class StoredVersion:
    """A version of ``InMemoryCatalog``: its number and its signature."""

    model: str
    version: int
    signature: Signature


class InMemoryCatalog:
    """A ``VersionCatalog`` for tests: versions added by ``add``, aliases by ``set_alias``.

    Refuses what the registry refuses, with the registry's messages.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, builtins.list[Signature]] = {}
        self._aliases: dict[tuple[str, str], int] = {}

    def add(self, model: str, signature: Signature) -> int:
        """Register the model's next version with ``signature``; returns its number."""
        with self._lock:
            versions = self._versions.setdefault(model, [])
            versions.append(signature)
            return len(versions)

    def get_version(self, model: str, version: int, /) -> StoredVersion:
        with self._lock:
            versions = self._known(model)
            if not 1 <= version <= len(versions):
                raise VersionNotFoundError(f"model {model!r} has no version {version}")
            return StoredVersion(model, version, versions[version - 1])

    def resolve(self, ref: str | ModelRef, /) -> tuple[str, int]:
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        with self._lock:
            versions = self._known(ref.name)
            if ref.alias is not None:
                found = self._aliases.get((ref.name, ref.alias))
                if found is None:
                    raise AliasNotFoundError(f"model {ref.name!r} has no alias {ref.alias!r}")
                return ref.name, found
            if ref.version is not None:
                if not 1 <= ref.version <= len(versions):
                    raise VersionNotFoundError(f"model {ref.name!r} has no version {ref.version}")
                return ref.name, ref.version
            if not versions:
                raise VersionNotFoundError(f"model {ref.name!r} has no versions yet")
            return ref.name, len(versions)

    def set_alias(
        self,
        model: str,
        alias: str,
        version: int,
        /,
        *,
        actor: str | None = None,
        reason: str = "",
    ) -> None:
        check_alias(alias)
        with self._lock:
            if not 1 <= version <= len(self._known(model)):
                raise VersionNotFoundError(f"model {model!r} has no version {version}")
            self._aliases[model, alias] = version

    def _known(self, model: str) -> builtins.list[Signature]:
        versions = self._versions.get(model)
        if versions is None:
            raise ModelNotFoundError(f"no registered model named {model!r}")
        return versions
