"""The rollout controller: the thin I/O loop around ``canary.decide``, and manual operations.

``tick(now)`` looks at every deployment: for each rollout whose analysis is
due, it asks the ``MetricsSource`` for the champion's and the canary's traffic
over the analysis window, calls ``canary.decide`` and applies the verdict in
one store transaction: the canary's new weight, a promotion (the canary becomes
the champion) or a rollback (the canary leaves), with a ``rollout.<verdict>``
event carrying the reason and the figures, and a history row. Deployments that
follow a registry alias and run no rollout are synced to it.

``start``, ``pause``, ``resume``, ``promote`` and ``abort`` are the operator's
side; they land in the same rows. Nothing here sleeps: the runner calls ``tick``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from modelyard.errors import ConflictError, ModelyardError
from modelyard.registry.refs import ModelRef
from modelyard.routing import canary
from modelyard.routing.analysis import ArmTraffic
from modelyard.routing.canary import Decision, RolloutPolicy, Verdict
from modelyard.routing.deployment import Change, Deployment, Rollout
from modelyard.routing.deployment_store import DeploymentStore, VersionRef

__all__ = ["InMemoryMetrics", "MetricsSource", "RolloutController", "TickResult"]

log = logging.getLogger(__name__)
Operation = Callable[[canary.RolloutState, float, str | None], Decision]


class MetricsSource(Protocol):
    """One version's traffic on a deployment over ``[start, end)`` (the inference log's job).

    With ``compare_with`` (the champion, when ``version`` is the canary), the traffic also
    says on how many of the version's requests ``compare_with`` would have decided
    differently (``ArmTraffic.decisions_changed``).
    """

    def __call__(
        self,
        deployment: str,
        version: int,
        start: float,
        end: float,
        *,
        compare_with: ModelRef | None = None,
    ) -> ArmTraffic: ...


@dataclass(frozen=True)
class TickResult:
    """What one tick did to one deployment: a rollout decision, or an alias sync."""

    deployment: str
    decision: Decision | None = None
    synced_to: int | None = None
    error: str | None = None


class RolloutController:
    """Drives canary rollouts from metric snapshots; also the operator's manual controls."""

    def __init__(
        self,
        store: DeploymentStore,
        metrics_source: MetricsSource | None = None,
        clock: Callable[[], float] = time.time,
        *,
        actor: str = "rollout-controller",
    ) -> None:
        self._store = store
        self._metrics = metrics_source
        self._clock = clock
        self._actor = actor

    # -- the operator's side ----------------------------------------------------------

    def start(
        self,
        name: str,
        canary_version: VersionRef,
        policy: RolloutPolicy | None = None,
        *,
        actor: str | None = None,
        reason: str = "",
    ) -> Deployment:
        """Begin walking ``canary_version`` through ``policy``'s steps.

        Refused (ConflictError) while another rollout or an experiment runs, and
        (ValidationError) when the canary's inputs differ from the champion's.
        """
        policy = policy or RolloutPolicy()
        version = self._store.resolve_version(self._store.get(name).config.model, canary_version)
        now = self._clock()

        def apply(current: Deployment) -> Change:
            current.require_idle("start a rollout")
            state = canary.start_rollout(policy, now)
            config = replace(current.config, canary=version, canary_weight=state.weight)
            rollout = Rollout(version, policy, state, now, actor)
            why = reason or (
                f"rollout of version {version} started at {state.weight:g}% "
                f"(steps {', '.join(f'{w:g}' for w in policy.step_weights)})"
            )
            payload = {"canary": version, "champion": config.champion, **policy.to_dict()}
            return Change(config, rollout, why, (("rollout.start", why, payload),))

        return self._store.mutate(name, apply, actor=actor, now=now)

    def pause(self, name: str, *, actor: str | None = None, note: str | None = None) -> Deployment:
        """Freeze the canary at its weight until ``resume``."""
        return self._manual(name, "pause", canary.pause, actor, note)

    def resume(self, name: str, *, actor: str | None = None, note: str | None = None) -> Deployment:
        return self._manual(name, "resume", canary.resume, actor, note)

    def promote(
        self, name: str, *, actor: str | None = None, note: str | None = None
    ) -> Deployment:
        """Skip the remaining steps: the canary becomes the champion now."""
        return self._manual(name, "promote", canary.promote, actor, note)

    def abort(self, name: str, *, actor: str | None = None, note: str | None = None) -> Deployment:
        """Stop the rollout; all traffic goes back to the champion."""
        return self._manual(name, "abort", canary.abort, actor, note)

    def _manual(
        self, name: str, action: str, operation: Operation, actor: str | None, note: str | None
    ) -> Deployment:
        now = self._clock()

        def apply(current: Deployment) -> Change:
            if current.rollout is None:
                raise ConflictError(
                    f"deployment {name!r} has no rollout to {action}; "
                    "start one with `modelyard rollout start`"
                )
            decision = operation(current.rollout.state, now, note)
            return _apply(current, current.rollout, decision, f"rollout.{action}", now)

        done = self._store.mutate(name, apply, actor=actor, now=now)
        self._follow(done, actor)
        return done

    # -- the loop ---------------------------------------------------------------------

    def tick(self, now: float | None = None) -> list[TickResult]:
        """One pass over every deployment; a failure on one is logged and the rest go on."""
        now = self._clock() if now is None else now
        results = []
        for deployment in self._store.list():
            try:
                result = self._visit(deployment, now)
            except ModelyardError as error:
                log.warning("deployment %s: %s", deployment.name, error.message)
                result = TickResult(deployment.name, error=error.message)
            if result is not None:
                results.append(result)
        return results

    def _visit(self, deployment: Deployment, now: float) -> TickResult | None:
        record = deployment.rollout
        if record is None or not record.state.active:
            if deployment.config.follow_alias is None:
                return None
            before = deployment.config.champion
            synced = self._store.sync_alias(deployment.name, actor=self._actor)
            moved = synced.config.champion
            return None if moved == before else TickResult(deployment.name, synced_to=moved)
        if record.state.phase is canary.Phase.PAUSED:
            return None
        start = record.state.window_started_at
        if now < max(start, record.checked_at) + record.policy.interval_s:
            return None
        if self._metrics is None:
            raise ConflictError("the rollout controller was given no metrics source")
        champion = self._metrics(deployment.name, deployment.config.champion, start, now)
        champion_ref = ModelRef(deployment.config.model, version=deployment.config.champion)
        challenger = self._metrics(
            deployment.name, record.canary, start, now, compare_with=champion_ref
        )
        decisions: list[Decision] = []

        def apply(current: Deployment) -> Change | None:
            if current.revision != deployment.revision or current.rollout is None:
                return None  # changed meanwhile (paused, aborted): judge it next tick
            decision = canary.decide(
                current.rollout.policy, current.rollout.state, champion, challenger, now
            )
            decisions.append(decision)
            return _apply(current, current.rollout, decision, f"rollout.{decision.verdict}", now)

        done = self._store.mutate(deployment.name, apply, actor=self._actor, now=now)
        if not decisions:
            return None
        self._follow(done, self._actor)
        return TickResult(deployment.name, decision=decisions[0])

    def _follow(self, deployment: Deployment, actor: str | None) -> None:
        """After a promotion, move the followed alias too, so it does not pull the champion back."""
        alias, record = deployment.config.follow_alias, deployment.rollout
        if alias is None or record is None or record.state.phase is not canary.Phase.PROMOTED:
            return
        model, version = deployment.config.model, deployment.config.champion
        _, current = self._store.catalog.resolve(ModelRef(model, alias=alias))
        if current != version:
            reason = f"rollout on deployment {deployment.name!r} promoted version {version}"
            self._store.catalog.set_alias(model, alias, version, actor=actor, reason=reason)


