"""A self-contained HTML monitoring report of one deployment: one file, no network.

``render_report(data)`` is pure: it turns a ``ReportData`` into HTML with
inline CSS and hand-written inline SVG (bars, overlaid histograms, lines), so
the file opens anywhere, offline, and can be mailed or attached to a ticket;
no plotting library (matplotlib, plotly: tens of megabytes, and plotly would
need its JavaScript inlined or fetched) is needed for a few dozen rectangles.
``gather_report`` reads what it needs: the window (through the
``window_reader`` passed in), each version's reference sample, the stored
drift series and the alert events (through the monitoring repository).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import NotFoundError
from modelyard.monitoring.alerts import recent_alerts
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

REF, LIVE, BAD = "#4e79a7", "#f28e2b", "#d62728"
PALETTE = (REF, LIVE, "#59a14f", "#b07aa1", "#9c755f", "#76b7b2")
_BUCKETS_S = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400)
_TEXT = ("version", "drift", "quality")
_QUALITY = ("accuracy", "roc_auc", "f1", "log_loss", "mae", "rmse")
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;padding:0 16px;max-width:1140px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.muted{color:#666}table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #eee;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f6f6}.n{text-align:right;white-space:nowrap}.bad{color:#d62728;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px}
.card h3{font-size:14px;margin:0 0 4px}.card.drifted{border-color:#d62728}
.key{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
svg text{font:10px system-ui,sans-serif;fill:#555}
"""


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


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


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
                "error rate": _pct(traffic.error_rate),
                "4xx rate": _pct(traffic.client_error_rate),
                "p50 ms": _num(traffic.p50_ms),
                "p99 ms": _num(traffic.p99_ms),
                "drift": _verdict(None if version is None else data.drift.get(version)),
                "labelled": "-" if quality is None else _pct(quality.coverage),
                "quality": "; ".join(metrics) or "-",
            }
        )
    return rows


# -- SVG ---------------------------------------------------------------------------------

W, H, PAD = 360, 150, 28


def _svg(body: str, height: int = H) -> str:
    return f'<svg width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img">{body}</svg>'


