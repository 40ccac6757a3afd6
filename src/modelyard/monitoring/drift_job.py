"""The monitoring job: drift checks stored as a time series, and one full monitoring cycle.

Thin I/O around the pure parts. ``check_drift`` compares one version's live
rows with the reference sample stored at registration (``compare``, pure) and
stores the verdict in ``drift_results``; ``drift_history`` reads that series
back. ``monitor_cycle`` runs a whole pass over one deployment and window:
live metrics per version, a drift check per version, alert rules over the
figures, events, webhooks and subscribers.

Windows come from a ``WindowReader`` passed in, ``(db, deployment, start,
end) -> Window``: the inference log's reader in production, a list of
synthetic requests in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from sqlalchemy import desc, insert, select

from modelyard.errors import NotFoundError, ValidationError
from modelyard.monitoring.alerts import (
    AlertBus,
    AlertEvent,
    AlertRule,
    AlertState,
    Figures,
    evaluate,
    load_rules,
    record_alerts,
    restore_state,
)
from modelyard.monitoring.drift import DriftConfig, DriftReport, detect_drift
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.monitoring.live_metrics import (
    LiveMetrics,
    LiveMetricsExporter,
    QualityMetrics,
    TrafficMetrics,
    snapshot,
)
from modelyard.monitoring.window import Window
from modelyard.registry.catalog import Catalog
from modelyard.registry.profile import load_sample, output_columns
from modelyard.store.database import Database
from modelyard.store.schema import deployments, drift_results

WindowReader = Callable[[Database, str, float, float], Window]
# Live logs miss values now and then; a job should test what is there, not stop.
JOB_DRIFT_CONFIG = DriftConfig(nan_policy="omit")
_PREDICTION_COLUMNS = ("score", "prediction", "label")


@dataclass(frozen=True)
class Reference:
    """A version's reference sample (training features and the model's outputs) and metrics."""

    model: str
    version: int
    features: dict[str, np.ndarray]
    predictions: dict[str, np.ndarray]
    metrics: dict[str, float]


def load_reference(registry: Catalog, model: str, version: int) -> Reference:
    """The reference stored with ``model/version``; NotFoundError when it has no sample."""
    found = registry.get_version(model, version)
    digest = registry.profile(model, version).get("sample_digest")
    if not digest:
        raise NotFoundError(f"{model}/{version} has no reference sample to measure drift against")
    sample = load_sample(registry.artifact(digest, name=f"{model}/{version} reference sample"))
    return Reference(model, version, sample["feature"], sample["prediction"], dict(found.metrics))


def compare(
    reference: Reference,
    window: Window,
    config: DriftConfig | None = None,
    rng: np.random.Generator | int = 0,
) -> DriftReport:
    """Drift of the window's rows against the reference: its features and one output column.

    The live window must log every reference feature (extra inputs are
    ignored); the prediction test uses the first of ``score``, ``prediction``,
    ``label`` that both sides have.
    """
    missing = sorted(set(reference.features) - set(window.inputs))
    if missing:
        raise ValidationError(
            f"the live window of {window.deployment!r} lacks reference feature(s) "
            f"{', '.join(missing)}; inputs logged: {', '.join(sorted(window.inputs)) or 'none'}"
        )
    live = {name: window.inputs[name] for name in reference.features}
    outputs = output_columns(window.outputs)
    column = next(
        (c for c in _PREDICTION_COLUMNS if c in outputs and c in reference.predictions), None
    )
    return detect_drift(
        reference.features,
        live,
        config or JOB_DRIFT_CONFIG,
        rng,
        reference_predictions=None if column is None else reference.predictions[column],
        live_predictions=None if column is None else outputs[column],
    )


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


def store_drift(
    db: Database, deployment: str, model: str, version: int, window: Window,
    report: DriftReport, computed_at: float,
) -> DriftResult:  # fmt: skip
    """Append a verdict to the ``drift_results`` series."""
    with db.write() as conn:
        row_id = conn.execute(
            insert(drift_results)
            .values(
                deployment=deployment,
                model=model,
                version=version,
                window_start=window.start,
                window_end=window.end,
                rows=report.n_live,
                dataset_drift=int(report.dataset_drift),
                share_drifted=report.share_drifted,
                report=orjson.dumps(report.to_dict()).decode(),
                computed_at=computed_at,
            )
            .returning(drift_results.c.id)
        ).scalar_one()
    return DriftResult(
        int(row_id), deployment, model, version, window.start, window.end,
        report.n_live, report, computed_at,
    )  # fmt: skip


def check_drift(
    db: Database,
    reference: Reference,
    window: Window,
    now: float,
    *,
    config: DriftConfig | None = None,
    rng: np.random.Generator | int = 0,
    min_rows: int = 20,
) -> DriftResult | None:
    """Check the rows of ``reference.version`` in ``window`` and store the verdict.

    Returns None, storing nothing, when that version served fewer than
    ``min_rows`` rows: a handful of rows says nothing either way.
    """
    part = window.select(window.version == reference.version)
    if part.rows < min_rows:
        return None
    report = compare(reference, part, config, rng)
    return store_drift(db, window.deployment, reference.model, reference.version, part, report, now)


def drift_history(
    db: Database,
    deployment: str,
    since: float | None = None,
    until: float | None = None,
    *,
    version: int | None = None,
    limit: int | None = None,
) -> list[DriftResult]:
    """Stored checks whose window ended in ``[since, until]``, oldest first (newest ``limit``)."""
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
    with db.read() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        DriftResult(
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
        for row in reversed(rows)
    ]


def deployment_model(db: Database, deployment: str) -> str:
    """The model a deployment serves: from its deployment record, else from its logged traffic."""
    with db.read() as conn:
        model = conn.execute(
            select(deployments.c.model).where(deployments.c.name == deployment)
        ).scalar()
    if model is None:
        model = SqlInferenceLogRepository(db).latest_model(deployment)
    if model is None:
        raise NotFoundError(f"no deployment named {deployment!r}, and no traffic logged for it")
    return str(model)


# live metric -> names the reference may use for it
_REFERENCE_NAMES: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy", "acc"),
    "precision": ("precision",),
    "recall": ("recall",),
    "f1": ("f1", "f1_score"),
    "roc_auc": ("roc_auc", "auc"),
    "log_loss": ("log_loss", "logloss"),
    "mae": ("mae", "mean_absolute_error"),
    "rmse": ("rmse", "root_mean_squared_error"),
}
_DROPS = {"accuracy": "accuracy_drop", "precision": "precision_drop", "recall": "recall_drop"}
_DROPS |= {"f1": "f1_drop", "roc_auc": "auc_drop"}
_RISES = {"log_loss": "log_loss_rise", "mae": "mae_rise", "rmse": "rmse_rise"}


def figures_for(
    traffic: TrafficMetrics | None,
    quality: QualityMetrics | None,
    drift: DriftReport | None,
    reference_metrics: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """The figures the rules can read, including drops against the reference metrics."""
    values: dict[str, float] = {}
    if traffic is not None:
        values["requests"] = float(traffic.requests)
        values["error_rate"] = traffic.error_rate
        values["client_error_rate"] = traffic.client_error_rate
        for name in ("p50_ms", "p99_ms"):
            latency = getattr(traffic, name)
            if latency is not None:
                values[name] = latency
    if drift is not None:
        values["drift_share"] = drift.share_drifted
        values["dataset_drift"] = float(drift.dataset_drift)
        if drift.prediction_drift is not None:
            values["prediction_drift"] = float(drift.prediction_drift.drifted)
    if quality is not None:
        values["label_coverage"] = quality.coverage
        values.update(quality.metrics)
        reference = reference_metrics or {}
        for metric, live in quality.metrics.items():
            known = next(
                (reference[n] for n in _REFERENCE_NAMES.get(metric, ()) if n in reference), None
            )
            if known is None:
                continue
            if metric in _DROPS:
                values[_DROPS[metric]] = float(known) - live
            elif metric in _RISES:
                values[_RISES[metric]] = live - float(known)
    return values


@dataclass(frozen=True)
class CycleResult:
    """What one monitoring pass measured, stored and raised."""

    snapshot: LiveMetrics
    drift: dict[int, DriftResult]
    figures: list[Figures]
    alerts: list[AlertEvent]
    state: AlertState


def monitor_cycle(
    db: Database,
    registry: Catalog,
    deployment: str,
    start: float,
    end: float,
    *,
    window_reader: WindowReader,
    now: float,
    model: str | None = None,
    rules: list[AlertRule] | None = None,
    state: AlertState | None = None,
    bus: AlertBus | None = None,
    exporter: LiveMetricsExporter | None = None,
    config: DriftConfig | None = None,
    rng: np.random.Generator | int = 0,
    min_rows: int = 20,
) -> CycleResult:
    """One pass over ``[start, end)`` of a deployment: measure, check drift, alert.

    ``rules`` default to the deployment's stored rules; ``state`` (streaks and
    cooldowns) to the last firings found in the events of the past day. Pass
    the returned ``state`` to the next cycle so that ``for_windows`` streaks
    carry over.
    """
    model = model or deployment_model(db, deployment)
    window = window_reader(db, deployment, start, end)
    metrics = snapshot(window, by="version")
    generator = np.random.default_rng(rng)
    drift: dict[int, DriftResult] = {}
    figures: list[Figures] = []
    for key, group in metrics.groups.items():
        version = int(key)
        reference_metrics: Mapping[str, Any] = {}
        result = None
        try:
            reference = load_reference(registry, model, version)
        except NotFoundError:
            reference = None
        if reference is not None:
            reference_metrics = reference.metrics
            result = check_drift(
                db, reference, window, now, config=config, rng=generator, min_rows=min_rows
            )
        if result is not None:
            drift[version] = result
            if exporter is not None:
                exporter.update_drift(
                    deployment, version, result.share_drifted, result.dataset_drift
                )
        values = figures_for(
            group.traffic,
            group.quality,
            None if result is None else result.report,
            reference_metrics,
        )
        figures.append(Figures(deployment, version, values, window.start, window.end))
    if exporter is not None:
        exporter.update(metrics)
    rules = load_rules(db, deployment) if rules is None else rules
    state = restore_state(db, deployment, now - 86_400.0) if state is None else state
    alerts, state = evaluate(rules, figures, state, now)
    events = record_alerts(db, alerts, rules, bus)
    return CycleResult(metrics, drift, figures, events, state)
