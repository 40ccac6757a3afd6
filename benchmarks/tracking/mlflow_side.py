"""MLflow's side of the tracking benchmark: a worker that runs one measurement per request.

Started by ``bench_tracking.py`` with the throwaway venv's python
(``benchmarks/.venvs/mlflow/bin/python``), ``cwd`` set to a temporary directory
(MLflow's default ``./mlruns`` artifact root lands there) and
``MLFLOW_TRACKING_URI=sqlite:///<dir>/mlflow.db``; the model registry uses the
same database. It reads one JSON request per line on stdin,
``{"task": "log_batch", "points": 100000}``, and answers one JSON line on
stdout, ``{"wall": s, "cpu": s, ...}``. Anything MLflow prints goes to stderr,
so stdout carries only answers. One worker process lives for the whole
benchmark, so the driver can alternate modelyard and MLflow repetition by
repetition and both see the same background load.

The workloads mirror the modelyard ones in ``bench_tracking.py``: same data,
seeds, keys and values.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric
from sklearn.linear_model import LogisticRegression

BATCH_CHUNK = 1_000
BATCH_KEYS = 10
MODEL = "lr"
ALIAS = "champion"
SEARCH_FILTER = "metrics.auc > 0.5 and params.model = 'lr'"


def training_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5_000, 30)).astype(np.float32)
    y = (x[:, 0] - 0.5 * x[:, 1] + rng.normal(size=5_000) > 0).astype(np.int64)
    return x, y


def search_run_values(i: int) -> tuple[dict[str, str], dict[str, float]]:
    """Run ``i`` of the search population: deterministic, identical on both sides."""
    params = {"model": "lr" if i % 2 == 0 else "rf", "C": str(0.1 * (i % 7 + 1))}
    metrics = {"auc": 0.3 + 0.69 * ((i * 7919) % 1000) / 1000, "loss": 1.0 / (i + 1)}
    return params, metrics


class Clock:
    """Wall and CPU seconds of this process since ``start()``."""

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self, **extra: Any) -> dict[str, Any]:
        return {
            "wall": time.perf_counter() - self._wall,
            "cpu": time.process_time() - self._cpu,
            **extra,
        }


class Worker:
    def __init__(self) -> None:
        self.client = MlflowClient()
        mlflow.set_experiment("bench")
        x, y = training_data()
        self.x = x
        self.model = LogisticRegression(max_iter=500).fit(x, y)
        self.search_experiment: str | None = None

    def versions(self) -> dict[str, Any]:
        return {p: metadata.version(p) for p in ("mlflow", "scikit-learn", "sqlalchemy")}

    def log_metric_loop(self, points: int) -> dict[str, Any]:
        clock = Clock()
        with mlflow.start_run(run_name="loop") as run:
            clock.start()
            for step in range(points):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            result = clock.stop()
        assert len(self.client.get_metric_history(run.info.run_id, "loss")) == points
        return result

    def log_batch(self, points: int) -> dict[str, Any]:
        steps = points // BATCH_KEYS
        clock = Clock()
        with mlflow.start_run(run_name="batch") as run:
            run_id = run.info.run_id
            clock.start()
            chunk: list[Metric] = []
            for step in range(steps):
                now = int(time.time() * 1000)
                for k in range(BATCH_KEYS):
                    chunk.append(Metric(f"m{k}", 1.0 / (step + k + 1), now, step))
                if len(chunk) >= BATCH_CHUNK:
                    self.client.log_batch(run_id, metrics=chunk)
                    chunk = []
            if chunk:
                self.client.log_batch(run_id, metrics=chunk)
            result = clock.stop()
        assert len(self.client.get_metric_history(run_id, "m0")) == steps
        return result

    def wide_run(self, runs: int) -> dict[str, Any]:
        """One run with 100 params and 100 metrics, start to end; median of ``runs``."""
        params = {f"p{i}": i for i in range(100)}
        metrics = {f"m{i}": i * 0.01 for i in range(100)}
        walls, cpus = [], []
        clock = Clock()
        for r in range(runs):
            clock.start()
            with mlflow.start_run(run_name=f"wide{r}"):
                mlflow.log_params(params)
                mlflow.log_metrics(metrics)
            one = clock.stop()
            walls.append(one["wall"])
            cpus.append(one["cpu"])
        return {"wall": statistics.median(walls), "cpu": statistics.median(cpus)}

    def register(self) -> dict[str, Any]:
        clock = Clock()
        with mlflow.start_run(run_name="register"):
            clock.start()
            info = mlflow.sklearn.log_model(self.model, name="model", input_example=self.x[:5])
            version = mlflow.register_model(info.model_uri, MODEL)
            return clock.stop(version=int(version.version))

    def set_alias(self, version: int) -> dict[str, Any]:
        self.client.set_registered_model_alias(MODEL, ALIAS, version)
        return {}

    def alias_resolution(self, calls: int) -> dict[str, Any]:
        """Median wall seconds per ``get_model_version_by_alias`` call; mean CPU per call."""
        walls = []
        total = Clock()
        total.start()
        for _ in range(calls):
            start = time.perf_counter()
            self.client.get_model_version_by_alias(MODEL, ALIAS)
            walls.append(time.perf_counter() - start)
        cpu = total.stop()["cpu"] / calls
        return {"wall": statistics.median(walls), "cpu": cpu}

    def search_setup(self, runs: int) -> dict[str, Any]:
        """``runs`` runs with 2 params and 2 metrics each, in their own experiment; per run."""
        self.search_experiment = mlflow.create_experiment("search")
        clock = Clock()
        clock.start()
        for i in range(runs):
            params, metrics = search_run_values(i)
            with mlflow.start_run(run_name=f"s{i}", experiment_id=self.search_experiment):
                mlflow.log_params(params)
                mlflow.log_metrics(metrics)
        result = clock.stop()
        return {"wall": result["wall"] / runs, "cpu": result["cpu"] / runs}

    def search(self) -> dict[str, Any]:
        assert self.search_experiment is not None
        clock = Clock()
        clock.start()
        frame = mlflow.search_runs(
            experiment_ids=[self.search_experiment], filter_string=SEARCH_FILTER
        )
        return clock.stop(matches=len(frame))

    def search_client(self) -> dict[str, Any]:
        assert self.search_experiment is not None
        clock = Clock()
        clock.start()
        found = self.client.search_runs([self.search_experiment], SEARCH_FILTER, max_results=1_000)
        return clock.stop(matches=len(found))


def main() -> None:
    # Keep stdout for answers only: whatever MLflow prints goes to stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    assert os.environ["MLFLOW_TRACKING_URI"].startswith("sqlite:///")
    worker = Worker()
    answers.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        task: Callable[..., dict[str, Any]] = getattr(worker, request.pop("task"))
        answers.write(json.dumps(task(**request)) + "\n")


if __name__ == "__main__":
    main()
