"""Monitoring's tables on the metadata database: ``drift_results``, ``alert_rules``, the
alert rows of ``events`` and ``webhook_deliveries`` (SQLite or PostgreSQL).

``SqlMonitoringRepository(db)`` implements every port of ``repository``. Every
read and write goes through SQLAlchemy Core (none of them is on a request's hot
path, so none goes through ``SqlReader``); every change is one ``db.write()``
transaction, whose errors ``Database`` already translates into modelyard's.
Claiming deliveries locks the due rows with ``SELECT ... FOR UPDATE SKIP
LOCKED`` on PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` already serialises the
writers) and moves their next attempt a lease ahead in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson
from sqlalchemy import Connection, RowMapping, delete, desc, insert, select, update

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
from modelyard.store.database import Database
from modelyard.store.schema import alert_rules, drift_results, events, webhook_deliveries

_ALERT = "alert"


class SqlMonitoringRepository:
    """Drift results, alert rules, alert events and webhook deliveries in ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
        with self._db.write() as conn:
            row_id = conn.execute(
                insert(drift_results)
                .values(
                    deployment=deployment,
                    model=model,
                    version=version,
                    window_start=window_start,
                    window_end=window_end,
                    rows=report.n_live,
                    dataset_drift=int(report.dataset_drift),
                    share_drifted=report.share_drifted,
                    report=orjson.dumps(report.to_dict()).decode(),
                    computed_at=computed_at,
                )
                .returning(drift_results.c.id)
            ).scalar_one()
        return DriftResult(
            int(row_id), deployment, model, version, window_start, window_end,
            report.n_live, report, computed_at,
        )  # fmt: skip

    def drift_results(
        self,
        deployment: str,
        since: float | None = None,
        until: float | None = None,
        *,
        version: int | None = None,
        limit: int | None = None,
    ) -> list[DriftResult]:
        table = drift_results.c
        query = select(drift_results).where(table.deployment == deployment)
        if since is not None:
            query = query.where(table.window_end >= since)
        if until is not None:
            query = query.where(table.window_end <= until)
        if version is not None:
            query = query.where(table.version == version)
        query = query.order_by(desc(table.window_end), desc(table.id))
        if limit is not None:
            query = query.limit(limit)
        with self._db.read() as conn:
            rows = conn.execute(query).mappings().all()
        return [_drift_result(row) for row in reversed(rows)]

    def drift_result(self, deployment: str, result_id: int) -> DriftResult | None:
        table = drift_results.c
        query = select(drift_results).where(table.id == result_id, table.deployment == deployment)
        with self._db.read() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _drift_result(row)

    # -- alert rules and alert events -------------------------------------------------

    def save_rule(self, rule: AlertRule, now: float) -> None:
        with self._db.write() as conn:
            conn.execute(
                delete(alert_rules).where(
                    alert_rules.c.deployment == rule.deployment, alert_rules.c.name == rule.name
                )
            )
            conn.execute(
                insert(alert_rules).values(
                    deployment=rule.deployment,
                    name=rule.name,
                    rule=orjson.dumps(rule.to_dict()).decode(),
                    webhook_url=rule.webhook_url,
                    enabled=int(rule.enabled),
                    created_at=now,
                )
            )

    def delete_rule(self, deployment: str, name: str) -> bool:
        with self._db.write() as conn:
            result = conn.execute(
                delete(alert_rules).where(
                    alert_rules.c.deployment == deployment, alert_rules.c.name == name
                )
            )
        return bool(result.rowcount)

    def rules(self, deployment: str | None = None) -> list[AlertRule]:
        query = select(alert_rules).order_by(alert_rules.c.deployment, alert_rules.c.name)
        if deployment is not None:
            query = query.where(alert_rules.c.deployment == deployment)
        with self._db.read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            AlertRule.from_dict(
                row["deployment"],
                row["name"],
                orjson.loads(row["rule"]),
                webhook_url=row["webhook_url"],
                enabled=bool(row["enabled"]),
            )
            for row in rows
        ]

    def record_alerts(
        self, alerts: Sequence[Alert], webhooks: Mapping[tuple[str, str], str], actor: str
    ) -> list[int]:
        ids: list[int] = []
        with self._db.write() as conn:
            for alert in alerts:
                event_id = conn.execute(
                    insert(events)
                    .values(
                        at=alert.at,
                        kind=_ALERT,
                        subject=alert.deployment,
                        reason=alert.reason,
                        payload=orjson.dumps(alert.payload()).decode(),
                        actor=actor,
                    )
                    .returning(events.c.id)
                ).scalar_one()
                url = webhooks.get((alert.deployment, alert.rule))
                if url:
                    _enqueue(conn, int(event_id), [url], alert.at)
                ids.append(int(event_id))
        return ids

    def alert_events(self, deployment: str, since: float) -> list[StoredEvent]:
        query = (
            select(events)
            .where(events.c.kind == _ALERT, events.c.subject == deployment, events.c.at >= since)
            .order_by(events.c.at, events.c.id)
        )
        with self._db.read() as conn:
            return [_event(row) for row in conn.execute(query).mappings()]

    # -- webhook deliveries -----------------------------------------------------------

    def enqueue(self, event_id: int, urls: Sequence[str], now: float) -> list[int]:
        with self._db.write() as conn:
            return _enqueue(conn, event_id, urls, now)

    def deliveries(
        self, *, event_id: int | None = None, state: str | None = None
    ) -> list[Delivery]:
        query = select(webhook_deliveries).order_by(webhook_deliveries.c.id)
        if event_id is not None:
            query = query.where(webhook_deliveries.c.event_id == event_id)
        if state is not None:
            query = query.where(webhook_deliveries.c.state == state)
        with self._db.read() as conn:
            return [Delivery(**row) for row in conn.execute(query).mappings()]

    def claim(self, now: float, limit: int, lease_s: float) -> list[ClaimedDelivery]:
        table = webhook_deliveries.c
        due = (
            select(
                table.id.label("delivery_id"),
                table.attempts,
                table.url,
                *events.c,
            )
            .join(events, events.c.id == table.event_id)
            .where(table.state == "pending", table.next_attempt_at <= now)
            .order_by(table.next_attempt_at, table.id)
            .limit(limit)
            .with_for_update(of=webhook_deliveries, skip_locked=True)
        )
        with self._db.write() as conn:
            rows = conn.execute(due).mappings().all()
            if rows:
                conn.execute(
                    update(webhook_deliveries)
                    .where(table.id.in_([row["delivery_id"] for row in rows]))
                    .values(next_attempt_at=now + lease_s)
                )
        return [
            ClaimedDelivery(int(row["delivery_id"]), row["url"], int(row["attempts"]), _event(row))
            for row in rows
        ]

    def complete(
        self,
        delivery_id: int,
        attempts: int,
        state: DeliveryState,
        last_error: str | None,
        next_attempt_at: float | None = None,
    ) -> None:
        values: dict[str, object] = {"attempts": attempts, "state": state}
        values["last_error"] = last_error
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        with self._db.write() as conn:
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id)
                .values(**values)
            )