def _text(x: float, y: float, text: str, anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{html.escape(text)}</text>'


def _histogram(reference: np.ndarray, live: np.ndarray, bins: int = 30) -> str:
    ref = reference[np.isfinite(reference)].astype(np.float64)
    now = live[np.isfinite(live)].astype(np.float64)
    both = [a for a in (ref, now) if a.size]
    if not both:
        return _svg(_text(W / 2, H / 2, "no numeric values", "middle"))
    lo = min(float(np.quantile(a, 0.005)) for a in both)
    hi = max(float(np.quantile(a, 0.995)) for a in both)
    middle = float(np.median(np.concatenate(both)))
    # Long right tails (amounts, counts) squash everything into one bar: use log bins.
    log = lo > 0 and middle > 0 and hi / middle > 10
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.geomspace(lo, hi, bins + 1) if log else np.linspace(lo, hi, bins + 1)
    shares = [np.histogram(np.clip(a, lo, hi), edges)[0] / max(a.size, 1) for a in (ref, now)]
    top = max(float(max(s.max() for s in shares)), 1e-12)
    plot_w, plot_h = W - 2 * PAD, H - 2 * PAD
    bar = plot_w / bins
    parts = []
    for colour, share in zip((REF, LIVE), shares, strict=True):
        for i, value in enumerate(share):
            h = plot_h * value / top
            x, y = PAD + i * bar, H - PAD - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}" fill-opacity="0.5"/>'
            )
    parts.append(f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#999"/>')
    parts += [_text(PAD, H - PAD + 12, _num(lo)), _text(W - PAD, H - PAD + 12, _num(hi), "end")]
    centre = math.sqrt(lo * hi) if log else (lo + hi) / 2
    parts.append(
        _text(W / 2, H - PAD + 12, _num(centre) + (" (log scale)" if log else ""), "middle")
    )
    parts.append(_text(PAD, PAD - 6, f"max {100 * top:.1f}% of rows per bin"))
    return _svg("".join(parts))


def _categories(reference: np.ndarray, live: np.ndarray, top: int = 10) -> str:
    ref, now = reference.astype(str), live.astype(str)
    names = sorted(set(ref.tolist()) | set(now.tolist()))
    share = {n: (float(np.mean(ref == n)) if ref.size else 0.0) for n in names}
    live_share = {n: (float(np.mean(now == n)) if now.size else 0.0) for n in names}
    names = sorted(names, key=lambda n: -(share[n] + live_share[n]))[:top]
    row, label_w = 22, 110
    height = PAD + row * len(names) + 8
    scale = (W - label_w - 50) / max(max(share.values()), max(live_share.values()), 1e-12)
    parts = []
    for i, name in enumerate(names):
        y = PAD / 2 + i * row
        parts.append(_text(label_w - 6, y + 13, name[:18], "end"))
        for j, (colour, value) in enumerate(((REF, share[name]), (LIVE, live_share[name]))):
            w = value * scale
            parts.append(
                f'<rect x="{label_w}" y="{y + 2 + 9 * j:.1f}" width="{w:.1f}" height="8" '
                f'fill="{colour}"/>'
            )
            parts.append(_text(label_w + w + 4, y + 10 + 9 * j, f"{100 * value:.1f}%"))
    return _svg("".join(parts), int(height))


@dataclass(frozen=True)
class Series:
    """One line of a chart; ``marks`` flags points drawn big and red (a dataset drift)."""

    label: str
    times: Sequence[float]
    values: Sequence[float | None]
    colour: str
    marks: Sequence[bool] = ()


def _line(series: Sequence[Series], fmt: str = "{:.3g}") -> str:
    """Lines over a shared time axis from 0 to the largest value; gaps where a value is None."""
    known = [
        (t, v)
        for one in series
        for t, v in zip(one.times, one.values, strict=True)
        if v is not None and math.isfinite(v)
    ]
    if not known:
        return _svg(_text(W / 2, H / 2, "no data in this period", "middle"))
    t0 = min(t for one in series for t in one.times)
    t1 = max(t for one in series for t in one.times)
    top = max(v for _, v in known) or 1.0
    span = t1 - t0
    parts = []
    for number, one in enumerate(series):
        segments: list[list[str]] = [[]]
        for i, (t, v) in enumerate(zip(one.times, one.values, strict=True)):
            if v is None or not math.isfinite(v):
                segments.append([])
                continue
            x = PAD + (W - 2 * PAD) * (t - t0) / span if t1 > t0 else W / 2
            y = H - PAD - (H - 2 * PAD) * v / top
            segments[-1].append(f"{x:.1f},{y:.1f}")
            red = i < len(one.marks) and one.marks[i]
            colour, radius = (BAD, 3.5) if red else (one.colour, 2.0)
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}"/>')
        parts += [
            f'<polyline points="{" ".join(s)}" fill="none" stroke="{one.colour}" '
            f'stroke-width="1.5"/>'
            for s in segments
            if len(s) > 1
        ]
        if len(series) > 1:
            parts.append(f'<text x="{W - PAD}" y="{PAD - 6 + 11 * number}" text-anchor="end" '
                         f'style="fill:{one.colour}">{html.escape(one.label)}</text>')  # fmt: skip
    parts.append(f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#999"/>')
    parts += [_text(PAD, H - PAD + 12, _when(t0)), _text(W - PAD, H - PAD + 12, _when(t1), "end")]
    parts += [_text(PAD, PAD - 6, "max " + fmt.format(top)), _text(PAD - 4, H - PAD, "0", "end")]
    return _svg("".join(parts))


# -- HTML --------------------------------------------------------------------------------


def _card(title: str, svg: str, note: str = "", drifted: bool = False) -> str:
    extra = f'<div class="muted">{html.escape(note)}</div>' if note else ""
    css = "card drifted" if drifted else "card"
    return f'<div class="{css}"><h3>{html.escape(title)}</h3>{svg}{extra}</div>'


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
        f"<tr><td>{esc(_when(a['at']))}</td><td>{esc(a['reason'])}</td></tr>"
        for a in data.alerts[-20:]
    )
    times = [s.start for s in data.timeline]
    traffic = [s.overall.traffic for s in data.timeline]
    charts = [
        _card("requests", _line([Series("", times, [t.requests for t in traffic], REF)], "{:.0f}")),
        _card("p99 latency (ms)", _line([Series("", times, [t.p99_ms for t in traffic], LIVE)])),
    ]
    errors = [t.error_rate if t.requests else None for t in traffic]
    charts.append(_card("error rate (5xx)", _line([Series("", times, errors, BAD)], "{:.2%}")))
    accuracy = [
        None if s.overall.quality is None else s.overall.quality.metrics.get("accuracy")
        for s in data.timeline
    ]
    if any(a is not None for a in accuracy):
        accuracy_line = _line([Series("", times, accuracy, REF)])
        charts.append(_card("live accuracy (labelled rows)", accuracy_line))
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
    charts.append(_card(title, _line(lines, fmt="{:.0%}"), note=note))
    ordered = _ordered(data)
    shown = ordered[: data.max_features]
    cards = []
    for feature in shown:
        numeric = feature.reference.dtype.kind in "fiu" and feature.live.dtype.kind in "fiu"
        plot = (
            _histogram(feature.reference, feature.live)
            if numeric
            else _categories(feature.reference, feature.live)
        )
        drifted = feature.drift is not None and feature.drift.drifted
        cards.append(_card(feature.name, plot, _feature_note(feature.drift), drifted))
    hidden = len(ordered) - len(shown)
    more = f'<p class="muted">{hidden} more feature(s) not shown.</p>' if hidden > 0 else ""
    version = "" if data.feature_version is None else f" (version {data.feature_version})"
    title = esc(f"Monitoring report: {data.deployment}")
    subtitle = (
        f"model {esc(data.model or '-')} &middot; window {_when(data.start)} to "
        f"{_when(data.end)} UTC &middot; generated {_when(data.generated_at)} UTC"
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
<style>{_CSS}</style></head><body>
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
