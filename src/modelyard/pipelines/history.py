"""A deployment's retrains told as stories: one ``Episode`` per attempt, from its events.

Pure: ``episodes`` reads the deployment's events oldest first. ``retrain.*`` events
carry their attempt's id; the rollout that follows is the controller's ``rollout.*``
events whose canary is the version the attempt registered, from its ``rollout.start``
to the promotion or rollback; an A/B test's start and end are ``retrain.ab_*`` events.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from modelyard.routing.deployment import Event

__all__ = ["Episode", "episodes"]

_ENDINGS = {
    "rollout.promote": "promoted",
    "rollout.rollback": "rolled back",
    "rollout.abort": "aborted",
}

_AB_ENDINGS = {"retrain.ab_promoted": "promoted", "retrain.ab_stopped": "kept out"}


@dataclass
class Episode:
    """One retrain, from what started it to how its canary (or A/B test) ended."""

    retrain: int
    started_at: float
    trigger: str = ""
    reason: str = ""
    run_id: str | None = None
    gate: str = ""
    version: int | None = None
    weights: list[float] = field(default_factory=list)
    outcome: str = "running"
    ended_at: float | None = None

    def story(self) -> str:
        """``drift in amount at 14:02 -> run 5c1d9a2e -> v8 beat v7 on roc_auc ... ->
        canary 5..100% -> promoted 14:31``."""
        parts = [f"{self.reason} at {_clock(self.started_at)}"]
        if self.run_id:
            parts.append(f"run {self.run_id[:8]}")
        if self.gate:
            parts.append(self.gate)
        if self.weights and self.outcome == "canary out":
            parts.append(f"canary at {self.weights[-1]:g}%")
        elif self.weights:
            parts.append(f"canary {self.weights[0]:g}..{self.weights[-1]:g}%")
        if self.outcome != "canary out":
            ended = "" if self.ended_at is None else f" {_clock(self.ended_at)}"
            parts.append(self.outcome + ended)
        return " -> ".join(parts)


def episodes(events: Iterable[Event]) -> list[Episode]:
    """The attempts found in ``events`` (oldest first), oldest first."""
    found: dict[int, Episode] = {}
    rolling: Episode | None = None  # the attempt whose canary is out
    steps: list[float] = []
    for event in events:
        payload = event.payload
        if event.kind.startswith("retrain.") and isinstance(payload.get("retrain"), int):
            episode = found.setdefault(payload["retrain"], Episode(payload["retrain"], event.at))
            rolling = _retrain_event(episode, event) or rolling
        elif event.kind == "rollout.start" and rolling is not None:
            if payload.get("canary") == rolling.version:
                steps = [float(w) for w in payload.get("step_weights", [])]
                rolling.weights = steps[:1]
                rolling.outcome = "canary out"
        elif event.kind.startswith("rollout.") and rolling is not None:
            if payload.get("canary") != rolling.version:
                continue
            if event.kind == "rollout.advance" and len(rolling.weights) < len(steps):
                rolling.weights = steps[: len(rolling.weights) + 1]
            ending = _ENDINGS.get(event.kind)
            if ending is not None:
                if ending == "promoted":
                    rolling.weights = steps or rolling.weights
                rolling.outcome, rolling.ended_at = ending, event.at
                rolling = None
    return sorted(found.values(), key=lambda e: e.started_at)


def _retrain_event(episode: Episode, event: Event) -> Episode | None:
    """Apply one ``retrain.*`` event; returns the episode once its version is known (its
    canary's ``rollout.start`` comes next)."""
    kind, payload = event.kind, event.payload
    if kind == "retrain.started":
        episode.trigger = str(payload.get("trigger", ""))
        trigger, _, reason = event.reason.partition(": ")
        episode.reason = reason or trigger
    elif kind == "retrain.trained":
        episode.run_id = payload.get("run_id")
    elif kind == "retrain.held":
        episode.outcome = "registered, rollout not started"
        episode.gate += f" ({event.reason})"
    elif kind in ("retrain.registered", "retrain.resumed"):
        episode.version = payload.get("version")
        episode.gate = event.reason
        episode.outcome = "registered"
        return episode
    elif kind == "retrain.ab_started":
        episode.outcome = "A/B test running"
    elif kind in _AB_ENDINGS:
        episode.outcome, episode.ended_at = _AB_ENDINGS[kind], event.at
        episode.gate += f" -> A/B test: {event.reason}"
    elif kind in (
        "retrain.gate_failed",
        "retrain.failed",
        "retrain.abandoned",
        "retrain.unchanged",
    ):
        episode.outcome = kind.removeprefix("retrain.").replace("_", " ")
        episode.gate = event.reason
        episode.ended_at = event.at
    return None


def _clock(at: float) -> str:
    return time.strftime("%H:%M", time.gmtime(at))
