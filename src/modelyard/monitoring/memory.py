"""Monitoring's repository in memory: the fake that unit tests (yours too) run the
monitoring logic on, with no database.

``InMemoryMonitoringRepository`` implements every port of ``repository`` with
dicts and lists behind one lock (a monitoring pass and a deliverer may run on
threads of their own). It keeps what the SQL adapter keeps, in the form the
adapter keeps it (reports, rules and payloads go through JSON), so what survives
the round trip is the same; ``tests/integration/monitoring/test_repository_contract.py``
holds the two to the same behaviour.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from modelyard.errors import RejectedWriteError
from modelyard.monitoring.drift import DriftReport
from modelyard.monitoring.repository import (
    ClaimedDelivery,
    Delivery,
    DeliveryState,
    DriftResult,
    StoredEvent,
)
from modelyard.monitoring.rules import Alert, AlertRule
from modelyard.monitoring.webhooks import check_url

_ALERT = "alert"


@dataclass(frozen=True)
class _Rule:
    spec: bytes  # AlertRule.to_dict() as JSON
    webhook_url: str | None
    enabled: bool
    created_at: float


class InMemoryMonitoringRepository:
    """Drift results, alert rules, events and webhook deliveries in dicts and lists."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drift: list[DriftResult] = []
        self._rules: dict[tuple[str, str], _Rule] = {}
        self._events: dict[int, StoredEvent] = {}
        self._deliveries: dict[int, Delivery] = {}
        self._next_event = 1
        self._next_delivery = 1

    # -- drift results ----------------------------------------------------------------

    def add_drift_result(
        self,
        deployment: str,
        model: str,
        version: int,
        window_start: float,
        window_end: float,
        report: DriftReport,
        computed_at: float,
    ) -> DriftResult:
        stored = DriftReport.from_dict(_json(report.to_dict()))
        with self._lock:
            result = DriftResult(
                len(self._drift) + 1, deployment, model, version, float(window_start),
                float(window_end), report.n_live, stored, float(computed_at),
            )  # fmt: skip
            self._drift.append(result)
        return replace(result, report=report)

    def drift_results(
        self,
        deployment: str,
        since: float | None = None,
        until: float | None = None,
        *,
        version: int | None = None,
        limit: int | None = None,
    ) -> list[DriftResult]:
        with self._lock:
            found = [
                r
                for r in self._drift
                if r.deployment == deployment
                and (since is None or r.window_end >= since)
                and (until is None or r.window_end <= until)
                and (version is None or r.version == version)
            ]
        found.sort(key=lambda r: (r.window_end, r.id), reverse=True)
        if limit is not None:
            found = found[:limit]
        return found[::-1]

    def drift_result(self, deployment: str, result_id: int) -> DriftResult | None:
        with self._lock:
            return next(
                (r for r in self._drift if r.id == result_id and r.deployment == deployment), None
            )

    # -- alert rules and alert events -------------------------------------------------

    def save_rule(self, rule: AlertRule, now: float) -> None:
        stored = _Rule(orjson.dumps(rule.to_dict()), rule.webhook_url, rule.enabled, now)
        with self._lock:
            self._rules[(rule.deployment, rule.name)] = stored

    def delete_rule(self, deployment: str, name: str) -> bool:
        with self._lock:
            return self._rules.pop((deployment, name), None) is not None

    def rules(self, deployment: str | None = None) -> list[AlertRule]:
        with self._lock:
            rows = sorted(self._rules.items())
        return [
            AlertRule.from_dict(
                name[0],
                name[1],
                orjson.loads(row.spec),
                webhook_url=row.webhook_url,
                enabled=row.enabled,
            )  # fmt: skip
            for name, row in rows
            if deployment is None or name[0] == deployment
        ]

    def record_alerts(
        self, alerts: Sequence[Alert], webhooks: Mapping[tuple[str, str], str], actor: str
    ) -> list[int]:
        with self._lock:
            # Build everything first and commit it at the end: all or nothing.
            next_event, next_delivery = self._next_event, self._next_delivery
            new_events: list[StoredEvent] = []
            new_deliveries: list[Delivery] = []
            for alert in alerts:
                event = StoredEvent(
                    next_event, float(alert.at), _ALERT, alert.deployment, alert.reason,
                    _json(alert.payload()), actor,
                )  # fmt: skip
                next_event += 1
                new_events.append(event)
                url = webhooks.get((alert.deployment, alert.rule))
                if url:
                    new_deliveries.append(_pending(next_delivery, event.id, url, alert.at))
                    next_delivery += 1
            self._commit(new_events, new_deliveries, next_event, next_delivery)
        return [event.id for event in new_events]

    def alert_events(self, deployment: str, since: float) -> list[StoredEvent]:
        with self._lock:
            found = [
                e
                for e in self._events.values()
                if e.kind == _ALERT and e.subject == deployment and e.at >= since
            ]
        return sorted(found, key=lambda e: (e.at, e.id))

    # -- webhook deliveries -----------------------------------------------------------

    def enqueue(self, event_id: int, urls: Sequence[str], now: float) -> list[int]:
        with self._lock:
            if event_id not in self._events:
                raise RejectedWriteError(
                    f"the database refused the write: no event {event_id} to deliver"
                )
            first = self._next_delivery
            new = [_pending(first + i, event_id, url, now) for i, url in enumerate(urls)]
            self._commit([], new, self._next_event, first + len(new))
        return [d.id for d in new]

    def deliveries(
        self, *, event_id: int | None = None, state: str | None = None
    ) -> list[Delivery]:
        with self._lock:
            return [
                d
                for _, d in sorted(self._deliveries.items())
                if (event_id is None or d.event_id == event_id)
                and (state is None or d.state == state)
            ]

    def claim(self, now: float, limit: int, lease_s: float) -> list[ClaimedDelivery]:
        with self._lock:
            due = sorted(
                (
                    d
                    for d in self._deliveries.values()
                    if d.state == "pending" and d.next_attempt_at <= now
                ),
                key=lambda d: (d.next_attempt_at, d.id),
            )[:limit]
            for delivery in due:
                self._deliveries[delivery.id] = replace(delivery, next_attempt_at=now + lease_s)
            return [ClaimedDelivery(d.id, d.url, d.attempts, self._events[d.event_id]) for d in due]

    def complete(
        self,
        delivery_id: int,
        attempts: int,
        state: DeliveryState,
        last_error: str | None,
        next_attempt_at: float | None = None,
    ) -> None:
        with self._lock:
            delivery = self._deliveries.get(delivery_id)
            if delivery is None:
                return  # as an UPDATE of no row
            delivery = replace(delivery, attempts=attempts, state=state, last_error=last_error)
            if next_attempt_at is not None:
                delivery = replace(delivery, next_attempt_at=float(next_attempt_at))
            self._deliveries[delivery_id] = delivery

    # -- helpers ----------------------------------------------------------------------

    def _commit(
        self,
        events: list[StoredEvent],
        deliveries: list[Delivery],
        next_event: int,
        next_delivery: int,
    ) -> None:
        """Apply one transaction's rows (the lock held)."""
        self._events.update((e.id, e) for e in events)
        self._deliveries.update((d.id, d) for d in deliveries)
        self._next_event, self._next_delivery = next_event, next_delivery


def _pending(delivery_id: int, event_id: int, url: str, now: float) -> Delivery:
    return Delivery(delivery_id, event_id, check_url(url), 0, "pending", float(now), None)


def _json(value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` as it comes back from a JSON column."""
    decoded: dict[str, Any] = orjson.loads(orjson.dumps(value))
    return decoded
