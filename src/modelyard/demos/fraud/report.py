"""The fraud demo's report: the portfolio table and the story, measured, as Markdown and a
self-contained HTML page with plots.

``gather_report`` reads everything from the home the run left (registry, tracking,
the deployment's events, alerts and drift checks, the inference log with its joined
labels) plus what only the run saw (the client's figures, the load test, the server's
``/metrics`` text); ``DemoRecord`` is plain data; ``render_markdown`` and
``render_html`` are pure. Nothing in the tables is a constant: each figure names
where it was measured.
"""

from __future__ import annotations

import html
import json
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from modelyard.demos.fraud.live import AFTER, BEFORE, Decisions, LiveStats
from modelyard.demos.fraud.offline import DEPLOYMENT, MODEL, Champion
from modelyard.demos.fraud.scenario import Scenario, Timeline
from modelyard.demos.fraud.simulator import SimulatorConfig
from modelyard.demos.fraud.watch import StoryEvent, story_events
from modelyard.loadtest.generator import LoadResult, cost_per_1000
from modelyard.monitoring import SqlInferenceLogRepository, joined
from modelyard.monitoring.charts import BAD, CSS, PALETTE, REF, Series, card, line_chart
from modelyard.monitoring.sql import SqlMonitoringRepository
from modelyard.monitoring.window import Window
from modelyard.yard import Yard

__all__ = ["DemoRecord", "gather_report", "render_html", "render_markdown", "write_report"]

_BUCKETS = 40  # points per time series


