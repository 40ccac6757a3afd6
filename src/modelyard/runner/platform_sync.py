"""Pushing each change of a deployment to the platform that splits its traffic (KServe).

The rollout controller decides as it always does, in the database; this job, on the
leader, makes the platform follow. Every ``interval_s`` it looks at each deployment whose
target is pushed (``platforms.PUSHED_TARGETS``), and when its revision is not the one
last pushed (``platforms.sync.push_due``) renders its manifests again (the canary at the
rollout's current step, each predictor pinned to its version) and hands them to the
``PlatformSink``. Each push is an event of the deployment, beside the decision that
caused it:

* ``platform.pushed``: the revision, the canary's weight and where it went;
* ``platform.push_failed``: the error, the attempt, and when it is tried again (the
  delay doubles, up to a minute), until a push of the deployment's current revision
  succeeds.

A push never holds a decision back: the controller's thread writes the decision first,
and this one follows. A node that takes the lead over reads the last ``platform.pushed``
event of each deployment, so it pushes only what its predecessor had not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from modelyard.errors import ModelyardError
from modelyard.platforms import PUSHED_TARGETS, PlatformSink
from modelyard.platforms.sync import PushState, after_failure, after_push, push_due
from modelyard.routing import Deployment, DeploymentStore, Event, EventLog
from modelyard.runner.periodic import EventLog as JobLog

__all__ = ["PlatformSyncJob"]

ACTOR = "platform-sync"
Render = Callable[[Deployment], Sequence[dict[str, Any]]]


class PlatformSyncJob:
    """Pushes the pushed targets' deployments to ``sink`` after each change."""

    name = "platform-sync"
    failure_event = "platform_sync_failed"
    wait_first = False

    def __init__(
        self,
        deployments: DeploymentStore,
        events: EventLog,
        render: Render,
        sink: PlatformSink,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._deployments = deployments
        self._events = events
        self._render = render
        self._sink = sink
        self.interval_s = interval_s
        self._clock = clock
        self._states: dict[str, PushState] = {}

    def tick(self, log: JobLog) -> None:
        for deployment in self._deployments.list():
            if deployment.config.target.kind in PUSHED_TARGETS:
                self._visit(deployment, log)

    def _visit(self, deployment: Deployment, log: JobLog) -> None:
        name, revision = deployment.name, deployment.revision
        state = self._states.get(name) or self._recall(name)
        now = self._clock()
        if not push_due(state, revision, now):
            self._states[name] = state
            return
        config = deployment.config
        try:
            self._sink.push(name, self._render(deployment))
        except ModelyardError as error:
            state = after_failure(state, now)
            self._states[name] = state
            fields = {
                "deployment": name,
                "revision": revision,
                "target": config.target.kind,
                "where": self._sink.where,
                "error": error.message,
                "attempt": state.failures,
                "retry_in_s": round(state.retry_at - now, 3),
            }
            self._record("platform.push_failed", name, error.message, fields, now)
            log.emit("error", "platform_push_failed", fields)
            return
        self._states[name] = after_push(revision)
        fields = {
            "deployment": name,
            "revision": revision,
            "target": config.target.kind,
            "where": self._sink.where,
            "champion": config.champion,
            "canary": config.canary,
            "canary_weight": config.canary_weight,
            "attempts": state.failures + 1,
        }
        why = f"revision {revision} pushed to {self._sink.where}"
        self._record("platform.pushed", name, why, fields, now)
        log.emit("info", "platform_pushed", fields)

    def _recall(self, name: str) -> PushState:
        """What the last leader pushed, from the deployment's events."""
        for event in self._events.events(name, "platform.pushed", limit=1):
            revision = event.payload.get("revision")
            if isinstance(revision, int):
                return PushState(revision)
        return PushState()

    def _record(
        self, kind: str, subject: str, reason: str, payload: dict[str, Any], now: float
    ) -> None:
        self._events.record(Event(now, kind, subject, reason, payload, ACTOR))
