"""Tracking and registry, modelyard side by side with MLflow on SQLite, in one run (issue 2).

    .venv/bin/python benchmarks/tracking/bench_tracking.py [--repeat 3] [--quick] [--json PATH]

modelyard runs in this process; MLflow runs in a worker, ``mlflow_side.py``,
under the throwaway venv ``benchmarks/.venvs/mlflow`` (``--mlflow-python``).
Each side has a fresh SQLite database in a temporary directory, and the same
workloads, data and seeds. Repetitions alternate sides (modelyard first on
even repetitions, MLflow first on odd ones), so background load on this
shared 2-core machine falls on both alike; each figure is the median of
``--repeat`` repetitions, in wall time (the issue's unit) and in CPU time of
the measured process (less sensitive to other work on the machine). The
fresh-process figure starts a new interpreter per repetition and times
``subprocess.run`` from start to the first prediction returned.

MLflow's ``log_metric`` loop runs 10k points (1k with ``--quick``); its
per-call time is extrapolated to the 100k points modelyard logs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from modelyard.config import load_settings
from modelyard.tracking.environment import capture_environment, git_commit
from modelyard.yard import Yard

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_MLFLOW_PYTHON = REPO / "benchmarks" / ".venvs" / "mlflow" / "bin" / "python"
BATCH_KEYS = 10
MODEL = "lr"
ALIAS = "champion"
SEARCH_FILTER = "metrics.auc > 0.5 and params.model = 'lr'"

OURS_FRESH = (
    "import modelyard, numpy as np; m = modelyard.load_model('lr@champion'); "
    "m.predict(np.zeros((1, 30), np.float32))"
)
MLFLOW_FRESH = (
    "import mlflow.pyfunc, numpy as np; m = mlflow.pyfunc.load_model('models:/lr@champion'); "
    "m.predict(np.zeros((1, 30), np.float32))"
)
FLOOR = "import numpy"

Result = dict[str, Any]  # {"wall": s, "cpu": s, ...}


@dataclass(frozen=True)
class Counts:
    ours_loop_points: int
    mlflow_loop_points: int
    batch_points: int
    wide_runs: int
    alias_calls: int
    search_runs: int


FULL = Counts(100_000, 10_000, 100_000, 10, 1_000, 1_000)
QUICK = Counts(100_000, 1_000, 100_000, 3, 300, 1_000)


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

    def stop(self, **extra: Any) -> Result:
        return {
            "wall": time.perf_counter() - self._wall,
            "cpu": time.process_time() - self._cpu,
            **extra,
        }


def per_call(call: Callable[[], object], calls: int) -> Result:
    """Median wall seconds per call, mean CPU seconds per call."""
    walls = []
    cpu = time.process_time()
    for _ in range(calls):
        start = time.perf_counter()
        call()
        walls.append(time.perf_counter() - start)
    return {"wall": statistics.median(walls), "cpu": (time.process_time() - cpu) / calls}


# -- the modelyard side (mirrors mlflow_side.Worker, task by task) -------------------------


class OursWorker:
    def __init__(self, home: Path) -> None:
        self.yard = Yard(load_settings(home=home))
        x, y = training_data()
        self.x = x
        self.model = LogisticRegression(max_iter=500).fit(x, y)

    def log_metric_loop(self, points: int) -> Result:
        """One call per point, timed until the buffered points are in the database."""
        clock = Clock()
        with self.yard.start_run("loop") as run:
            clock.start()
            for step in range(points):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.flush()
            result = clock.stop()
        assert len(self.yard.tracking.metric_history(run.id, "loss")) == points
        return result

    def log_metrics_batch(self, points: int) -> Result:
        """``log_metrics`` with 10 keys per call: the same points as MLflow's log_batch."""
        steps = points // BATCH_KEYS
        clock = Clock()
        with self.yard.start_run("batch") as run:
            clock.start()
            for step in range(steps):
                run.log_metrics({f"m{k}": 1.0 / (step + k + 1) for k in range(BATCH_KEYS)}, step)
            run.flush()
            result = clock.stop()
        assert len(self.yard.tracking.metric_history(run.id, "m0")) == steps
        return result

    def wide_run(self, runs: int) -> Result:
        """One run with 100 params and 100 metrics, start to end; median of ``runs``."""
        params = {f"p{i}": i for i in range(100)}
        metrics = {f"m{i}": i * 0.01 for i in range(100)}
        walls, cpus = [], []
        clock = Clock()
        for r in range(runs):
            clock.start()
            with self.yard.start_run(f"wide{r}") as run:
                run.log_params(params)
                run.log_metrics(metrics)
            one = clock.stop()
            walls.append(one["wall"])
            cpus.append(one["cpu"])
        return {"wall": statistics.median(walls), "cpu": statistics.median(cpus)}

    def register(self) -> Result:
        """Convert to ONNX, check it against scikit-learn, profile the data, store."""
        clock = Clock()
        clock.start()
        version = self.yard.registry.register(MODEL, self.model, self.x)
        result = clock.stop(version=version.version)
        assert version.flavour == "onnx", version.flavour
        return result

    def set_alias(self, version: int) -> Result:
        self.yard.registry.set_alias(MODEL, ALIAS, version, reason="benchmark")
        return {}

    def alias_resolution(self, calls: int) -> Result:
        return per_call(lambda: self.yard.registry.resolve(f"{MODEL}@{ALIAS}"), calls)

    def alias_version_record(self, calls: int) -> Result:
        """Alias to the full version record: what MLflow's call returns."""
        registry = self.yard.registry
        return per_call(lambda: registry.get_version(*registry.resolve(f"{MODEL}@{ALIAS}")), calls)

    def search_setup(self, runs: int) -> Result:
        """``runs`` runs with 2 params and 2 metrics each, in their own experiment; per run."""
        clock = Clock()
        clock.start()
        for i in range(runs):
            params, metrics = search_run_values(i)
            with self.yard.start_run(f"s{i}", experiment="search") as run:
                run.log_params(params)
                run.log_metrics(metrics)
        result = clock.stop()
        return {"wall": result["wall"] / runs, "cpu": result["cpu"] / runs}

    def search(self) -> Result:
        clock = Clock()
        clock.start()
        found = self.yard.tracking.search_runs(SEARCH_FILTER, experiment="search")
        return clock.stop(matches=len(found))

    def close(self) -> None:
        self.yard.close()


