"""What the server's monitoring pass costs: one ``MonitorJob.run_once`` over logged traffic.

    .venv/bin/python benchmarks/monitoring/bench_monitor_pass.py [--requests 50000] [--repeat 3]

A fresh embedded home gets a 30-feature forest (registered with its reference
profile) and ``--requests`` one-row requests logged through ``InferenceLogger`` in
micro-batches of 8, as serving writes them. Then the pass runs ``--repeat`` times:
read the window (at most ``monitoring.check_max_requests``), join feedback, live
metrics, drift against the reference, alert rules, webhooks. Prints wall and CPU
seconds per pass (median) and what that is as a share of one core at the default
interval (``monitoring.check_interval_s``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from modelyard.config import load_settings
from modelyard.monitoring import InferenceLogger, SqlInferenceLogRepository
from modelyard.runner.host import RunnerStores, monitor_job
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.yard import Yard

BATCH = 8
FEATURES = [f"f{i}" for i in range(30)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    features, labels = make_classification(n_samples=5000, n_features=30, random_state=0)
    features = features.astype(np.float32)
    forest = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0)
    forest.fit(features, labels)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(home=Path(tmp), environ={})
        now = time.time()
        with Yard(settings) as yard:
            yard.registry.register("fraud", forest, features, feature_names=FEATURES)
            log = SqlInferenceLogRepository(yard.db)
            logger = InferenceLogger(log, Path(tmp) / "wal", worker="bench")
            for number in range(args.requests // BATCH):
                at = (number * BATCH) % (len(features) - BATCH)
                rows = features[at : at + BATCH]
                logger.record_batch(
                    model="fraud",
                    version=1,
                    request_ids=[f"{number}-{i}" for i in range(BATCH)],
                    ts=[now - 600 + number * BATCH * 600 / args.requests] * BATCH,
                    deployments=["fraud"] * BATCH,
                    arms=["primary"] * BATCH,
                    spans=[(i, i + 1) for i in range(BATCH)],
                    latency_ms=[1.0] * BATCH,
                    inputs=rows,
                    input_names=FEATURES,
                    outputs={
                        "label": forest.predict(rows).astype(np.int64),
                        "probabilities": forest.predict_proba(rows).astype(np.float32),
                    },
                )
                logger.commit()
            logger.close()
            stores = RunnerStores(settings)
            job = monitor_job(settings, stores, clock=lambda: now)
            walls, cpus = [], []
            with httpx.Client() as client:
                for _ in range(args.repeat):
                    started, cpu = time.perf_counter(), time.process_time()
                    result = job.run_once(client, JsonLog(None, worker="bench"))
                    walls.append(time.perf_counter() - started)
                    cpus.append(time.process_time() - cpu)
            stores.close()
    measured = result["fraud"]
    assert measured is not None
    requests = measured.snapshot.overall.traffic.requests
    cpu = statistics.median(cpus)
    interval = settings.monitoring.check_interval_s
    print(f"monitoring pass over {requests:,} logged requests (median of {args.repeat}):")
    print(f"  {statistics.median(walls):.2f} s wall, {cpu:.2f} s CPU")
    print(f"  at one pass every {interval:g} s: {cpu / interval:.1%} of one core")


if __name__ == "__main__":
    main()
