"""Monitoring's ports to its tables (but the inference log's): drift results, alert rules,
alert events and webhook deliveries, in monitoring's own plain types.

``sql.SqlMonitoringRepository`` implements them on the metadata database and
``memory.InMemoryMonitoringRepository`` in memory, for tests;
``tests/integration/monitoring/test_repository_contract.py`` holds both to the
same behaviour. The inference log and feedback have their own port
(``inference_log.repository``). What monitoring needs from another context comes
through a port its caller passes in: ``ModelOf`` (the model a deployment serves,
which routing records) and the window reader (``drift_job.WindowReader``).

Errors are modelyard's: ``ValidationError`` for a webhook URL that is not
``http(s)://``, ``RejectedWriteError`` for a write the store refuses (a delivery
of an event that does not exist), ``StoreError`` for anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from modelyard.monitoring.drift import DriftReport
from modelyard.monitoring.rules import Alert, AlertRule

ModelOf = Callable[[str], str | None]
"""The model a deployment serves, or None when nothing says: routing's record of the
deployment, else the model of its latest logged traffic (wired by the caller)."""

DeliveryState = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True)
class DriftResult:
    """One stored drift check of one version of a deployment."""

    id: int
    deployment: str
    model: str
    version: int
    window_start: float
    window_end: float
    rows: int
    report: DriftReport
    computed_at: float

    @property
    def dataset_drift(self) -> bool:
        return self.report.dataset_drift

    @property
    def share_drifted(self) -> float:
        return self.report.share_drifted


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored (an alert, or any other kind a delivery points at)."""

    id: int
    at: float
    kind: str
    subject: str
    reason: str
    payload: dict[str, Any]
    actor: str | None


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery of one event to one URL."""

    id: int
    event_id: int
    url: str
    attempts: int
    state: str
    next_attempt_at: float
    last_error: str | None


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery leased to one deliverer, with the event it sends."""

    id: int
    url: str
    attempts: int
    event: StoredEvent


class DriftResults(Protocol):
    """The series of stored drift checks."""

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
        """Append a check (its ``rows`` are ``report.n_live``); the stored result, with its id."""
        ...

    def drift_results(
        self,
        deployment: str,
        since: float | None = None,
        until: float | None = None,
        *,
        version: int | None = None,
        limit: int | None = None,
    ) -> list[DriftResult]:
        """Checks whose window ended in ``[since, until]`` (of one version, if given), the newest
        ``limit`` of them, oldest first (by window end, then id)."""
        ...

    def drift_result(self, deployment: str, result_id: int) -> DriftResult | None:
        """The check ``result_id`` of ``deployment``; None when it has no such check."""
        ...


class AlertRepository(Protocol):
    """Alert rules, and the alerts they raised with the webhook deliveries of each."""

    def save_rule(self, rule: AlertRule, now: float) -> None:
        """Create the rule, or replace the rule of that name on its deployment."""
        ...

    def delete_rule(self, deployment: str, name: str) -> bool:
        """Remove a rule; False when there was none."""
        ...

    def rules(self, deployment: str | None = None) -> list[AlertRule]:
        """Stored rules (of one deployment, if given), by deployment and name."""
        ...

    def record_alerts(
        self, alerts: Sequence[Alert], webhooks: Mapping[tuple[str, str], str], actor: str
    ) -> list[int]:
        """Store an event (kind ``"alert"``, subject the deployment) per alert and, where
        ``webhooks`` maps its (deployment, rule) to a URL, a pending delivery due at the
        alert's time; all or nothing, in one transaction. The events' ids, in order."""
        ...

    def alert_events(self, deployment: str, since: float) -> list[StoredEvent]:
        """The deployment's alert events at or after ``since``, oldest first (by time, then id)."""
        ...


class WebhookDeliveries(Protocol):
    """Durable webhook deliveries, claimed with a lease so that two deliverers never
    send the same delivery at the same time."""

    def enqueue(self, event_id: int, urls: Sequence[str], now: float) -> list[int]:
        """A pending delivery of a stored event to each URL, due at ``now``, in one
        transaction; their ids."""
        ...

    def deliveries(
        self, *, event_id: int | None = None, state: str | None = None
    ) -> list[Delivery]:
        """Stored deliveries (of one event, in one state, if given), by id."""
        ...

    def claim(self, now: float, limit: int, lease_s: float) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` pending deliveries due at ``now`` (earliest due first, then by
        id): their next attempt moves to ``now + lease_s``, so no other claim gets them until
        the lease ends or ``complete`` records the attempt."""
        ...

    def complete(
        self,
        delivery_id: int,
        attempts: int,
        state: DeliveryState,
        last_error: str | None,
        next_attempt_at: float | None = None,
    ) -> None:
        """Record an attempt: the attempts so far, the state, the error (None: none) and,
        when given, the time of the next attempt."""
        ...


class MonitoringRepository(DriftResults, AlertRepository, WebhookDeliveries, Protocol):
    """Everything a monitoring pass stores: both adapters implement all three ports."""