@dataclass(frozen=True)
class DemoRecord:
    """Everything the report shows, as plain data (``to_dict`` is its JSON)."""

    scenario: dict[str, Any]
    timeline: dict[str, float]
    began: float
    ended: float
    interrupted: bool
    datasets: list[dict[str, Any]]
    versions: list[dict[str, Any]]
    serving: dict[str, Any]
    cost: dict[str, float]
    story: list[dict[str, Any]]
    acts: dict[str, bool]  # drift_alert, retrain, promotion, rollback: did each happen
    series: dict[str, Any] = field(default_factory=dict)  # the plots' data

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def requests_in_metrics(text: str, model: str = MODEL) -> int:
    """Requests the server's ``/metrics`` counted for ``model`` (every version and status)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "modelyard_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("model") == model:
                total += sample.value
    return int(total)


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else math.nan


def _dataset_rows(yard: Yard, versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for version in versions:
        run_id = version.get("run_id")
        if not run_id:
            continue
        run = yard.tracking.get_run(run_id)
        for name, fingerprint in sorted(run.datasets.items()):
            rows.append(
                {
                    "dataset": f"{run.name} / {name}",
                    "version": version["version"],
                    "rows": fingerprint.get("rows"),
                    "fingerprint": str(fingerprint.get("digest", ""))[:16],
                }
            )
    return rows


def gather_report(
    yard: Yard,
    *,
    scenario: Scenario,
    timeline: Timeline,
    simulator: SimulatorConfig,
    champion: Champion,
    began: float,
    live_ended: float,
    stats: LiveStats | None,
    load: LoadResult | None,
    metrics_text: str,
    interrupted: bool,
) -> DemoRecord:
    """Read the run's figures from ``yard``'s home and the run's own measurements; the
    models' live figures count the requests before ``live_ended`` (not the load test's)."""
    ended = time.time()
    monitoring = SqlMonitoringRepository(yard.db)
    story = story_events(yard.deployments, DEPLOYMENT, began)
    window = joined(SqlInferenceLogRepository(yard.db), DEPLOYMENT, began, ended + 1)
    labels = window.labels if window.labels is not None else np.full(window.rows, None)
    decided = np.asarray(window.outputs.get("label", np.zeros(window.rows)), dtype=np.float64)
    live = window.ts < live_ended
    row_version = np.where(live[window.row_request], window.version[window.row_request], -1)
    known = np.array([label is not None for label in labels.tolist()], dtype=bool)
    truth = np.array([float(v) if v is not None else math.nan for v in labels.tolist()])

    deployment = yard.deployments.get(DEPLOYMENT).config
    versions = []
    for version in yard.registry.list_versions(MODEL):
        mine = row_version == version.version
        outcome = _outcome(version.version, champion.version.version, deployment.champion, story)
        # What it decided, against the simulator's truth (the client knows it at once;
        # the log's labels come later, as chargebacks do), before and after the drift.
        decided_on = {
            period: _decisions(stats, str(version.version), period) for period in (BEFORE, AFTER)
        }
        versions.append(
            {
                "version": version.version,
                "outcome": outcome,
                "run_id": version.run_id,
                "description": version.description,
                "roc_auc_at_registration": version.metrics.get("roc_auc"),
                "answered": int(np.sum(live & (window.version == version.version))),
                "labelled": int(np.sum(mine & known)),
                **{f"{period}_drift": asdict(d) for period, d in decided_on.items()},
            }
        )
    datasets = _dataset_rows(yard, versions)
    ok = window.status < 400
    latency = window.latency_ms[ok]
    serving: dict[str, Any] = {
        "requests_logged": window.requests,
        "requests_in_metrics": requests_in_metrics(metrics_text) if metrics_text else None,
        "server_p50_ms": _percentile(latency, 50),
        "server_p99_ms": _percentile(latency, 99),
    }
    if stats is not None:
        serving.update(
            live_requests=stats.requests_sent,
            live_answered=stats.answered,
            live_failed=stats.failed,
            live_rate_per_s=stats.requests_per_s,
            live_p50_ms=stats.latency_p50_ms,
            live_p99_ms=stats.latency_p99_ms,
            live_seconds=stats.elapsed_s,
            labels_sent=stats.labels_sent,
            events_pushed=stats.events_pushed,
        )
    cost: dict[str, float] = {"price_per_hour": scenario.price_per_hour}
    if load is not None:
        serving.update(
            load_connections=load.connections,
            load_seconds=load.duration_s,
            load_requests=load.requests,
            load_errors=load.error_count,
            load_throughput_per_s=load.throughput,
            load_p50_ms=load.latency.p50_s * 1000,
            load_p99_ms=load.latency.p99_s * 1000,
        )
        cost["throughput_per_s"] = load.throughput
        cost["per_1000_predictions"] = cost_per_1000(load.throughput, scenario.price_per_hour)
    acts = {
        "drift_alert": any(e.kind == "alert" for e in story),
        "retrain": any(e.kind == "retrain.registered" for e in story),
        "promotion": any(e.kind == "rollout.promote" for e in story),
        "rollback": any(e.kind == "rollout.rollback" for e in story),
    }
    return DemoRecord(
        scenario={**asdict(scenario), "simulator": asdict(simulator)},
        timeline=asdict(timeline),
        began=began,
        ended=ended,
        interrupted=interrupted,
        datasets=datasets,
        versions=versions,
        serving=serving,
        cost=cost,
        story=[_story_row(e, began) for e in story],
        acts=acts,
        series=_series(live, window, known, truth, decided)
        | {"drift": _drift_series(monitoring, began, ended)},
    )


def _decisions(stats: LiveStats | None, version: str, period: str) -> Decisions:
    found = stats.decisions.get((version, period)) if stats is not None else None
    return found or Decisions()


def _outcome(version: int, first: int, champion: int, story: list[StoryEvent]) -> str:
    rolled_back = any(
        e.kind == "rollout.rollback" and e.figures.get("canary") == version for e in story
    )
    promoted = any(
        e.kind == "rollout.promote" and e.figures.get("canary") == version for e in story
    )
    if rolled_back:
        return "rolled back"
    parts = ["first champion" if version == first else ""]
    if promoted:
        parts.append("promoted")
    if version == champion:
        parts.append("serving")
    elif version == first:
        parts.append("replaced")
    return ", ".join(p for p in parts if p) or "registered"


def _story_row(event: StoryEvent, began: float) -> dict[str, Any]:
    figures = dict(event.figures)
    return {
        "at": event.at,
        "offset_s": event.at - began,
        "kind": event.kind,
        "text": event.text,
        "figures": _brief(event.kind, figures),
    }


# The figures each kind of event is decided on (the events keep them all).
_FIGURES = {
    "alert": ("drift_share", "requests", "label_coverage", "roc_auc", "auc_drop", "streak"),
    "retrain.started": ("trigger", "champion"),
    "retrain.trained": ("run_id",),
    "retrain.registered": ("version", "holdout_rows"),
    "retrain.gate_failed": ("holdout_rows",),
    "rollout.start": ("canary", "champion", "max_decision_change", "interval_s"),
    "rollout.advance": ("weight", "canary.requests", "champion.requests"),
    "rollout.promote": ("weight", "canary.requests", "live_quality.labelled"),
    "rollout.rollback": ("weight", "canary.requests", "live_quality.labelled"),
}


def _brief(kind: str, figures: dict[str, Any]) -> dict[str, Any]:
    """The figures a decision of ``kind`` rests on, from an event's payload."""
    flat = {k: v for k, v in figures.items() if not isinstance(v, list | dict)}
    if isinstance(figures.get("figures"), dict):
        flat.update(figures["figures"])
    return {name: flat[name] for name in _FIGURES.get(kind, ()) if name in flat}


