"""What the demo shows while it runs, read from the home the server and worker write:
the deployment's traffic split, the latest drift check, and the story so far (the
deployment's events and the alerts), as plain data for the live view and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelyard.monitoring import MonitoringRepository
from modelyard.routing import DeploymentStore

__all__ = ["Observation", "StoryEvent", "observe", "story_events"]

# The events that tell the story; the rest (plan saved, deployment created) stay in the
# home for ``modelyard history --events``.
_STORY = (
    "alert",
    "retrain.started",
    "retrain.trained",
    "retrain.registered",
    "retrain.rolled_out",
    "retrain.gate_failed",
    "retrain.failed",
    "rollout.start",
    "rollout.advance",
    "rollout.promote",
    "rollout.rollback",
    "rollout.abort",
)


@dataclass(frozen=True)
class StoryEvent:
    """One step of the story: when, what kind, its sentence and the figures behind it."""

    at: float
    kind: str
    text: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    """The deployment as it stands: who serves, the canary's weight, the latest drift check,
    and the story since the run began, oldest first."""

    champion: int
    canary: int | None
    canary_weight: float
    drifted: tuple[str, ...]  # the latest drift check's drifted features
    drift_share: float | None  # its share of drifted features; None before the first
    story: tuple[StoryEvent, ...]

    def first(self, kind: str, **payload: Any) -> StoryEvent | None:
        """The first event of ``kind`` whose figures hold ``payload``."""
        for event in self.story:
            if event.kind == kind and all(event.figures.get(k) == v for k, v in payload.items()):
                return event
        return None


def story_events(deployments: DeploymentStore, name: str, since: float) -> list[StoryEvent]:
    """The deployment's story events and alerts since ``since``, oldest first."""
    found = [
        StoryEvent(e.at, e.kind, e.reason, dict(e.payload))
        for e in deployments.events(name, "", limit=1_000)
        if e.at >= since and e.kind in _STORY
    ]  # alerts included: monitoring stores them among the deployment's events
    return sorted(found, key=lambda e: e.at)


def observe(
    deployments: DeploymentStore, monitoring: MonitoringRepository, name: str, since: float
) -> Observation:
    """The deployment ``name`` now, and its story since ``since``."""
    config = deployments.get(name).config
    checks = monitoring.drift_results(name, since, version=config.champion, limit=1)
    latest = checks[-1].report if checks else None
    return Observation(
        champion=config.champion,
        canary=config.canary,
        canary_weight=config.canary_weight,
        drifted=tuple(latest.drifted_features) if latest else (),
        drift_share=latest.share_drifted if latest else None,
        story=tuple(story_events(deployments, name, since)),
    )
