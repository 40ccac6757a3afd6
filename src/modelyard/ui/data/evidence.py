"""Each decision on the monitoring page with the evidence behind it. Pure: events, alerts
and drift checks in, JSON-ready rows out.

* An alert on a drift figure (``drift_share``, ``dataset_drift``, ``prediction_drift``)
  links to the drift check that raised it: the monitoring pass stores the check and
  fires the alert at the same time (``drift_job.monitor_cycle``: its ``computed_at`` is
  the alert's time), for the same version. Any other alert carries its figures.
* A rollout verdict (``rollout.*``) carries the canary analysis' figures and checks in
  its payload.
* A retrain (``retrain.*``, one attempt's events share its ``retrain`` id) links to its
  gate's figures: those of the attempt's ``retrain.registered``, ``.gate_failed`` or
  ``.unchanged`` event. A retrain started by drift links to the champion's drift check
  that preceded it; one started by an alert, to that alert.
* An alert's acknowledgement (``alert.ack``, ``ui.data.actions``) is shown with the alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from modelyard.monitoring.repository import DriftResult, StoredEvent
from modelyard.routing.deployment import Event
from modelyard.ui.data.actions import ACK_KIND

DRIFT_METRICS = frozenset({"drift_share", "dataset_drift", "prediction_drift"})
GATE_KINDS = ("retrain.registered", "retrain.gate_failed", "retrain.unchanged")
_SAME_TIME_S = 1e-3


def check_before(
    checks: Iterable[DriftResult], version: int | None, at: float
) -> DriftResult | None:
    """The drift check computed at ``at`` (of ``version``, if given), else the latest
    one computed before it."""
    best: DriftResult | None = None
    for check in checks:
        if version is not None and check.version != version:
            continue
        if check.computed_at <= at + _SAME_TIME_S and (
            best is None or (check.computed_at, check.id) > (best.computed_at, best.id)
        ):
            best = check
    return best


def check_link(check: DriftResult | None, at: float) -> dict[str, Any] | None:
    """A pointer to a drift check, as the page links to it; ``exact`` when the check was
    computed at ``at`` (the pass that raised the alert), not before it."""
    if check is None:
        return None
    return {
        "type": "drift_check",
        "exact": abs(check.computed_at - at) <= _SAME_TIME_S,
        "id": check.id,
        "version": check.version,
        "window_end": check.window_end,
        "dataset_drift": check.dataset_drift,
        "share_drifted": check.share_drifted,
    }


def alert_rows(
    alerts: Sequence[StoredEvent], acks: Iterable[Event], checks: Sequence[DriftResult]
) -> list[dict[str, Any]]:
    """Alerts newest first, each with who acknowledged it (the first acknowledgement) and,
    for a drift figure, the check that raised it."""
    acknowledged: dict[int, Event] = {}
    for ack in sorted(acks, key=lambda e: e.at):
        alert = ack.payload.get("alert")
        if isinstance(alert, int):
            acknowledged.setdefault(alert, ack)
    rows = []
    for alert in sorted(alerts, key=lambda a: (a.at, a.id), reverse=True):
        payload = alert.payload
        version = payload.get("version")
        evidence = None
        if payload.get("metric") in DRIFT_METRICS:
            of = version if isinstance(version, int) else None
            evidence = check_link(check_before(checks, of, alert.at), alert.at)
        seen = acknowledged.get(alert.id)
        rows.append(
            {
                "id": alert.id,
                "at": alert.at,
                "reason": alert.reason,
                "rule": payload.get("rule"),
                "version": version,
                "metric": payload.get("metric"),
                "value": payload.get("value"),
                "comparison": payload.get("comparison"),
                "threshold": payload.get("threshold"),
                "payload": payload,
                "acknowledged": None
                if seen is None
                else {"actor": seen.actor, "at": seen.at, "reason": seen.reason},
                "evidence": evidence,
            }
        )
    return rows


def decision_rows(
    events: Sequence[Event],
    checks: Sequence[DriftResult],
    alerts: Sequence[StoredEvent],
) -> list[dict[str, Any]]:
    """The deployment's decisions newest first (alerts and their acknowledgements are
    ``alert_rows``'), each with its payload and a link to its evidence, if any."""
    gates: dict[int, Event] = {}
    for event in events:
        attempt = event.payload.get("retrain")
        if event.kind in GATE_KINDS and isinstance(attempt, int):
            gates.setdefault(attempt, event)
    rows = []
    for event in sorted(events, key=lambda e: e.at, reverse=True):
        if event.kind in ("alert", ACK_KIND):
            continue
        rows.append(
            {
                "at": event.at,
                "kind": event.kind,
                "reason": event.reason,
                "actor": event.actor,
                "payload": event.payload,
                "evidence": _evidence(event, gates, checks, alerts),
            }
        )
    return rows


def _evidence(
    event: Event,
    gates: dict[int, Event],
    checks: Sequence[DriftResult],
    alerts: Sequence[StoredEvent],
) -> dict[str, Any] | None:
    payload = event.payload
    if event.kind.startswith("rollout.") and ("figures" in payload or "checks" in payload):
        return {
            "type": "canary_analysis",
            "verdict": payload.get("verdict"),
            "figures": payload.get("figures") or {},
            "checks": payload.get("checks") or [],
        }
    if not event.kind.startswith("retrain."):
        return None
    attempt = payload.get("retrain")
    if event.kind == "retrain.started":
        trigger = payload.get("trigger")
        champion = payload.get("champion")
        if trigger == "drift":
            version = champion if isinstance(champion, int) else None
            return check_link(check_before(checks, version, event.at), event.at)
        if trigger == "alert":
            before = [a for a in alerts if a.at <= event.at + _SAME_TIME_S]
            if before:
                alert = max(before, key=lambda a: (a.at, a.id))
                return {"type": "alert", "id": alert.id, "at": alert.at, "reason": alert.reason}
        return None
    gate = gates.get(attempt) if isinstance(attempt, int) else None
    if gate is None:
        return None
    return {
        "type": "gate",
        "retrain": attempt,
        "outcome": gate.kind,
        "reason": gate.reason,
        "gate": gate.payload.get("gate"),
        "candidate": gate.payload.get("candidate"),
        "champion": gate.payload.get("champion"),
        "holdout_rows": gate.payload.get("holdout_rows"),
    }
