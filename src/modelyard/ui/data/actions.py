"""What a person may do from the dashboard, each recorded with who and why.

The same calls the CLI makes (``modelyard rollout pause|resume|promote|abort``,
``modelyard alias set``), with the signed-in name as the actor and the reason the
form asked for; acknowledging an alert is an ``alert.ack`` event beside the alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelyard.errors import ValidationError
from modelyard.routing.deployment import Event
from modelyard.ui.context import UiContext
from modelyard.ui.data.deployments import event_json

ROLLOUT_ACTIONS = ("pause", "resume", "promote", "abort")
ACK_KIND = "alert.ack"
_REASON_LIMIT = 1000


def reason_of(body: Mapping[str, Any]) -> str:
    """The ``reason`` field of an action: required, so the history says why."""
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("reason: say why (it is kept in the history)")
    if len(reason) > _REASON_LIMIT:
        raise ValidationError(f"reason: at most {_REASON_LIMIT} characters")
    return reason.strip()


def rollout_action(ui: UiContext, deployment: str, action: str, actor: str, reason: str) -> Any:
    """Pause, resume, promote or abort ``deployment``'s rollout; the deployment after it."""
    if action not in ROLLOUT_ACTIONS:
        raise ValidationError(f"action: one of {', '.join(ROLLOUT_ACTIONS)}, not {action!r}")
    operation = getattr(ui.controller, action)
    return operation(deployment, actor=actor, note=reason).to_dict()


def move_alias(
    ui: UiContext, model: str, alias: str, body: Mapping[str, Any], actor: str, reason: str
) -> dict[str, Any]:
    """Point ``model``'s ``alias`` at ``body["version"]``; the move as recorded."""
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValidationError("version: a version number (1 or more)")
    move = ui.yard.registry.set_alias(model, alias, version, actor=actor, reason=reason)
    return {
        "alias": move.alias,
        "from_version": move.from_version,
        "to_version": move.to_version,
        "actor": move.actor,
        "reason": move.reason,
        "at": move.at,
    }


def acknowledge_alert(
    ui: UiContext, deployment: str, alert_id: int, actor: str, reason: str, now: float
) -> dict[str, Any]:
    """Record that ``alert_id`` of ``deployment`` was seen and is being handled."""
    ui.deployments.get(deployment)  # NotFoundError for an unknown deployment
    alerts = {a.id for a in ui.monitoring.alert_events(deployment, 0.0)}
    if alert_id not in alerts:
        raise ValidationError(f"alert: deployment {deployment!r} has no alert {alert_id}")
    event = Event(now, ACK_KIND, deployment, reason, {"alert": alert_id}, actor)
    ui.events.record(event)
    return event_json(event)