def _apply(
    current: Deployment, record: Rollout, decision: Decision, kind: str, now: float
) -> Change:
    """The deployment after ``decision``: the canary's weight, promoted, or gone."""
    config = current.config
    state = decision.new_state
    if decision.verdict is Verdict.PROMOTE:
        shadows = tuple(s for s in config.shadows if s.version != record.canary)
        config = replace(
            config, champion=record.canary, canary=None, canary_weight=0.0, shadows=shadows
        )
    elif decision.verdict is Verdict.ROLLBACK:
        config = replace(config, canary=None, canary_weight=0.0)
    else:
        config = replace(config, canary_weight=state.weight)
    payload = {
        "verdict": decision.verdict.value,
        "canary": record.canary,
        "champion": current.config.champion,
        "figures": decision.figures,
        "checks": [c.to_dict() for c in decision.checks],
    }
    why = f"{kind}: {decision.reason}"
    rollout = replace(record, state=state, checked_at=now)
    return Change(config, rollout, why, ((kind, decision.reason, payload),))


class InMemoryMetrics:
    """A ``MetricsSource`` for tests and simulations: traffic recorded by ``record``."""

    _COLUMNS = ("at", "errors", "latency_ms", "predictions", "changed", "losses")

    def __init__(self, task: str | None = None) -> None:
        self._task = task
        self._batches: dict[tuple[str, int], list[tuple[npt.NDArray[np.float64], ...]]] = {}

    def record(
        self,
        deployment: str,
        version: int,
        at: npt.ArrayLike,
        errors: npt.ArrayLike,
        latency_ms: npt.ArrayLike,
        predictions: npt.ArrayLike | None = None,
        *,
        changed: npt.ArrayLike | None = None,
        losses: npt.ArrayLike | None = None,
    ) -> None:
        """Requests at times ``at``, each failed or not, its latency, (optional) prediction,
        whether the champion would have decided otherwise, and its loss once labelled
        (NaN where unknown)."""
        times = np.asarray(at, dtype=np.float64).ravel()
        columns = [times, np.asarray(errors, np.float64), np.asarray(latency_ms, np.float64)]
        for optional in (predictions, changed, losses):
            columns.append(
                np.full(times.size, np.nan)
                if optional is None
                else np.asarray(optional, np.float64)
            )
        self._batches.setdefault((deployment, version), []).append(
            tuple(np.broadcast_to(c.ravel(), times.shape) for c in columns)
        )

    def __call__(
        self,
        deployment: str,
        version: int,
        start: float,
        end: float,
        *,
        compare_with: ModelRef | None = None,
    ) -> ArmTraffic:
        batches = self._batches.get((deployment, version), [])
        if not batches:
            return ArmTraffic(0, 0)
        times, errors, latency, predictions, changed, losses = (
            np.concatenate(c) for c in zip(*batches, strict=True)
        )
        inside = (times >= start) & (times < end)

        def known(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            kept = values[inside]
            return kept[~np.isnan(kept)]

        sample, compared, loss = known(predictions), known(changed), known(losses)
        return ArmTraffic(
            request_count=int(inside.sum()),
            error_count=int(errors[inside].astype(bool).sum()),
            latency_samples_ms=latency[inside],
            prediction_sample=sample if sample.size else None,
            decisions_compared=int(compared.size) if compare_with is not None else 0,
            decisions_changed=int(compared.sum()) if compare_with is not None else 0,
            losses=loss if loss.size else None,
            task=self._task if loss.size else None,
        )