def _series(
    live: np.ndarray, window: Window, known: np.ndarray, truth: np.ndarray, decided: np.ndarray
) -> dict[str, Any]:
    """Requests per second by version and the share of fraud caught, over the live phase."""
    ts, version = window.ts[live], window.version[live]
    if not ts.size:
        return {"times": [], "rate": {}, "caught": []}
    edges = np.linspace(float(ts.min()), float(ts.max()) + 1e-6, _BUCKETS + 1)
    width = float(edges[1] - edges[0])
    bucket = np.clip(np.digitize(ts, edges) - 1, 0, _BUCKETS - 1)
    rate = {
        str(v): (np.bincount(bucket[version == v], minlength=_BUCKETS) / width).tolist()
        for v in sorted(set(version.tolist()))
    }
    live_rows = live[window.row_request]
    row_bucket = bucket[np.cumsum(live)[window.row_request[live_rows]] - 1]
    fraud = (known & (truth == 1))[live_rows]
    decided = decided[live_rows]
    seen = np.bincount(row_bucket[fraud], minlength=_BUCKETS)
    caught = np.bincount(row_bucket[fraud & (decided == 1)], minlength=_BUCKETS)
    share = [float(c / s) if s >= 3 else None for c, s in zip(caught, seen, strict=True)]
    return {"times": edges[:-1].tolist(), "rate": rate, "caught": share}


def _drift_series(
    monitoring: SqlMonitoringRepository, began: float, ended: float
) -> dict[str, Any]:
    """Each version's drift checks: when, the share of inputs drifted, dataset drift."""
    series: dict[str, Any] = {}
    for check in monitoring.drift_results(DEPLOYMENT, began, ended):
        mine = series.setdefault(str(check.version), {"times": [], "share": [], "drifted": []})
        mine["times"].append(check.window_end)
        mine["share"].append(check.report.share_drifted)
        mine["drifted"].append(check.dataset_drift)
    return series


# -- rendering ---------------------------------------------------------------------------


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def portfolio_rows(record: DemoRecord) -> list[tuple[str, str]]:
    """The portfolio table: what was used, built and measured, one line each."""
    s, serving, cost = record.scenario, record.serving, record.cost
    rows = [
        (
            "data",
            f"simulated card transactions: {s['cards']:,} cards, fraud rate "
            f"{s['fraud_rate']:.1%}, {s['history_days']:g} days of history, seed {s['seed']}",
        ),
    ]
    rows += [
        (
            f"data set (v{d['version']})",
            f"{d['dataset']}: {_num(d['rows'])} rows"
            + (f", sha256 {d['fingerprint']}" if d["fingerprint"] else ""),
        )
        for d in record.datasets
    ]
    rows += [
        (
            f"model v{v['version']}",
            f"{v['outcome']}; ROC AUC {v['roc_auc_at_registration'] or math.nan:.3f} on its "
            "hold-out; "
            f"{v['answered']:,} live answers; "
            + "; ".join(
                _caught(v[f"{period}_drift"], period)
                for period in (BEFORE, AFTER)
                if v[f"{period}_drift"]["answered"]
            ),
        )
        for v in record.versions
    ]
    if "live_requests" in serving:
        rows.append(
            (
                "live traffic",
                f"{serving['live_requests']:,} requests in {serving['live_seconds']:.0f} s "
                f"({serving['live_rate_per_s']:.0f}/s), client p50 "
                f"{_num(serving['live_p50_ms'])} ms, p99 {_num(serving['live_p99_ms'])} ms; "
                f"server p50 {_num(serving['server_p50_ms'])} ms, p99 "
                f"{_num(serving['server_p99_ms'])} ms",
            )
        )
    if "load_throughput_per_s" in serving:
        rows.append(
            (
                "under load",
                f"{serving['load_throughput_per_s']:.0f} predictions/s on "
                f"{serving['load_connections']} connections for {serving['load_seconds']:.0f} s, "
                f"p50 {_num(serving['load_p50_ms'])} ms, p99 {_num(serving['load_p99_ms'])} ms, "
                f"{serving['load_errors']} errors (the load generator shares the machine: "
                "a lower bound)",
            )
        )
    if "per_1000_predictions" in cost:
        rows.append(
            (
                "cost",
                f"${cost['per_1000_predictions']:.6f} per 1,000 predictions at "
                f"${cost['price_per_hour']:g}/hour and the measured throughput",
            )
        )
    counted = serving.get("requests_in_metrics")
    rows.append(
        (
            "counted",
            f"{serving['requests_logged']:,} requests in the inference log"
            + ("" if counted is None else f", {counted:,} in /metrics"),
        )
    )
    return rows


def _act(act: str, done: bool) -> str:
    return f"{act.replace('_', ' ')}: {'yes' if done else 'no'}"


def _caught(decided: dict[str, int], period: str) -> str:
    seen, caught = decided["fraud_seen"], decided["fraud_caught"]
    share = f" ({caught / seen:.0%})" if seen else ""
    flagged = decided["flagged"] / decided["answered"]
    return f"{period} the drift caught {caught}/{seen} fraud{share}, flagged {flagged:.1%}"


