"""The monitoring job: drift checks stored as a time series, and one full monitoring cycle.

Thin I/O around the pure parts. ``check_drift`` compares one version's live
rows with the reference sample stored at registration (``compare``, pure) and
stores the verdict through a ``DriftResults`` port; ``drift_history`` reads that
series back. ``monitor_cycle`` runs a whole pass over one deployment and window:
live metrics per version, a drift check per version, alert rules over the
figures, events, webhooks and subscribers.

What comes from elsewhere is passed in: windows from a ``WindowReader``,
``(deployment, start, end) -> Window`` (a list of synthetic requests in tests), or
part by part from ``WindowParts`` (``feedback_join.joined_parts`` over the
inference log: memory bounded whatever the window's length, see
``window_figures.measure``), and the model a deployment serves from a ``ModelOf``
(routing records it, not monitoring).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.errors import NotFoundError, ValidationError
from modelyard.monitoring.alerts import (
    AlertBus,
    AlertEvent,
    load_rules,
    record_alerts,
    restore_state,
)
from modelyard.monitoring.drift import DriftConfig, DriftReport, detect_drift
from modelyard.monitoring.live_metrics import (
    LiveMetrics,
    LiveMetricsExporter,
    QualityMetrics,
    TrafficMetrics,
    snapshot,
)
from modelyard.monitoring.repository import DriftResult, DriftResults, ModelOf, MonitoringRepository
from modelyard.monitoring.rules import AlertRule, AlertState, Figures, evaluate
from modelyard.monitoring.window import Window
from modelyard.monitoring.window_figures import measure
from modelyard.registry.catalog import Catalog
from modelyard.registry.profile import load_sample, output_columns

WindowReader = Callable[[str, float, float], Window]
WindowParts = Callable[[str, float, float], Iterable[Window]]
# Live logs miss values now and then; a job should test what is there, not stop.
JOB_DRIFT_CONFIG = DriftConfig(nan_policy="omit")
_PREDICTION_COLUMNS = ("score", "prediction", "label")
# Fewer rows of a version than this say nothing either way: its drift is not checked.
MIN_DRIFT_ROWS = 20


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


def store_drift(
    results: DriftResults, deployment: str, model: str, version: int, window: Window,
    report: DriftReport, computed_at: float,
) -> DriftResult:  # fmt: skip
    """Append a verdict to the series of drift checks."""
    return results.add_drift_result(
        deployment, model, version, window.start, window.end, report, computed_at
    )


def check_drift(
    results: DriftResults,
    reference: Reference,
    window: Window,
    now: float,
    *,
    config: DriftConfig | None = None,
    rng: np.random.Generator | int = 0,
    min_rows: int = MIN_DRIFT_ROWS,
) -> DriftResult | None:
    """Check the rows of ``reference.version`` in ``window`` and store the verdict.

    Returns None, storing nothing, when that version served fewer than
    ``min_rows`` rows: a handful of rows says nothing either way.
    """
    part = window.select(window.version == reference.version)
    if part.rows < min_rows:
        return None
    report = compare(reference, part, config, rng)
    return store_drift(
        results, window.deployment, reference.model, reference.version, part, report, now
    )


def drift_history(
    results: DriftResults,
    deployment: str,
    since: float | None = None,
    until: float | None = None,
    *,
    version: int | None = None,
    limit: int | None = None,
) -> list[DriftResult]:
    """Stored checks whose window ended in ``[since, until]``, oldest first (newest ``limit``)."""
    return results.drift_results(deployment, since, until, version=version, limit=limit)


def deployment_model(model_of: ModelOf | None, deployment: str) -> str:
    """The model a deployment serves, as ``model_of`` says (its deployment record, else its
    logged traffic); NotFoundError when it knows none, or there is no ``model_of``."""
    model = None if model_of is None else model_of(deployment)
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
    repository: MonitoringRepository,
    registry: Catalog,
    deployment: str,
    start: float,
    end: float,
    *,
    window_reader: WindowReader | None = None,
    window_parts: WindowParts | None = None,
    now: float,
    model: str | None = None,
    model_of: ModelOf | None = None,
    rules: list[AlertRule] | None = None,
    state: AlertState | None = None,
    bus: AlertBus | None = None,
    exporter: LiveMetricsExporter | None = None,
    config: DriftConfig | None = None,
    rng: np.random.Generator | int = 0,
    min_rows: int = MIN_DRIFT_ROWS,
) -> CycleResult:
    """One pass over ``[start, end)`` of a deployment: measure, check drift, alert.

    ``model`` defaults to what ``model_of`` says the deployment serves (without
    ``model_of``, nothing is known: NotFoundError). ``rules`` default to the
    deployment's stored rules; ``state`` (streaks and cooldowns) to the last
    firings found in the events of the past day. Pass the returned ``state`` to
    the next cycle so that ``for_windows`` streaks carry over. The window comes from
    ``window_parts`` (part by part: drift then reads a uniform sample of each
    version's rows, ``window_sample.SAMPLE_ROWS``) or ``window_reader`` (whole).
    """
    if (window_reader is None) == (window_parts is None):
        raise ValueError("monitor_cycle reads with one of window_reader or window_parts")
    model = model or deployment_model(model_of, deployment)
    generator = np.random.default_rng(rng)
    if window_parts is not None:
        # The sample draws from its own generator, so the drift tests see the same
        # stream of random numbers as a window read whole.
        measured = measure(window_parts(deployment, start, end), deployment, start, end)
        window, metrics = measured.sample, measured.metrics
    else:
        assert window_reader is not None
        window = window_reader(deployment, start, end)
        metrics = snapshot(window, by="version")
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
                repository, reference, window, now, config=config, rng=generator, min_rows=min_rows
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
        figures.append(Figures(deployment, version, values, metrics.start, metrics.end))
    if exporter is not None:
        exporter.update(metrics)
    rules = load_rules(repository, deployment) if rules is None else rules
    state = restore_state(repository, deployment, now - 86_400.0) if state is None else state
    alerts, state = evaluate(rules, figures, state, now)
    events = record_alerts(repository, alerts, rules, bus)
    return CycleResult(metrics, drift, figures, events, state)
