"""A self-contained HTML monitoring report of one deployment: one file, no network.

``render_report(data)`` is pure: it turns a ``ReportData`` into HTML with
inline CSS and inline SVG (``charts``: bars, overlaid histograms, lines), so
the file opens anywhere, offline, and can be mailed or attached to a ticket.
``gather_report`` reads what it needs: the window (through the
``window_reader`` passed in), each version's reference sample, the stored
drift series and the alert events (through the monitoring repository).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import NotFoundError
from modelyard.monitoring.alerts import recent_alerts
from modelyard.monitoring.charts import (
    BAD,
    CSS,
    LIVE,
    PALETTE,
    REF,
    Series,
    card,
    category_bars,
    histogram,
    line_chart,
    number,
    percent,
    when,
)
from modelyard.monitoring.drift import DriftConfig, DriftReport, FeatureDrift
from modelyard.monitoring.drift_job import (
    WindowReader,
    compare,
    deployment_model,
    drift_history,
    load_reference,
)
from modelyard.monitoring.live_metrics import LiveMetrics, over_time, snapshot
from modelyard.monitoring.repository import DriftResult, ModelOf, MonitoringRepository
from modelyard.registry.catalog import Catalog

_BUCKETS_S = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400)
_TEXT = ("version", "drift", "quality")
_QUALITY = ("accuracy", "roc_auc", "f1", "log_loss", "mae", "rmse")


@dataclass(frozen=True)
class FeatureDistribution:
    """A feature's reference and live values, and its drift verdict if one was computed."""

    name: str
    reference: np.ndarray
    live: np.ndarray
    drift: FeatureDrift | None = None


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows; ``render_report`` reads nothing else."""

    deployment: str
    model: str | None
    start: float
    end: float
    generated_at: float
    snapshot: LiveMetrics
    timeline: list[LiveMetrics] = field(default_factory=list)
    drift: dict[int, DriftReport] = field(default_factory=dict)
    reference_metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    drift_history: list[DriftResult] = field(default_factory=list)
    features: list[FeatureDistribution] = field(default_factory=list)
    feature_version: int | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    max_features: int = 30


def _verdict(report: DriftReport | None) -> str:
    if report is None:
        return "-"
    names = ", ".join(report.drifted_features[:3])
    more = len(report.drifted_features) - 3
    names += f" +{more}" if more > 0 else ""
    state = "DRIFT" if report.dataset_drift else "no drift"
    return f"{state} ({report.share_drifted:.0%}){': ' + names if names else ''}"


def summary_rows(data: ReportData) -> list[dict[str, str]]:
    """One row per version (and one for all traffic): the figures of the summary table."""
    rows = []
    groups = sorted(data.snapshot.groups.items(), key=lambda kv: int(kv[0]))
    for key, group in [*groups, ("all", data.snapshot.overall)]:
        traffic, quality = group.traffic, group.quality
        version = int(key) if key != "all" else None
        reference = data.reference_metrics.get(version, {}) if version is not None else {}
        metrics = [
            f"{name} {quality.metrics[name]:.3g}"
            + (f" (ref {reference[name]:.3g})" if name in reference else "")
            for name in _QUALITY
            if quality is not None and name in quality.metrics
        ]
        rows.append(
            {
                "version": key if version is None else f"v{key}",
                "requests": f"{traffic.requests:,}",
                "error rate": percent(traffic.error_rate),
                "4xx rate": percent(traffic.client_error_rate),
                "p50 ms": number(traffic.p50_ms),
                "p99 ms": number(traffic.p99_ms),
                "drift": _verdict(None if version is None else data.drift.get(version)),
                "labelled": "-" if quality is None else percent(quality.coverage),
                "quality": "; ".join(metrics) or "-",
            }
        )
    return rows


# -- HTML --------------------------------------------------------------------------------


def _feature_note(verdict: FeatureDrift | None) -> str:
    if verdict is None:
        return "not tested"
    p = "" if verdict.p_value is None else f", p = {verdict.p_value:.2g}"
    state = "DRIFTED" if verdict.drifted else "stable"
    note = f"{state}: {verdict.test} {verdict.statistic:.3g}{p} (threshold {verdict.threshold:.3g})"
    if verdict.effect is not None and verdict.effect_size is not None:
        floor = "" if verdict.effect_floor is None else f", floor {verdict.effect_floor:.3g}"
        note += f"; {verdict.effect} {verdict.effect_size:.3g}{floor}"
    return note


def _ordered(data: ReportData) -> list[FeatureDistribution]:
    """Drifted features first, in the drift report's order (strongest evidence first)."""
    report = data.drift.get(data.feature_version) if data.feature_version is not None else None
    rank = {name: i for i, name in enumerate(report.drifted_features if report else ())}

    def key(f: FeatureDistribution) -> tuple[int, float, str]:
        if f.drift is not None and f.drift.drifted:
            return (0, rank.get(f.name, len(rank)), f.name)
        return (1, 0, f.name)

    return sorted(data.features, key=key)