def _offset(seconds: float) -> str:
    return f"+{int(seconds // 60):02d}:{int(seconds % 60):02d}"


def _figures_text(figures: dict[str, Any]) -> str:
    parts = []
    for key, value in figures.items():
        if key in ("verdict",):
            continue
        if isinstance(value, list):
            value = "; ".join(
                f"{c.get('name')} {_num(c.get('value'))} (limit {_num(c.get('limit'))})"
                for c in value
            )
        elif isinstance(value, float):
            value = _num(value)
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def _title(record: DemoRecord) -> str:
    when = datetime.fromtimestamp(record.began, UTC).strftime("%Y-%m-%d %H:%M UTC")
    state = " (interrupted)" if record.interrupted else ""
    return f"Fraud detection end to end: modelyard demo, {when}{state}"


def render_markdown(record: DemoRecord) -> str:
    """The report as Markdown: the portfolio table, the acts, the story."""
    lines = [f"# {_title(record)}", ""]
    lines += ["## Portfolio", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {text} |" for name, text in portfolio_rows(record)]
    lines += ["", "## What happened", ""]
    lines += [f"- {_act(act, done)}" for act, done in record.acts.items()]
    lines += ["", "| when | event | what | figures |", "|---|---|---|---|"]
    for row in record.story:
        text = row["text"].replace("|", "/")
        lines.append(
            f"| {_offset(row['offset_s'])} | {row['kind']} | {text} | "
            f"{_figures_text(row['figures']).replace('|', '/')} |"
        )
    lines += ["", "Plots: `report.html`. Raw figures: `record.json`.", ""]
    return "\n".join(lines)


def render_html(record: DemoRecord) -> str:
    """The report as one HTML page: inline CSS and SVG, no scripts, no external URLs."""
    esc = html.escape
    rows = portfolio_rows(record)
    table = "".join(f"<tr><th>{esc(name)}</th><td>{esc(text)}</td></tr>" for name, text in rows)
    story = "".join(
        f"<tr><td>{_offset(r['offset_s'])}</td><td>{esc(r['kind'])}</td><td>{esc(r['text'])}</td>"
        f"<td>{esc(_figures_text(r['figures']))}</td></tr>"
        for r in record.story
    )
    series = record.series
    times = series.get("times", [])
    rate_lines = [
        Series(f"v{v}", times, values, PALETTE[i % len(PALETTE)])
        for i, (v, values) in enumerate(series.get("rate", {}).items())
    ]
    drift_lines = [
        Series(f"v{v}", d["times"], d["share"], PALETTE[i % len(PALETTE)], d["drifted"])
        for i, (v, d) in enumerate(series.get("drift", {}).items())
    ]
    charts = [
        card("requests per second, by version (the split)", line_chart(rate_lines, "{:.0f}")),
        card(
            "share of labelled fraud caught",
            line_chart([Series("caught", times, series.get("caught", []), REF)], "{:.0%}"),
        ),
        card(
            "share of inputs drifted, per drift check (red: dataset drift)",
            line_chart(drift_lines, "{:.0%}"),
            "The first checks see seconds of traffic, a few simulated hours: alerts "
            "start once a check window is full.",
        ),
    ]
    acts = "".join(
        f'<li class="{"" if done else "bad"}">{esc(_act(act, done))}</li>'
        for act, done in record.acts.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(_title(record))}</title>
<style>{CSS} th{{width:150px}} .bad{{color:{BAD}}}</style></head><body>
<h1>{esc(_title(record))}</h1>
<p class="muted">{esc(_scenario_line(record))}</p>
<h2>Portfolio</h2><table>{table}</table>
<h2>What happened</h2><ul>{acts}</ul>
<div class="grid">{"".join(charts)}</div>
<h2>The story</h2>
<table><tr><th>when</th><th>event</th><th>what</th><th>figures</th></tr>{story}</table>
</body></html>
"""


def _scenario_line(record: DemoRecord) -> str:
    s = record.scenario
    return (
        f"scenario {s['name']}: {s['cards']:,} cards, simulated time x{s['speedup']:g}, "
        f"drift {s['drift_after_days']:g} simulated days into the live window; "
        f"run took {record.ended - record.began:.0f} s"
    )


def write_report(folder: Path, record: DemoRecord) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html`` and ``record.json`` into ``folder``, each
    whole or not at all; the paths of the first two."""
    folder.mkdir(parents=True, exist_ok=True)
    markdown, page = folder / "report.md", folder / "report.html"
    for path, text in (
        (markdown, render_markdown(record)),
        (page, render_html(record)),
        (folder / "record.json", json.dumps(record.to_dict(), indent=2)),
    ):
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(text)
        temporary.replace(path)
    return markdown, page