def _enqueue(conn: Connection, event_id: int, urls: Sequence[str], now: float) -> list[int]:
    """Pending deliveries of event ``event_id``, due at ``now``, inside ``conn``'s transaction."""
    ids = []
    for url in urls:
        ids.append(
            conn.execute(
                insert(webhook_deliveries)
                .values(
                    event_id=event_id,
                    url=check_url(url),
                    attempts=0,
                    state="pending",
                    next_attempt_at=now,
                )
                .returning(webhook_deliveries.c.id)
            ).scalar_one()
        )
    return [int(i) for i in ids]


def _drift_result(row: RowMapping) -> DriftResult:
    return DriftResult(
        id=int(row["id"]),
        deployment=row["deployment"],
        model=row["model"],
        version=int(row["version"]),
        window_start=float(row["window_start"]),
        window_end=float(row["window_end"]),
        rows=int(row["rows"]),
        report=DriftReport.from_dict(orjson.loads(row["report"])),
        computed_at=float(row["computed_at"]),
    )


def _event(row: RowMapping) -> StoredEvent:
    return StoredEvent(
        id=int(row["id"]),
        at=float(row["at"]),
        kind=row["kind"],
        subject=row["subject"],
        reason=row["reason"],
        payload=orjson.loads(row["payload"]),
        actor=row["actor"],
    )