# -- the MLflow side: a worker process in the throwaway venv ------------------------------


class MlflowWorker:
    def __init__(self, python: Path, workdir: Path, log: IO[str]) -> None:
        self.process = subprocess.Popen(
            [str(python), str(HERE / "mlflow_side.py")],
            cwd=workdir,
            env=mlflow_env(workdir),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        self.log = log
        self._read()  # {"ready": true}, once MLflow is imported and the model fitted

    def call(self, task: str, **kwargs: Any) -> Result:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"task": task, **kwargs}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def _read(self) -> Result:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            tail = self.log.read()[-4000:]
            sys.exit(f"mlflow_side.py died (exit {self.process.wait()}):\n{tail}")
        result: Result = json.loads(line)
        return result

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def mlflow_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    # No network here: telemetry would only add failed attempts to MLflow's times.
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"
    return env


def fresh_process(command: list[str], env: dict[str, str], cwd: Path) -> Result:
    """Wall seconds around ``subprocess.run``; CPU seconds (user + sys) of the child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"fresh process {command} failed:\n{done.stderr[-4000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"wall": wall, "cpu": cpu}


# -- the schedule ----------------------------------------------------------------------


def alternate(
    results: dict[str, dict[str, list[Result]]],
    key: str,
    ours: Callable[[], Result],
    theirs: Callable[[], Result],
    repeat: int,
) -> None:
    """``repeat`` repetitions of one figure, sides alternating who goes first."""
    mine, other = results["modelyard"].setdefault(key, []), results["mlflow"].setdefault(key, [])
    for rep in range(repeat):
        if rep % 2 == 0:
            mine.append(ours())
            other.append(theirs())
        else:
            other.append(theirs())
            mine.append(ours())
        print(f"  {key} {rep + 1}/{repeat}", file=sys.stderr, flush=True)


def measure(
    counts: Counts, repeat: int, mlflow_python: Path, tmp: Path, log: IO[str]
) -> dict[str, Any]:
    ours_home, mlflow_dir = tmp / "modelyard", tmp / "mlflow"
    mlflow_dir.mkdir()
    ours = OursWorker(ours_home)
    theirs = MlflowWorker(mlflow_python, mlflow_dir, log)
    results: dict[str, dict[str, list[Result]]] = {"modelyard": {}, "mlflow": {}}
    mine, other = results["modelyard"], results["mlflow"]

    def both(key: str, ours_call: Callable[[], Result], their_call: Callable[[], Result]) -> None:
        alternate(results, key, ours_call, their_call, repeat)

    c = counts
    both(
        "log_metric_loop",
        lambda: ours.log_metric_loop(c.ours_loop_points),
        lambda: theirs.call("log_metric_loop", points=c.mlflow_loop_points),
    )
    both(
        "batch",
        lambda: ours.log_metrics_batch(c.batch_points),
        lambda: theirs.call("log_batch", points=c.batch_points),
    )
    both(
        "wide_run",
        lambda: ours.wide_run(c.wide_runs),
        lambda: theirs.call("wide_run", runs=c.wide_runs),
    )
    both("register", ours.register, lambda: theirs.call("register"))
    ours.set_alias(mine["register"][-1]["version"])
    theirs.call("set_alias", version=other["register"][-1]["version"])
    both(
        "alias_resolution",
        lambda: ours.alias_resolution(c.alias_calls),
        lambda: theirs.call("alias_resolution", calls=c.alias_calls),
    )
    mine["alias_version_record"] = [ours.alias_version_record(c.alias_calls) for _ in range(repeat)]
    alternate(  # once: it builds the population the searches read
        results,
        "search_setup",
        lambda: ours.search_setup(c.search_runs),
        lambda: theirs.call("search_setup", runs=c.search_runs),
        1,
    )
    both("search", ours.search, lambda: theirs.call("search"))
    other["search_client"] = [theirs.call("search_client") for _ in range(repeat)]
    versions = theirs.call("versions")
    theirs.close()

    ours_env = dict(os.environ, MODELYARD_HOME=str(ours_home))
    their_env = mlflow_env(mlflow_dir)
    for key, our_code, their_code in (
        ("fresh_process", OURS_FRESH, MLFLOW_FRESH),
        ("python_floor", FLOOR, FLOOR),
    ):
        both(
            key,
            partial(fresh_process, [sys.executable, "-c", our_code], ours_env, ours_home),
            partial(fresh_process, [str(mlflow_python), "-c", their_code], their_env, mlflow_dir),
        )
    # Where modelyard's start_run time goes: each runs once per start_run.
    mine["capture_environment"] = [per_call(capture_environment, 20)]
    mine["git_commit"] = [per_call(git_commit, 20)]
    ours.close()
    return {"results": results, "mlflow_versions": versions}


# -- the report ------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    figure: str
    ours: Result  # medians: {"wall": s, "cpu": s}
    theirs: Result
    unit: str  # "s" or "ms"
    target: float | None  # required speed-up (MLflow wall / modelyard wall); None: report

    def cells(self) -> list[str]:
        scale = 1e3 if self.unit == "ms" else 1.0
        wall = self.theirs["wall"] / self.ours["wall"]
        cpu = self.theirs["cpu"] / self.ours["cpu"] if self.ours["cpu"] > 0 else float("nan")
        if self.target is None:
            verdict, target = "-", "report"
        else:
            verdict, target = ("PASS" if wall >= self.target else "FAIL"), f">= {self.target:g}x"
        return [
            self.figure,
            f"{self.ours['wall'] * scale:.3g} {self.unit}",
            f"{self.theirs['wall'] * scale:.3g} {self.unit}",
            f"{wall:,.1f}x",
            f"{cpu:,.1f}x",
            target,
            verdict,
        ]


def median_of(results: list[Result], scale: float = 1.0) -> Result:
    return {
        "wall": statistics.median(r["wall"] for r in results) * scale,
        "cpu": statistics.median(r["cpu"] for r in results) * scale,
    }


def table(results: dict[str, dict[str, list[Result]]], counts: Counts) -> list[Row]:
    mine, other = results["modelyard"], results["mlflow"]
    loop_ours = median_of(mine["log_metric_loop"])
    loop_theirs_per_call = median_of(other["log_metric_loop"], 1 / counts.mlflow_loop_points)
    loop_theirs = median_of(
        other["log_metric_loop"], counts.ours_loop_points / counts.mlflow_loop_points
    )
    k = f"{counts.ours_loop_points // 1000}k"
    return [
        Row(
            f"(1) {k} points, log_metric one call at a time "
            f"(MLflow: {counts.mlflow_loop_points:,} run, extrapolated)",
            loop_ours,
            loop_theirs,
            "s",
            100,
        ),
        Row(
            "(1) the same, per log_metric call",
            median_of(mine["log_metric_loop"], 1 / counts.ours_loop_points),
            loop_theirs_per_call,
            "ms",
            None,
        ),
        Row(
            f"(2) {counts.batch_points // 1000}k points: our log_metric loop "
            "vs MLflow log_batch (1,000 per call)",
            loop_ours,
            median_of(other["batch"]),
            "s",
            10,
        ),
        Row(
            "(2) the same points: our log_metrics (10 keys per call) vs log_batch",
            median_of(mine["batch"]),
            median_of(other["batch"]),
            "s",
            None,
        ),
        Row(
            "(3) one run with 100 params + 100 metrics, start to end",
            median_of(mine["wide_run"]),
            median_of(other["wide_run"]),
            "ms",
            None,
        ),
        Row(
            "(4) log + register a LogisticRegression (30 features) version",
            median_of(mine["register"]),
            median_of(other["register"]),
            "s",
            None,
        ),
        Row(
            "(5) resolve name@alias, median per call",
            median_of(mine["alias_resolution"]),
            median_of(other["alias_resolution"]),
            "ms",
            10,
        ),
        Row(
            "(5) alias to the full version record (what MLflow's call returns)",
            median_of(mine["alias_version_record"]),
            median_of(other["alias_resolution"]),
            "ms",
            None,
        ),
        Row(
            f"(6) filtered search over {counts.search_runs:,} runs (MLflow: mlflow.search_runs)",
            median_of(mine["search"]),
            median_of(other["search"]),
            "ms",
            None,
        ),
        Row(
            "(6) the same, MLflow: MlflowClient().search_runs",
            median_of(mine["search"]),
            median_of(other["search_client"]),
            "ms",
            None,
        ),
        Row(
            f"(6, setup) create one run with 2 params + 2 metrics (mean of {counts.search_runs:,})",
            median_of(mine["search_setup"]),
            median_of(other["search_setup"]),
            "ms",
            None,
        ),
        Row(
            "(7) fresh process to the first prediction, model loaded by alias",
            median_of(mine["fresh_process"]),
            median_of(other["fresh_process"]),
            "s",
            10,
        ),
        Row(
            "(7, floor) fresh process: python -c 'import numpy'",
            median_of(mine["python_floor"]),
            median_of(other["python_floor"]),
            "s",
            None,
        ),
    ]


def markdown(rows: list[Row]) -> str:
    head = [
        "figure (median)",
        "modelyard",
        "MLflow",
        "MLflow / modelyard, wall",
        "same, CPU",
        "target",
        "result",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per figure (median)")
    parser.add_argument("--quick", action="store_true", help="fewer MLflow loop points and calls")
    parser.add_argument("--mlflow-python", type=Path, default=DEFAULT_MLFLOW_PYTHON)
    parser.add_argument("--json", type=Path, help="also write every repetition's figures here")
    args = parser.parse_args()
    if not args.mlflow_python.exists():
        sys.exit(
            f"no MLflow venv at {args.mlflow_python}: python3 -m venv benchmarks/.venvs/mlflow "
            "&& benchmarks/.venvs/mlflow/bin/pip install 'mlflow==3.17.*' scikit-learn"
        )
    counts = QUICK if args.quick else FULL
    load_before = os.getloadavg()
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp,
        tempfile.TemporaryFile("w+") as log,
    ):
        measured = measure(counts, args.repeat, args.mlflow_python, Path(tmp), log)
    results = measured["results"]
    matches = {r["matches"] for side in results.values() for r in side["search"]}
    matches |= {r["matches"] for r in results["mlflow"]["search_client"]}
    if len(matches) != 1:
        sys.exit(f"the sides' searches found different numbers of runs: {sorted(matches)}")
    print(markdown(table(results, counts)))
    print()
    diagnostics = results["modelyard"]
    print(
        f"repeat={args.repeat}{', quick' if args.quick else ''}; both searches matched "
        f"{matches.pop()} runs; MLflow {measured['mlflow_versions']['mlflow']}, modelyard "
        f"{metadata.version('modelyard')}; load average before {load_before[0]:.2f}, after "
        f"{os.getloadavg()[0]:.2f}; total {time.perf_counter() - started:.0f} s. "
        f"Inside modelyard's start_run: capture_environment() "
        f"{diagnostics['capture_environment'][0]['wall'] * 1e3:.1f} ms, git_commit() "
        f"{diagnostics['git_commit'][0]['wall'] * 1e3:.1f} ms (median of 20 calls)."
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"counts": asdict(counts), **measured}, indent=1))


if __name__ == "__main__":
    main()
