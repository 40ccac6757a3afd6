"""What a deployment's monitoring page shows, as JSON-ready documents.

``monitoring_page``: the stored drift checks over a period (``drift_job.drift_history``,
what ``modelyard monitor drift`` lists) as per-feature scores over time, the alerts with
who acknowledged them, and the deployment's decisions, each linked to its evidence
(``evidence``). ``accuracy_page``: live accuracy over time per version once labels
arrive.
``drift_check_page``: one check in full, with reference and live histograms of its most
drifted features (``histograms``).

Every read is bounded, whatever the log holds: the newest ``DRIFT_CHECKS`` checks and
one per version from each of ``THINNED`` slices of the rest of the period, at most
``EVENT_LIMIT`` events; accuracy from the newest ``ACCURACY_SAMPLE`` requests of each of
at most ``ACCURACY_BUCKETS`` buckets (their labels joined by request id); histograms from
the newest ``SAMPLE_PER_STRATUM`` requests of each of ``SAMPLE_STRATA`` equal slices of
the check's window (a sample spread over the window that never reads it whole).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelyard.errors import NotFoundError
from modelyard.monitoring.drift import DriftReport, FeatureDrift
from modelyard.monitoring.drift_job import deployment_model, drift_history
from modelyard.monitoring.feedback_join import with_request_labels
from modelyard.monitoring.inference_log.repository import LabelledLogRepository
from modelyard.monitoring.inference_log.storage import read_window
from modelyard.monitoring.live_metrics import quality_metrics
from modelyard.monitoring.repository import DriftResult, DriftResults
from modelyard.monitoring.window import Window
from modelyard.monitoring.window_sample import RowSample
from modelyard.registry.profile import output_columns
from modelyard.ui.context import UiContext
from modelyard.ui.data.actions import ACK_KIND
from modelyard.ui.data.evidence import DRIFT_METRICS, alert_rows, check_before, decision_rows
from modelyard.ui.data.histograms import histogram

DRIFT_CHECKS = 240  # the newest checks read whole; older ones are thinned:
THINNED = 60  # slices of the rest of a long period, the newest check of each read
DRIFT_LINES = 8  # features drawn per version: the most drifted in its latest check
EVENT_LIMIT = 300
ALERT_LIMIT = 200
LOOKUPS = 20  # drift checks older than the chart's, looked up one by one for evidence
ACCURACY_BUCKETS = 48
ACCURACY_SAMPLE = 300  # requests per bucket
SAMPLE_STRATA = 10
SAMPLE_PER_STRATUM = 500  # rows: a histogram draws on at most 5,000 live rows
HISTOGRAM_FEATURES = 6
_BUCKETS_S = (60.0, 300.0, 900.0, 1800.0, 3600.0, 3 * 3600.0, 6 * 3600.0, 12 * 3600.0, 86400.0)
_QUALITY = {"classification": "accuracy", "regression": "mae"}


def monitoring_page(ui: UiContext, name: str, now: float, span_s: float) -> dict[str, Any]:
    """Drift, live accuracy, alerts and decisions of ``name`` over the last ``span_s``."""
    model = deployment_model(ui.model_of, name)  # NotFoundError: neither deployed nor logged
    start = now - span_s
    checks = drift_over(ui.monitoring, name, start, now)
    events = ui.deployments.events(name, limit=EVENT_LIMIT)
    acks = ui.deployments.events(name, kind_prefix=ACK_KIND, limit=EVENT_LIMIT)
    alerts = ui.monitoring.alert_events(name, start)[-ALERT_LIMIT:]
    shown = [*checks, *_older_checks(ui, name, checks, events, alerts)]
    versions = _versions(ui, name)
    return _document(
        {
            "now": now,
            "deployment": name,
            "model": model,
            "span_s": span_s,
            "versions": versions,
            "drift": drift_series(checks),
            "checks": [check_summary(c) for c in reversed(checks[-20:])],
            "alerts": alert_rows(alerts, acks, shown),
            "decisions": decision_rows(events, shown, alerts),
        }
    )


def accuracy_page(ui: UiContext, name: str, now: float, span_s: float) -> dict[str, Any]:
    """Live quality of ``name`` per version over the last ``span_s`` (``accuracy_series``),
    with the metrics each version was registered with; a route of its own, as it reads
    payloads: the page asks for it less often than for the rest."""
    model = deployment_model(ui.model_of, name)
    return _document(
        {
            "now": now,
            "deployment": name,
            "span_s": span_s,
            **accuracy_series(ui.inference_log, name, now - span_s, now),
            "reference_metrics": _reference_metrics(ui, model, _versions(ui, name)),
        }
    )


def drift_check_page(
    ui: UiContext, name: str, check_id: int, top: int = HISTOGRAM_FEATURES
) -> dict[str, Any]:
    """One stored drift check with its features' verdicts, strongest evidence first, and
    the reference and live histograms of its ``top`` most drifted features (and of the
    model's output, when the check tested it)."""
    deployment_model(ui.model_of, name)
    check = ui.monitoring.drift_result(name, check_id)
    if check is None:
        raise NotFoundError(f"deployment {name!r} has no drift check {check_id}")
    features = ranked_features(check.report)
    sample = window_sample(
        ui.inference_log, name, check.version, check.window_start, check.window_end
    )
    try:
        profile = ui.yard.registry.profile(check.model, check.version)
    except NotFoundError:  # the version was deleted since: its live side still shows
        profile = {}
    reference = profile.get("features", {})
    histograms = [
        histogram(f.name, reference.get(f.name), sample.inputs[f.name]).to_dict()
        for f in features[:top]
        if f.name in sample.inputs
    ]
    prediction = check.report.prediction_drift
    outputs = output_columns(sample.outputs)
    column = next((c for c in ("score", "prediction", "label") if c in outputs), None)
    if prediction is not None and column is not None:
        predictions = profile.get("predictions", {})
        drawn = histogram(f"output: {column}", predictions.get(column), outputs[column])
        histograms.append(drawn.to_dict())
    return _document(
        {
            "check": {
                **check_summary(check),
                "features": [_feature(f) for f in features],
                "prediction_drift": None if prediction is None else _feature(prediction),
                "multivariate": None
                if check.report.multivariate is None
                else check.report.multivariate.to_dict(),
            },
            "histograms": histograms,
            "sample": {
                "rows": sample.rows,
                "strata": SAMPLE_STRATA,
                "per_stratum": SAMPLE_PER_STRATUM,
            },
        }
    )


# -- drift ----------------------------------------------------------------------------------


def check_summary(check: DriftResult) -> dict[str, Any]:
    """A check as the checks table lists it."""
    report = check.report
    prediction = report.prediction_drift
    return {
        "id": check.id,
        "model": check.model,
        "version": check.version,
        "window_start": check.window_start,
        "window_end": check.window_end,
        "computed_at": check.computed_at,
        "rows": check.rows,
        "n_reference": report.n_reference,
        "dataset_drift": report.dataset_drift,
        "share_drifted": report.share_drifted,
        "drifted_features": list(report.drifted_features),
        "prediction_drift": None if prediction is None else prediction.drifted,
        "multivariate_drift": None if report.multivariate is None else report.multivariate.drifted,
    }


def score(feature: FeatureDrift) -> float | None:
    """A feature's drift score: its effect size over the floor below which it does not
    count (1 = the floor), comparable across numeric and categorical features."""
    if feature.effect_size is None:
        return None
    if feature.effect_floor:
        return feature.effect_size / feature.effect_floor
    return feature.effect_size


def ranked_features(report: DriftReport) -> list[FeatureDrift]:
    """The drifted features in the report's order (strongest evidence first), then the
    others by score, highest first."""
    by_name = {f.name: f for f in report.features}
    drifted = [by_name[n] for n in report.drifted_features if n in by_name]
    rest = [f for f in report.features if f.name not in set(report.drifted_features)]
    rest.sort(key=lambda f: -(score(f) or 0.0))
    return drifted + rest


def drift_over(
    results: DriftResults, deployment: str, start: float, end: float
) -> list[DriftResult]:
    """The checks of ``[start, end]``, oldest first: all of them if there are at most
    ``DRIFT_CHECKS``, else the newest ``DRIFT_CHECKS`` and, before those, the newest of
    each of ``THINNED`` equal slices of the rest of the span (one per version), so a long
    period reads a bounded number of checks and its chart still covers it."""
    newest = drift_history(results, deployment, start, end, limit=DRIFT_CHECKS)
    if len(newest) < DRIFT_CHECKS:
        return newest
    versions = len({c.version for c in newest})
    until = newest[0].window_end
    width = (until - start) / THINNED
    older: dict[int, DriftResult] = {}
    for number in range(THINNED):
        low = start + number * width
        high = math.nextafter(min(low + width, until), -math.inf)  # the bounds are inclusive
        for check in drift_history(results, deployment, low, high, limit=versions):
            older[check.id] = check
    return [*sorted(older.values(), key=lambda c: (c.window_end, c.id)), *newest]


def drift_series(checks: Sequence[DriftResult]) -> dict[str, Any]:
    """Per version (oldest checks first): window ends, the share of features drifted, and
    the scores of its ``DRIFT_LINES`` most drifted features in its latest check."""
    by_version: dict[int, list[DriftResult]] = {}
    for check in checks:
        by_version.setdefault(check.version, []).append(check)
    versions = {}
    for version, found in sorted(by_version.items()):
        names = [f.name for f in ranked_features(found[-1].report)[:DRIFT_LINES]]
        scores: dict[str, list[float | None]] = {n: [] for n in names}
        drifted: dict[str, list[bool]] = {n: [] for n in names}
        for check in found:
            verdicts = {f.name: f for f in check.report.features}
            for n in names:
                verdict = verdicts.get(n)
                scores[n].append(None if verdict is None else score(verdict))
                drifted[n].append(verdict is not None and verdict.drifted)
        versions[str(version)] = {
            "ids": [c.id for c in found],
            "at": [c.window_end for c in found],
            "share_drifted": [c.share_drifted for c in found],
            "dataset_drift": [c.dataset_drift for c in found],
            "features": names,
            "scores": scores,
            "drifted": drifted,
        }
    return {"checks": len(checks), "limit": DRIFT_CHECKS, "versions": versions}


def window_sample(
    log: LabelledLogRepository,
    deployment: str,
    version: int,
    start: float,
    end: float,
    *,
    strata: int = SAMPLE_STRATA,
    per_stratum: int = SAMPLE_PER_STRATUM,
) -> Window:
    """Rows of ``version`` in ``[start, end)``: the newest ``per_stratum`` requests' of each
    of ``strata`` equal slices, so the sample spans the window and its size is bounded."""
    sample = RowSample(size=strata * per_stratum)
    width = (end - start) / strata
    for number in range(strata):
        low = start + number * width
        high = end if number == strata - 1 else low + width
        sample.add(read_window(log, deployment, low, high, version=version, newest=per_stratum))
    return sample.window(deployment, start, end)


def _older_checks(
    ui: UiContext,
    name: str,
    checks: Sequence[DriftResult],
    events: Sequence[Any],
    alerts: Sequence[Any],
) -> list[DriftResult]:
    """The checks that raised drift alerts (or preceded drift retrains) older than the
    chart's, looked up one by one (at most ``LOOKUPS``): an index range read each."""
    wanted: list[tuple[int | None, float]] = []
    for alert in alerts:
        if alert.payload.get("metric") in DRIFT_METRICS:
            version = alert.payload.get("version")
            wanted.append((version if isinstance(version, int) else None, alert.at))
    for event in events:
        if event.kind == "retrain.started" and event.payload.get("trigger") == "drift":
            champion = event.payload.get("champion")
            wanted.append((champion if isinstance(champion, int) else None, event.at))
    found: dict[int, DriftResult] = {}
    for version, at in wanted:
        if len(found) >= LOOKUPS:
            break
        known = check_before([*checks, *found.values()], version, at)
        if known is not None and abs(known.computed_at - at) <= 1e-3:
            continue
        # the pass stores a check of the window that ended when it ran: window_end <= at
        older = ui.monitoring.drift_results(name, until=at, version=version, limit=1)
        for check in older:
            found[check.id] = check
    return [c for c in found.values() if c.id not in {k.id for k in checks}]


def _feature(feature: FeatureDrift) -> dict[str, Any]:
    return {**feature.to_dict(), "score": score(feature)}


# -- live accuracy --------------------------------------------------------------------------


def bucket_width(span_s: float, buckets: int = ACCURACY_BUCKETS) -> float:
    """A round bucket width giving at most ``buckets`` buckets over ``span_s``."""
    for width in _BUCKETS_S:
        if span_s / width <= buckets:
            return width
    return 86400.0 * math.ceil(span_s / 86400.0 / buckets)


def accuracy_series(
    log: LabelledLogRepository,
    deployment: str,
    start: float,
    end: float,
    *,
    buckets: int = ACCURACY_BUCKETS,
    sample: int = ACCURACY_SAMPLE,
) -> dict[str, Any]:
    """Live quality per version and bucket (accuracy for a classifier, MAE for a
    regressor) from the newest ``sample`` requests of each bucket with traffic and the
    labels posted for them; ``labelled`` and ``rows`` say how many rows it rests on."""
    width = bucket_width(end - start, buckets)
    first = math.floor(start / width) * width
    starts = [first + i * width for i in range(math.ceil((end - first) / width))]
    index = {round(s / width): i for i, s in enumerate(starts)}
    busy = sorted(
        {
            index[key]
            for bucket in log.traffic(deployment, first, end, width)
            if (key := round(bucket.start / width)) in index
        }
    )
    versions: dict[str, dict[str, list[Any]]] = {}
    task = None
    for at in busy:
        window = read_window(log, deployment, starts[at], starts[at] + width, newest=sample)
        window = with_request_labels(log, window)
        for version in np.unique(window.version).tolist():
            part = window.select(window.version == version)
            quality = quality_metrics(part)
            series = versions.setdefault(
                str(version),
                {
                    "value": [None] * len(starts),
                    "labelled": [None] * len(starts),
                    "rows": [0] * len(starts),
                },
            )
            series["rows"][at] = part.rows
            series["labelled"][at] = 0
            if quality is None or not quality.labelled:
                continue
            task = task or quality.task
            series["labelled"][at] = quality.labelled
            series["value"][at] = quality.metrics.get(_QUALITY[quality.task])
    return {
        "bucket_s": width,
        "starts": starts,
        "sample_per_bucket": sample,
        "task": task,
        "metric": None if task is None else _QUALITY[task],
        "versions": dict(sorted(versions.items(), key=lambda kv: int(kv[0]))),
    }


# -- helpers --------------------------------------------------------------------------------


def _versions(ui: UiContext, name: str) -> dict[str, Any]:
    try:
        config = ui.deployments.get(name).config
    except NotFoundError:  # a model served alone: its log is all there is
        return {"champion": None, "canary": None, "shadows": []}
    return {
        "champion": config.champion,
        "canary": config.canary,
        "shadows": [s.version for s in config.shadows],
    }


def _reference_metrics(
    ui: UiContext, model: str, versions: Mapping[str, Any]
) -> dict[str, dict[str, float]]:
    """The metrics each served version was registered with (what live figures drop from)."""
    numbers = [versions["champion"], versions["canary"], *versions["shadows"]]
    found = {}
    for version in dict.fromkeys(v for v in numbers if v is not None):
        try:
            found[str(version)] = dict(ui.yard.registry.get_version(model, version).metrics)
        except NotFoundError:
            continue
    return found


def _document(value: dict[str, Any]) -> dict[str, Any]:
    """A page's document with every float JSON cannot hold (NaN, infinities) as None."""
    plain: dict[str, Any] = _plain(value)
    return plain


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
