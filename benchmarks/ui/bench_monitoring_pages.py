"""The dashboard's monitoring and requests data routes against a large inference log
(issue 21: "stays fast with 1M logged predictions").

    .venv/bin/python benchmarks/ui/bench_monitoring_pages.py [--predictions 1000000] [--repeat 5]

Builds a fresh embedded (SQLite) home: model ``fraud`` (versions 1 and 2, a scikit-learn
forest on 8 features, with their reference profiles), deployment ``fraud`` serving v1
with a canary of v2 at 10%; then ``--predictions`` logged one-row requests over the 24 h
before now (micro-batches of 64, 90% v1 and 10% v2, one in 1,000 answered 500 with an
error and no inputs, encoded and stored by the real code: ``record.encode``,
``storage.storable``, ``SqlInferenceLogRepository.add_batches``), a label for one
request in ten (``FeedbackStore.post``), a drift check per version every 5 minutes of
those 24 h (576 stored checks, each a real ``detect_drift`` report of 300 live rows), a
``drift_share`` alert every 30 minutes, and a retrain's and a rollout's events.

Then times each data route of the monitoring and requests pages, and the deployment
page's, through Starlette's TestClient over ``create_app`` (in process: routing, the
reads, JSON encoding; no network): the median and the slowest of ``--repeat`` calls
after one warm-up call, and the size of the answer.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from starlette.testclient import TestClient

from modelyard.config import load_settings
from modelyard.monitoring import FeedbackItem, FeedbackStore, SqlInferenceLogRepository
from modelyard.monitoring.drift import detect_drift
from modelyard.monitoring.inference_log.record import Group, encode
from modelyard.monitoring.inference_log.storage import storable
from modelyard.monitoring.rules import Alert
from modelyard.monitoring.sql import SqlMonitoringRepository
from modelyard.routing import RolloutController, RolloutPolicy
from modelyard.routing.deployment import Event
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.ui import create_app
from modelyard.yard import Yard

BATCH = 64
FEATURES = [f"f{i}" for i in range(8)]
SPAN_S = 86_400.0
CHECK_EVERY_S = 300.0
ALERT_EVERY_S = 1800.0


def build(home: Path, predictions: int, now: float) -> dict[str, object]:
    """The home described in the module docstring; what the timed routes need to name."""
    features, labels = make_classification(n_samples=2000, n_features=8, random_state=3)
    features = features.astype(np.float32)
    with Yard(load_settings(home=home, environ={})) as yard:
        for seed in (0, 1):
            forest = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=seed)
            yard.registry.register(
                "fraud", forest.fit(features, labels), features, feature_names=FEATURES
            )
        yard.deployments.create("fraud", "fraud", 1, actor="bench")
        policy = RolloutPolicy(step_weights=(10.0, 50.0, 100.0), interval_s=3600.0)
        RolloutController(yard.deployments).start("fraud", 2, policy, actor="bench")
        log = SqlInferenceLogRepository(yard.db)
        started = time.perf_counter()
        ids = fill(log, predictions, now)
        filled = time.perf_counter() - started
        started = time.perf_counter()
        feedback = FeedbackStore(log)
        rng = np.random.default_rng(5)
        for at in range(0, len(ids), 50_000):
            chunk = ids[at : at + 50_000]
            feedback.post([FeedbackItem(int(rng.uniform() < 0.3), request_id=i) for i in chunk])
        labelled = time.perf_counter() - started
        monitoring = SqlMonitoringRepository(yard.db)
        checks = store_checks(monitoring, features, now)
        events = SqlDeploymentRepository(yard.db)
        gate = {"gate": {"passed": False}, "candidate": {"roc_auc": 0.8}, "holdout_rows": 400}
        analysis = {"verdict": "hold", "canary": 2, "champion": 1, "figures": {"requests": 12}}
        for event in (
            Event(now - 600, "retrain.started", "fraud", "drift: f0", {"trigger": "drift"}, "bot"),
            Event(now - 300, "retrain.gate_failed", "fraud", "no gain", gate, "bot"),
            Event(now - 60, "rollout.hold", "fraud", "too few requests", analysis, "controller"),
        ):
            events.record(event)
    print(
        f"home: {predictions:,} logged predictions in {filled:.0f} s, "
        f"{len(ids):,} labels in {labelled:.0f} s, {checks} drift checks"
    )
    return {"request": ids[len(ids) // 2], "now": now}


def fill(log: SqlInferenceLogRepository, predictions: int, now: float) -> list[str]:
    """``predictions`` one-row requests over the day before ``now``; the ids of every
    tenth (those of failed requests left out), to be labelled."""
    rng = np.random.default_rng(0)
    first = now - SPAN_S
    step = SPAN_S / predictions
    pending = []
    labelled = []
    for number in range(math.ceil(predictions / BATCH)):
        count = min(BATCH, predictions - number * BATCH)
        at = first + number * BATCH * step
        version, arm = (2, "canary") if number % 10 == 0 else (1, "champion")
        group = Group("fraud", "fraud", version)
        matrix = rng.normal(size=(count, len(FEATURES))).astype(np.float32)
        score = rng.uniform(size=count)
        outputs = {
            "label": (score >= 0.5).astype(np.int64),
            "probabilities": np.column_stack([1 - score, score]),
        }
        for i in range(count):
            request_id = f"r{number * BATCH + i:010d}"
            failed = (number * BATCH + i) % 1000 == 999
            group.append(
                request_id=request_id,
                ts=at + i * step,
                latency_ms=float(rng.lognormal(1.0, 0.5)),
                rows=1,
                arm=arm,
                status=500 if failed else 200,
                error="model_failed: out of memory" if failed else None,
                inputs=None if failed else matrix,
                input_names=None if failed else FEATURES,
                input_rows=None if failed else (i, i + 1),
                outputs=None if failed else outputs,
                output_rows=None if failed else (i, i + 1),
            )
            if (number * BATCH + i) % 10 == 0 and not failed:
                labelled.append(request_id)
        pending += storable(encode(group, secrets.token_hex(16)))[0]
        if len(pending) >= 200:
            log.add_batches(pending)
            pending = []
    log.add_batches(pending)
    return labelled


def store_checks(monitoring: SqlMonitoringRepository, reference: np.ndarray, now: float) -> int:
    """A drift check per version every ``CHECK_EVERY_S`` of the day, and alerts."""
    rng = np.random.default_rng(1)
    stored = 0
    alerts = []
    for number in range(int(SPAN_S / CHECK_EVERY_S)):
        end = now - SPAN_S + (number + 1) * CHECK_EVERY_S
        for version in (1, 2):
            live = rng.normal(size=(300, len(FEATURES))) + (0.5 if number > 200 else 0.0)
            report = detect_drift(
                {n: reference[:, i] for i, n in enumerate(FEATURES)},
                {n: live[:, i] for i, n in enumerate(FEATURES)},
            )
            monitoring.add_drift_result("fraud", "fraud", version, end - 3600.0, end, report, end)
            stored += 1
            if version == 1 and number % int(ALERT_EVERY_S / CHECK_EVERY_S) == 0:
                value = report.share_drifted
                figures = {"drift_share": value}
                alerts.append(
                    Alert("fraud", "drift", 1, "drift_share", value, ">", 0.0, 1, end, figures)
                )
    monitoring.record_alerts(alerts, {}, "monitor")
    return stored


def reuse(home: Path) -> dict[str, object]:
    made: dict[str, object] = json.loads((home / "made.json").read_text())
    print(f"home: reused {home} (built {time.time() - float(made['now']):,.0f} s ago)")
    return made


def timed(client: TestClient, path: str, repeat: int) -> tuple[float, float, int]:
    """Median and slowest milliseconds of ``repeat`` calls (after a warm-up), and bytes."""
    reply = client.get(path)
    if reply.status_code != 200:
        raise SystemExit(f"{path}: {reply.status_code} {reply.text}")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        reply = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), len(reply.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--home", type=Path, help="Build the home here and keep it (reused if it holds one)."
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp)
        made = reuse(home) if (home / "made.json").exists() else None
        if made is None:
            made = build(home, args.predictions, time.time())
            (home / "made.json").write_text(json.dumps(made))
        now = float(made["now"])
        with TestClient(create_app(load_settings(home=home, environ={}))) as client:
            first = client.get("/ui/api/requests?deployment=fraud").json()
            monitoring = client.get("/ui/api/deployments/fraud/monitoring").json()
            check = monitoring["checks"][0]["id"]
            request = made["request"]
            hour = now - 12 * 3600.0
            fraud = "/ui/api/deployments/fraud"
            search = "/ui/api/requests?deployment=fraud"
            routes: list[tuple[str, str]] = [
                ("deployment page (1 h)", fraud),
                ("deployment page (1 day)", f"{fraud}?span=86400"),
                ("monitoring page (1 day)", f"{fraud}/monitoring"),
                ("monitoring page (7 days)", f"{fraud}/monitoring?span=604800"),
                ("live accuracy (1 day)", f"{fraud}/accuracy"),
                ("live accuracy (7 days)", f"{fraud}/accuracy?span=604800"),
                ("one drift check + histograms", f"{fraud}/drift/{check}"),
                ("requests: newest 50", search),
                ("requests: next page", f"{search}&cursor={first['next']}"),
                ("requests: status=error", f"{search}&status=error"),
                ("requests: status=503 (none)", f"{search}&status=503"),
                ("requests: version=2", f"{search}&version=2"),
                ("requests: labelled=true", f"{search}&labelled=true"),
                ("requests: an hour, 12 h ago", f"{search}&since={hour - 3600}&until={hour}"),
                ("requests: one id, any deployment", f"/ui/api/requests?id={request}"),
                ("one request in full", f"{fraud}/requests/{request}"),
            ]
            results: list[tuple[str, float, float, int]] = []
            for name, path in routes:
                median, slowest, size = timed(client, path, args.repeat)
                results.append((name, median, slowest, size))
        print(f"\n{args.predictions:,} logged predictions; median / slowest of {args.repeat}:")
        print(f"{'route':<36} {'median ms':>10} {'max ms':>9} {'bytes':>10}")
        for name, median, slowest, size in results:
            print(f"{name:<36} {median:>10.1f} {slowest:>9.1f} {size:>10,}")


if __name__ == "__main__":
    main()