def render_report(data: ReportData) -> str:
    """The report as one HTML document: inline CSS and SVG, no scripts, no external URLs."""
    esc = html.escape
    rows = summary_rows(data)

    def css(column: str, value: str) -> str:
        return "bad" if value.startswith("DRIFT") else ("" if column in _TEXT else "n")

    head = "".join(f'<th class="{css(c, "")}">{esc(c)}</th>' for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f'<td class="{css(c, v)}">{esc(v)}</td>' for c, v in r.items()) + "</tr>"
        for r in rows
    )
    alerts = "".join(
        f"<tr><td>{esc(when(a['at']))}</td><td>{esc(a['reason'])}</td></tr>"
        for a in data.alerts[-20:]
    )
    times = [s.start for s in data.timeline]
    traffic = [s.overall.traffic for s in data.timeline]
    requests = line_chart([Series("", times, [t.requests for t in traffic], REF)], "{:.0f}")
    p99 = line_chart([Series("", times, [t.p99_ms for t in traffic], LIVE)])
    charts = [card("requests", requests), card("p99 latency (ms)", p99)]
    errors = [t.error_rate if t.requests else None for t in traffic]
    charts.append(card("error rate (5xx)", line_chart([Series("", times, errors, BAD)], "{:.2%}")))
    accuracy = [
        None if s.overall.quality is None else s.overall.quality.metrics.get("accuracy")
        for s in data.timeline
    ]
    if any(a is not None for a in accuracy):
        accuracy_line = line_chart([Series("", times, accuracy, REF)])
        charts.append(card("live accuracy (labelled rows)", accuracy_line))
    history = data.drift_history
    versions = sorted({r.version for r in history})
    lines = [
        Series(f"v{v}", [r.window_end for r in mine], [r.share_drifted for r in mine],
               PALETTE[i % len(PALETTE)], [r.dataset_drift for r in mine])
        for i, v in enumerate(versions)
        for mine in [[r for r in history if r.version == v]]
    ]  # fmt: skip
    title = "drift: share of features drifted (red: dataset drift)"
    note = f"{len(history)} stored check(s)"
    charts.append(card(title, line_chart(lines, fmt="{:.0%}"), note=note))
    ordered = _ordered(data)
    shown = ordered[: data.max_features]
    cards = []
    for feature in shown:
        numeric = feature.reference.dtype.kind in "fiu" and feature.live.dtype.kind in "fiu"
        plot = (
            histogram(feature.reference, feature.live)
            if numeric
            else category_bars(feature.reference, feature.live)
        )
        drifted = feature.drift is not None and feature.drift.drifted
        cards.append(card(feature.name, plot, _feature_note(feature.drift), drifted))
    hidden = len(ordered) - len(shown)
    more = f'<p class="muted">{hidden} more feature(s) not shown.</p>' if hidden > 0 else ""
    version = "" if data.feature_version is None else f" (version {data.feature_version})"
    title = esc(f"Monitoring report: {data.deployment}")
    subtitle = (
        f"model {esc(data.model or '-')} &middot; window {when(data.start)} to "
        f"{when(data.end)} UTC &middot; generated {when(data.generated_at)} UTC"
    )
    if alerts:
        alerts = f"<table><tr><th>when (UTC)</th><th>alert</th></tr>{alerts}</table>"
    none = '<p class="muted">{}</p>'.format
    legend = (
        f'<p><span class="key" style="background:{REF}"></span>reference (training sample)'
        f'<span class="key" style="background:{LIVE}"></span>live window</p>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{CSS}</style></head><body>
<header><h1>{title}</h1><div class="muted">{subtitle}</div></header>
<section id="summary"><h2>Summary</h2><table><tr>{head}</tr>{body}</table></section>
<section id="alerts"><h2>Alerts</h2>{alerts or none("No alerts fired in this window.")}</section>
<section id="timeline"><h2>Metrics over time</h2><div class="grid">{"".join(charts)}</div></section>
<section id="features"><h2>Feature distributions{esc(version)}: reference vs live</h2>{legend}
<div class="grid">{"".join(cards) or none("No reference sample or live inputs.")}</div>{more}
</section></body></html>
"""


# -- gathering ---------------------------------------------------------------------------


def bucket_seconds(span_s: float, max_buckets: int = 60) -> float:
    """The smallest of 1m, 5m, 15m, 30m, 1h, 3h, 6h, 12h, 1d giving at most ``max_buckets``."""
    return float(next((b for b in _BUCKETS_S if span_s / b <= max_buckets), _BUCKETS_S[-1]))


def gather_report(
    repository: MonitoringRepository,
    registry: Catalog,
    deployment: str,
    start: float,
    end: float,
    *,
    window_reader: WindowReader,
    now: float,
    model: str | None = None,
    model_of: ModelOf | None = None,
    config: DriftConfig | None = None,
    rng: np.random.Generator | int = 0,
    min_rows: int = 20,
) -> ReportData:
    """Read the window, references, stored drift series and alerts of a deployment
    (``model``, if not given, as ``model_of`` says: see ``monitor_cycle``)."""
    model = model or deployment_model(model_of, deployment)
    window = window_reader(deployment, start, end)
    metrics = snapshot(window, by="version")
    drift: dict[int, DriftReport] = {}
    reference_metrics: dict[int, dict[str, float]] = {}
    features: list[FeatureDistribution] = []
    references = {}
    for key, group in metrics.groups.items():
        version = int(key)
        try:
            references[version] = load_reference(registry, model, version)
        except NotFoundError:
            continue
        reference_metrics[version] = references[version].metrics
        part = window.select(window.version == version)
        if group.traffic.rows >= min_rows and set(references[version].features) <= set(part.inputs):
            drift[version] = compare(references[version], part, config, rng)
    # Plot the busiest drifted version, else the busiest version checked.
    rows = {v: metrics.groups[str(v)].traffic.rows for v in drift}
    feature_version = max(drift, key=lambda v: (drift[v].dataset_drift, rows[v]), default=None)
    if feature_version is not None:
        part = window.select(window.version == feature_version)
        verdicts = {f.name: f for f in drift[feature_version].features}
        features = [
            FeatureDistribution(name, values, np.asarray(part.inputs[name]), verdicts.get(name))
            for name, values in references[feature_version].features.items()
        ]
    return ReportData(
        deployment=deployment,
        model=model,
        start=start,
        end=end,
        generated_at=now,
        snapshot=metrics,
        timeline=over_time(window, bucket_seconds(end - start)),
        drift=drift,
        reference_metrics=reference_metrics,
        drift_history=drift_history(repository, deployment, start, end),
        features=features,
        feature_version=feature_version,
        alerts=recent_alerts(repository, deployment, start),
    )


def write_report(path: Path | str, data: ReportData) -> Path:
    """Render ``data`` and write it to ``path`` (parents created); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(data), encoding="utf-8")
    return target
