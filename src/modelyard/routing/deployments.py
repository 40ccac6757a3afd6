"""The deployment store: configurations and their whole history in the metadata database.

Every change is one write transaction (``mutate``): read the row (locked with
``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already
serialises writers), compute the new configuration, check every version it
newly names against the registry (it exists; its inputs match the champion's),
bump ``revision``, and append a history row and the events. A change that
fails any check leaves nothing behind.

Reads go through a ``SqlReader`` (stdlib sqlite3 on the embedded default), so a
serving worker can poll ``revisions()`` twice a second for microseconds and
reload only the deployments whose revision moved.
"""

from __future__ import annotations

import builtins
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, insert, select, update

from modelyard.errors import ConflictError, NotFoundError, RejectedWriteError, ValidationError
from modelyard.registry.refs import parse_ref
from modelyard.registry.registry import Registry
from modelyard.routing.abtest import FixedHorizon, Sequential
from modelyard.routing.deployment import (
    Change,
    Deployment,
    DeploymentConfig,
    Event,
    HistoryEntry,
    Rollout,
    RoutingKey,
    Shadow,
    describe_input_difference,
    dumps,
)
from modelyard.routing.experiments import Experiment, ExperimentArm, OutcomeKind
from modelyard.store.database import Database
from modelyard.store.reader import SqlReader, open_reader
from modelyard.store.schema import deployment_history, deployments, events

