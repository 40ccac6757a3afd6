"""What becomes of an alert: an event, webhook deliveries and in-process subscribers.

The rules and their pure evaluation are ``rules``. Here is the I/O around them,
through an ``AlertRepository``: rules are stored and listed; every firing is an
event (kind ``"alert"``) plus a webhook delivery per configured URL, stored in
one transaction, then handed to the subscribers of an ``AlertBus`` (the
retraining loop subscribes there); the stored events give back the last firings
(``restore_state``), so cooldowns survive a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from modelyard.monitoring.repository import AlertRepository
from modelyard.monitoring.rules import Alert, AlertRule, AlertState, RuleState, StateKey

logger = logging.getLogger(__name__)


def save_rule(repository: AlertRepository, rule: AlertRule, now: float) -> None:
    """Create the rule, or replace the rule of that name on its deployment."""
    repository.save_rule(rule, now)


def delete_rule(repository: AlertRepository, deployment: str, name: str) -> bool:
    """Remove a rule; False when there was none."""
    return repository.delete_rule(deployment, name)


def load_rules(repository: AlertRepository, deployment: str | None = None) -> list[AlertRule]:
    """Stored rules (of one deployment, if given), by deployment and name."""
    return repository.rules(deployment)


@dataclass(frozen=True)
class AlertEvent:
    """An alert as stored: the ``events`` row id and the alert."""

    id: int
    alert: Alert


Subscriber = Callable[[AlertEvent], None]


class AlertBus:
    """In-process fan-out of alert events to subscribers (the retraining loop, say).

    A subscriber that raises is logged and skipped; the others still get the
    event, and the event stays stored whatever the subscribers do.
    """

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` with every published event; returns an unsubscribe function."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, event: AlertEvent) -> list[BaseException]:
        """Hand ``event`` to every subscriber; returns the errors they raised."""
        errors: list[BaseException] = []
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception as error:
                logger.exception("alert subscriber %r failed on event %s", subscriber, event.id)
                errors.append(error)
        return errors


def record_alerts(
    repository: AlertRepository,
    alerts: Sequence[Alert],
    rules: Iterable[AlertRule],
    bus: AlertBus | None = None,
    actor: str = "monitor",
) -> list[AlertEvent]:
    """Store an event (and webhook deliveries) per alert in one transaction, then publish."""
    urls = {(r.deployment, r.name): r.webhook_url for r in rules if r.webhook_url}
    ids = repository.record_alerts(alerts, urls, actor) if alerts else []
    stored = [AlertEvent(event_id, alert) for event_id, alert in zip(ids, alerts, strict=True)]
    if bus is not None:
        for event in stored:
            bus.publish(event)
    return stored


def restore_state(repository: AlertRepository, deployment: str, since: float) -> AlertState:
    """Last firings per rule and version from the stored events, so cooldowns survive restarts."""
    found: dict[StateKey, RuleState] = {}
    for event in repository.alert_events(deployment, since):
        key = (deployment, str(event.payload["rule"]), int(event.payload["version"]))
        found[key] = RuleState(0, float(event.at))
    return AlertState(found)


def recent_alerts(
    repository: AlertRepository, deployment: str, since: float
) -> list[dict[str, Any]]:
    """Alert events of a deployment since ``since``, oldest first, as plain dicts."""
    return [
        {"id": e.id, "at": e.at, "reason": e.reason, "payload": e.payload}
        for e in repository.alert_events(deployment, since)
    ]
