"""The deployment store: the rules for changing a deployment, over a ``DeploymentRepository``.

Every change is one ``repository.change``: the deployment is read locked against
every other writer, the new configuration computed, every version it newly names
checked against the ``VersionCatalog`` (it exists; its inputs match the
champion's), ``revision`` bumped, and the row, a history entry and the events
kept together. A change that fails any check leaves nothing behind.
"""

from __future__ import annotations

import builtins
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from modelyard.errors import ConflictError, NotFoundError, RejectedWriteError, ValidationError
from modelyard.registry.refs import ModelRef, parse_ref
from modelyard.routing.abtest import FixedHorizon, Sequential
from modelyard.routing.deployment import (
    Change,
    Deployment,
    DeploymentConfig,
    Event,
    FeatureInputs,
    HistoryEntry,
    RoutingKey,
    Shadow,
    describe_input_difference,
)
from modelyard.routing.experiments import Experiment, ExperimentArm, OutcomeKind
from modelyard.routing.repository import DeploymentRepository, Revision, VersionCatalog
from modelyard.routing.targets import Target

__all__ = ["DeploymentStore", "VersionRef"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
VersionRef = int | str


class DeploymentStore:
    """Deployments kept by ``repository``; ``catalog`` (the registry) checks their versions."""

    def __init__(
        self,
        repository: DeploymentRepository,
        catalog: VersionCatalog,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self.catalog = catalog
        self._clock = clock

    # -- reads ------------------------------------------------------------------------

    def get(self, name: str) -> Deployment:
        found = self._repository.get(name)
        if found is None:
            raise NotFoundError(f"no deployment named {name!r}; create it with `modelyard deploy`")
        return found

    def list(self) -> builtins.list[Deployment]:
        return self._repository.list()

    def revision(self, name: str) -> int | None:
        """The deployment's revision, or None if there is none: one indexed lookup."""
        return self._repository.revision(name)

    def revisions(self) -> dict[str, int]:
        """Every deployment's revision, for workers polling for changes."""
        return self._repository.revisions()

    def history(self, name: str) -> builtins.list[HistoryEntry]:
        """Every revision of the deployment, oldest first: who, when, why, and the config."""
        self.get(name)
        return self._repository.history(name)

    def events(self, name: str, kind_prefix: str = "", limit: int = 100) -> builtins.list[Event]:
        """The deployment's events (``rollout.*``, ``experiment.*``, ...), newest first."""
        return self._repository.events(name, kind_prefix, limit)

    def resolve_version(self, model: str, ref: VersionRef) -> int:
        """The version ``ref`` names: ``3``, ``"3"``, an alias, ``model/3`` or ``model@alias``."""
        if isinstance(ref, int) or ref.isdigit():
            return self.catalog.get_version(model, int(ref)).version
        parsed = parse_ref(ref if "/" in ref or "@" in ref else f"{model}@{ref}")
        if parsed.name != model:
            raise ValidationError(
                f"version {ref!r} belongs to model {parsed.name!r}, not {model!r}"
            )
        return self.catalog.resolve(parsed)[1]

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
        features: FeatureInputs | None = None,
        target: Target | None = None,
    ) -> Deployment:
        """A new deployment serving ``champion`` of ``model`` (a version, or an alias now);
        with ``features``, those model inputs come from the feature store; ``target``:
        where it runs (default: modelyard's own servers)."""
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
            features=features,
            target=target or Target(),
        )
        self._check_features(config)
        at = self._clock()
        reason = reason or f"created serving {model}/{config.champion}"
        created = Deployment(name, config, None, 1, at, at)
        event = Event(at, "deployment.create", name, reason, config.to_dict(), actor)

        def add(current: Deployment | None) -> Revision:
            if current is not None:
                raise ConflictError(f"deployment {name!r} already exists; use update instead")
            return Revision(created, actor, reason, (event,))

        try:
            self._repository.change(name, add)
        except RejectedWriteError as error:  # lost a race with a concurrent create
            raise ConflictError(f"deployment {name!r} already exists") from error
        return created

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

        def step(current: Deployment | None) -> Revision | None:
            if current is None:
                raise NotFoundError(f"no deployment named {name!r}")
            change = fn(current)
            if change is None:
                return None
            config = change.config
            self._check_versions(current.config, config)
            changed = Deployment(
                name, config, change.rollout, current.revision + 1, current.created_at, at
            )
            extra = ((kind, change.reason, config.to_dict()),) if kind else ()
            events = tuple(
                Event(at, event_kind, name, reason, dict(payload), actor)
                for event_kind, reason, payload in (*extra, *change.events)
            )
            return Revision(changed, actor, change.reason, events)

        kept = self._repository.change(name, step)
        if kept is None:  # pragma: no cover - step refuses a missing deployment
            raise NotFoundError(f"no deployment named {name!r}")
        return kept

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
        _, version = self.catalog.resolve(ModelRef(found.config.model, alias=alias))
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

    def _check_features(self, config: DeploymentConfig) -> None:
        """Every feature a deployment fetches fills an input of its champion, and an event
        time field that is one of its inputs holds numbers."""
        if config.features is None:
            return
        signature = self.catalog.get_version(config.model, config.champion).signature
        specs = {spec.name: spec for spec in signature.inputs}
        inputs = set(specs)
        unknown = [name for name in config.features.inputs if name not in inputs]
        if unknown:
            raise ValidationError(
                f"features {unknown} fill no input of {config.model}/{config.champion}; "
                f"its inputs are {sorted(inputs)}"
            )
        event_time = config.features.event_time
        if event_time in specs and specs[event_time].kind not in ("number", "integer"):
            raise ValidationError(
                f"features.event_time {event_time!r} is a {specs[event_time].kind} input of "
                f"{config.model}/{config.champion}; an event time is a number (epoch seconds)"
            )

    def _check_versions(self, old: DeploymentConfig, new: DeploymentConfig) -> None:
        """Every newly named version exists, and accepts the champion's inputs."""
        if new.features != old.features or new.champion != old.champion:
            self._check_features(new)
        fresh = new.versions if new.model != old.model else new.versions - old.versions
        if not fresh:
            return
        champion = self.catalog.get_version(new.model, new.champion).signature
        recheck = new.model != old.model or new.champion != old.champion
        for version in sorted((new.versions if recheck else fresh) - {new.champion}):
            other = self.catalog.get_version(new.model, version).signature
            if not champion.same_inputs(other):
                raise ValidationError(
                    f"{new.model}/{version} ({new.role_of(version)}) does not accept the inputs "
                    f"of the champion {new.model}/{new.champion}: "
                    f"{describe_input_difference(champion, other)}"
                )