__all__ = ["DeploymentStore"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_SELECT = "SELECT name, model, config, rollout, revision, created_at, updated_at FROM deployments"
VersionRef = int | str


class DeploymentStore:
    """Deployments in the metadata database; ``registry`` checks the versions they name."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        *,
        reader: SqlReader | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self.registry = registry
        self._reader = reader or open_reader(db.url, db.engine)
        self._clock = clock

    @property
    def reader(self) -> SqlReader:
        """The plain-SQL reader this store polls with (shared with outcome sources)."""
        return self._reader

    # -- reads ------------------------------------------------------------------------

    def get(self, name: str) -> Deployment:
        rows = self._reader.fetch_all(_SELECT + " WHERE name = :name", {"name": name})
        if not rows:
            raise NotFoundError(f"no deployment named {name!r}; create it with `modelyard deploy`")
        return _deployment(rows[0])

    def list(self) -> builtins.list[Deployment]:
        return [_deployment(row) for row in self._reader.fetch_all(_SELECT + " ORDER BY name", {})]

    def revision(self, name: str) -> int | None:
        """The deployment's revision, or None if there is none: one indexed lookup."""
        sql = "SELECT revision FROM deployments WHERE name = :name"
        rows = self._reader.fetch_all(sql, {"name": name})
        return int(rows[0][0]) if rows else None

    def revisions(self) -> dict[str, int]:
        """Every deployment's revision, for workers polling for changes."""
        rows = self._reader.fetch_all("SELECT name, revision FROM deployments", {})
        return {str(name): int(revision) for name, revision in rows}

    def history(self, name: str) -> builtins.list[HistoryEntry]:
        """Every revision of the deployment, oldest first: who, when, why, and the config."""
        self.get(name)
        sql = (
            "SELECT revision, at, actor, reason, config FROM deployment_history "
            "WHERE deployment = :name ORDER BY revision"
        )
        return [
            HistoryEntry(int(r), at, actor, reason, DeploymentConfig.from_dict(json.loads(c)))
            for r, at, actor, reason, c in self._reader.fetch_all(sql, {"name": name})
        ]

    def events(self, name: str, kind_prefix: str = "", limit: int = 100) -> builtins.list[Event]:
        """The deployment's events (``rollout.*``, ``experiment.*``, ...), newest first."""
        sql = (
            "SELECT at, kind, subject, reason, payload, actor FROM events "
            "WHERE subject = :name AND kind LIKE :kind ORDER BY id DESC LIMIT :limit"
        )
        rows = self._reader.fetch_all(
            sql, {"name": name, "kind": kind_prefix + "%", "limit": limit}
        )
        return [
            Event(at, k, s, reason, json.loads(p), actor) for at, k, s, reason, p, actor in rows
        ]

    def resolve_version(self, model: str, ref: VersionRef) -> int:
        """The version ``ref`` names: ``3``, ``"3"``, an alias, ``model/3`` or ``model@alias``."""
        if isinstance(ref, int) or ref.isdigit():
            return self.registry.get_version(model, int(ref)).version
        parsed = parse_ref(ref if "/" in ref or "@" in ref else f"{model}@{ref}")
        if parsed.name != model:
            raise ValidationError(
                f"version {ref!r} belongs to model {parsed.name!r}, not {model!r}"
            )
        return self.registry.resolve(parsed)[1]

    # -- writes -----------------------------------------------------------------------

    def create(
        self,
        name: str,
        model: str,
        champion: VersionRef,
        *,
        actor: str | None = None,
        reason: str = "",
        follow_alias: str | None = None,
        routing_key: str | None = None,
        log_sample_rate: float | None = None,
        log_ttl_days: float | None = None,
    ) -> Deployment:
        """A new deployment serving ``champion`` of ``model`` (a version, or an alias now)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValidationError(
                f"deployment name {name!r} is not allowed: use letters, digits, '_', '.', '-'"
            )
        config = DeploymentConfig(
            model,
            self.resolve_version(model, champion),
            routing_key=None if routing_key is None else RoutingKey.parse(routing_key),
            follow_alias=follow_alias,
            log_sample_rate=log_sample_rate,
            log_ttl_days=log_ttl_days,
        )
        at = self._clock()
        reason = reason or f"created serving {model}/{config.champion}"
        try:
            with self._db.write() as conn:
                found = conn.execute(select(deployments.c.name).where(deployments.c.name == name))
                if found.first() is not None:
                    raise ConflictError(f"deployment {name!r} already exists; use update instead")
                conn.execute(
                    insert(deployments).values(
                        name=name,
                        model=model,
                        config=dumps(config.to_dict()),
                        rollout=None,
                        revision=1,
                        created_at=at,
                        updated_at=at,
                    )
                )
                _history(conn, name, 1, at, actor, reason, config)
                _event(conn, at, "deployment.create", name, reason, config.to_dict(), actor)
        except RejectedWriteError as error:  # lost a race with a concurrent create
            raise ConflictError(f"deployment {name!r} already exists") from error
        return Deployment(name, config, None, 1, at, at)

    def update(
        self,
        name: str,
        change: DeploymentConfig | Callable[[DeploymentConfig], DeploymentConfig],
        *,
        actor: str | None = None,
        reason: str = "",
    ) -> Deployment:
        """Replace the configuration (or apply ``change`` to the current one) atomically."""

        def apply(current: Deployment) -> Change:
            new = change(current.config) if callable(change) else change
            return Change(new, current.rollout, reason or "configuration updated")

        return self.mutate(name, apply, actor=actor, kind="deployment.update")

    def mutate(
        self,
        name: str,
        fn: Callable[[Deployment], Change | None],
        *,
        actor: str | None = None,
        now: float | None = None,
        kind: str | None = None,
    ) -> Deployment:
        """Read, change (``fn``; None: nothing to do), check and write one deployment.

        ``fn`` runs inside the write transaction, on the row as it is now. ``kind``,
        if given, adds an event of that kind carrying the new configuration.
        """
        at = self._clock() if now is None else now
        with self._db.write() as conn:
            row = conn.execute(
                select(deployments).where(deployments.c.name == name).with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"no deployment named {name!r}")
            current = _deployment(tuple(row))
            change = fn(current)
            if change is None:
                return current
            config = change.config
            self._check_versions(current.config, config)
            revision = current.revision + 1
            rollout = None if change.rollout is None else dumps(change.rollout.to_dict())
            conn.execute(
                update(deployments)
                .where(deployments.c.name == name)
                .values(
                    config=dumps(config.to_dict()),
                    rollout=rollout,
                    revision=revision,
                    updated_at=at,
                )
            )
            _history(conn, name, revision, at, actor, change.reason, config)
            extra = ((kind, change.reason, config.to_dict()),) if kind else ()
            for event_kind, reason, payload in (*extra, *change.events):
                _event(conn, at, event_kind, name, reason, payload, actor)
        return Deployment(name, config, change.rollout, revision, current.created_at, at)

    def set_shadow(
        self,
        name: str,
        version: VersionRef | None,
        share: float | None,
        *,
        actor: str | None = None,
        reason: str = "",
    ) -> Deployment:
        """Mirror ``share`` (0-1] of traffic to ``version``; ``share=None`` removes it (or all)."""
        model = self.get(name).config.model
        number = None if version is None else self.resolve_version(model, version)
        if share is None:
            why = reason or ("shadows removed" if number is None else f"shadow {number} removed")
        else:
            if number is None:
                raise ValidationError("a shadow needs a version to mirror traffic to")
            why = reason or f"shadow {number} at {share:.0%} of traffic"

        def apply(current: Deployment) -> Change:
            kept = tuple(s for s in current.config.shadows if number not in (None, s.version))
            if share is not None and number is not None:
                kept = (*kept, Shadow(number, share))
            config = replace(current.config, shadows=kept)
            return Change(config, current.rollout, why)

        return self.mutate(name, apply, actor=actor, kind="deployment.shadow")

    def start_experiment(
        self,
        name: str,
        arms: Sequence[tuple[str, VersionRef, float]],
        design: FixedHorizon | Sequential,
        *,
        control: str = "",
        metric: str = "label",
        kind: OutcomeKind = "conversion",
        higher_is_better: bool = True,
        actor: str | None = None,
        reason: str = "",
    ) -> Deployment:
        """Split traffic over ``arms`` (name, version, weight) until ``stop_experiment``."""
        model = self.get(name).config.model
        at = self._clock()
        experiment = Experiment(
            tuple(ExperimentArm(a, self.resolve_version(model, v), w) for a, v, w in arms),
            design,
            control,
            metric,
            kind,
            higher_is_better,
            started_at=at,
        )
        split = ", ".join(f"{a.name}=v{a.version}:{a.weight:g}%" for a in experiment.arms)
        why = reason or f"experiment started: {split}"

        def apply(current: Deployment) -> Change:
            current.require_idle("start an experiment")
            config = replace(current.config, experiment=experiment)
            return Change(config, current.rollout, why, (("experiment.start", why, {}),))

        return self.mutate(name, apply, actor=actor, now=at)

    def stop_experiment(
        self,
        name: str,
        *,
        promote: str | None = None,
        actor: str | None = None,
        reason: str = "",
        figures: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """End the experiment; ``promote`` names an arm whose version becomes the champion."""

        def apply(current: Deployment) -> Change:
            experiment = current.config.experiment
            if experiment is None:
                raise ConflictError(f"deployment {name!r} runs no experiment to stop")
            config = replace(current.config, experiment=None)
            why = reason or "experiment stopped"
            if promote is not None:
                version = experiment.arm(promote).version
                shadows = tuple(s for s in config.shadows if s.version != version)
                config = replace(config, champion=version, shadows=shadows)
                why += f"; arm {promote} (version {version}) promoted to champion"
            payload = {"experiment": experiment.to_dict(), **(figures or {})}
            return Change(config, current.rollout, why, (("experiment.stop", why, payload),))

        return self.mutate(name, apply, actor=actor)

    def sync_alias(self, name: str, *, actor: str | None = None) -> Deployment:
        """Move the champion to where ``follow_alias`` points now, if it moved.

        Skipped (the deployment returned unchanged) while a rollout or an experiment
        runs: the alias is followed once it ends.
        """
        found = self.get(name)
        alias = found.config.follow_alias
        if alias is None:
            raise ValidationError(f"deployment {name!r} follows no alias; set --follow-alias")
        _, version = self.registry.resolve(f"{found.config.model}@{alias}")
        if found.config.champion == version:
            return found  # the usual case: no write transaction

        def apply(current: Deployment) -> Change | None:
            config = current.config
            busy = current.rollout_active or config.experiment is not None
            if config.champion == version or busy:
                return None
            canary = None if config.canary == version else config.canary
            config = replace(
                config,
                champion=version,
                canary=canary,
                canary_weight=config.canary_weight if canary else 0.0,
                shadows=tuple(s for s in config.shadows if s.version != version),
            )
            why = f"alias {alias!r} moved: champion {current.config.champion} -> {version}"
            return Change(config, current.rollout, why, (("deployment.alias", why, {}),))

        return self.mutate(name, apply, actor=actor)

    # -- helpers ----------------------------------------------------------------------

    def _check_versions(self, old: DeploymentConfig, new: DeploymentConfig) -> None:
        """Every newly named version exists, and accepts the champion's inputs."""
        fresh = new.versions if new.model != old.model else new.versions - old.versions
        if not fresh:
            return
        champion = self.registry.get_version(new.model, new.champion).signature
        recheck = new.model != old.model or new.champion != old.champion
        for version in sorted((new.versions if recheck else fresh) - {new.champion}):
            other = self.registry.get_version(new.model, version).signature
            if not champion.same_inputs(other):
                raise ValidationError(
                    f"{new.model}/{version} ({new.role_of(version)}) does not accept the inputs "
                    f"of the champion {new.model}/{new.champion}: "
                    f"{describe_input_difference(champion, other)}"
                )


def _deployment(row: Sequence[Any]) -> Deployment:
    name, _model, config, rollout, revision, created_at, updated_at = row
    return Deployment(
        name,
        DeploymentConfig.from_dict(json.loads(config)),
        None if rollout is None else Rollout.from_dict(json.loads(rollout)),
        int(revision),
        float(created_at),
        float(updated_at),
    )


def _history(
    conn: Connection,
    name: str,
    revision: int,
    at: float,
    actor: str | None,
    reason: str,
    config: DeploymentConfig,
) -> None:
    conn.execute(
        insert(deployment_history).values(
            deployment=name,
            revision=revision,
            at=at,
            actor=actor,
            reason=reason,
            config=dumps(config.to_dict()),
        )
    )


def _event(
    conn: Connection,
    at: float,
    kind: str,
    subject: str,
    reason: str,
    payload: Mapping[str, Any],
    actor: str | None,
) -> None:
    conn.execute(
        insert(events).values(
            at=at, kind=kind, subject=subject, reason=reason, payload=dumps(payload), actor=actor
        )
    )
