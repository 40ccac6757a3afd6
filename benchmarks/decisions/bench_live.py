"""Canary judgement on a real server under real load, next to Flagger's rule.

    .venv/bin/python benchmarks/decisions/bench_live.py [--runs 20] [--modes paced,saturating]

One `modelyard serve` (2 workers, inference log on) on 127.0.0.1 hosts six
deployments, one per scenario, each with a random forest champion (the last with a
logistic regression), and the repository's load generator sends them varied held-out
rows: paced (open loop, ``--rate`` requests/s in all) or saturating (closed loop,
``--connections``). On every deployment at once, the server's own rollout controller
walks a canary through ``--steps`` until it is promoted or rolled back; then the
deployment is reset and the next rollout starts, until each scenario has ``--runs``:

* good: the champion's recipe with another seed (must be promoted every time);
* errors: the logistic regression behind sqrt and square, which fail (NaN) on the ~5% of
  rows with x0 < 0: a failed batch on those, the champion's decisions elsewhere;
* slow: the champion's recipe with ``SLOWER`` times the trees (its p99 is measured and
  printed);
* shuffled: the recipe trained on shuffled labels;
* differ: the recipe trained with labels flipped on the 10% of rows with the largest
  ``x1`` (its decisions differ on about 10% of requests, measured);
* recalibrated: a logistic regression with its coefficients times 4: the same decisions,
  sharper probabilities (KS on scores far above 0.1).

Every analysis is an event with the canary's window figures; Flagger's rule (request
success rate >= 99% and p99 <= 500 ms per interval, ``threshold`` failed intervals
roll back) is applied to the same recorded windows. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import flagger  # benchmarks/decisions/flagger.py, beside this script
import httpx
import numpy as np
import orjson
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from modelyard.config import load_settings
from modelyard.loadtest.generator import LoadPlan, run_load
from modelyard.routing import DeploymentStore, RolloutController, RolloutPolicy
from modelyard.routing.deployment import Event
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.yard import Yard

FIELDS = [f"x{i}" for i in range(8)]
TREES, DEPTH = 20, 10
SLOWER = 60  # the slow canary's trees, times the champion's
SCENARIOS = ("good", "errors", "slow", "shuffled", "differ", "recalibrated")
HARMFUL = {"errors", "slow", "shuffled", "differ"}
LOAD_CHUNK_S = 60.0


def build_models(yard: Yard, seed: int) -> tuple[dict[str, tuple[str, int, int]], np.ndarray]:
    """Register every version; returns scenario -> (model, champion, canary) and request rows."""
    x, y = make_classification(
        n_samples=40_000, n_features=8, n_informative=5, class_sep=0.8, random_state=seed
    )
    x[:, 0] -= np.quantile(x[:, 0], 0.05)  # x0 < 0 on 5% of rows: where sqrt fails
    x[:, 1:] -= x[:, 1:].min(axis=0) - 0.1
    train, held_out = slice(0, 30_000), slice(30_000, None)
    xt, yt = x[train].astype(np.float32), y[train]
    requests = x[held_out].astype(np.float32)
    requests[:, 1:] = np.maximum(requests[:, 1:], 0.01)

    def forest(s: int, trees: int = TREES) -> RandomForestClassifier:
        return RandomForestClassifier(n_estimators=trees, max_depth=DEPTH, random_state=s)

    safe = xt[:, 0] >= 0
    flipped = yt.copy()
    top = xt[:, 1] > np.quantile(xt[:, 1], 0.9)
    flipped[top] = 1 - flipped[top]
    rng = np.random.default_rng(seed)
    versions = [
        forest(0).fit(xt, yt),  # 1: champion
        forest(1).fit(xt, yt),  # 2: good
        forest(3, trees=TREES * SLOWER).fit(xt, yt),  # 3: slow
        forest(4).fit(xt, rng.permutation(yt)),  # 4: shuffled
        forest(5).fit(xt, flipped),  # 5: differ
    ]
    for model in versions:
        yard.registry.register("rf", model, xt[safe], feature_names=FIELDS)
    linear = LogisticRegression(max_iter=1_000).fit(xt[safe], yt[safe])
    sharp = LogisticRegression(max_iter=1_000).fit(xt[safe], yt[safe])
    sharp.coef_, sharp.intercept_ = sharp.coef_ * 4, sharp.intercept_ * 4
    # sqrt then square is the identity where x >= 0 and NaN elsewhere, which the
    # regression refuses: the champion's decisions, and a failed batch on ~5% of rows.
    failing = make_pipeline(
        FunctionTransformer(np.sqrt),
        FunctionTransformer(np.square),
        LogisticRegression(max_iter=1_000),
    ).fit(xt[safe], yt[safe])
    for model in (linear, sharp, failing):
        yard.registry.register("lr", model, xt[safe], feature_names=FIELDS)
    plan = {
        "good": ("rf", 1, 2),
        "errors": ("lr", 1, 3),
        "slow": ("rf", 1, 3),
        "shuffled": ("rf", 1, 4),
        "differ": ("rf", 1, 5),
        "recalibrated": ("lr", 1, 2),
    }
    return plan, requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(home: Path, model: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env.update(
        MODELYARD_HOME=str(home),
        MODELYARD_SERVING__PORT=str(port),
        MODELYARD_SERVING__WORKERS="2",
        MODELYARD_SERVING__POLL_INTERVAL_S="0.25",
        MODELYARD_MONITORING__CHECK_INTERVAL_S="0",
    )
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "modelyard.serving", "--model", model],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited; see {home / 'server.log'}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the server was not ready in 90 s; see {home / 'server.log'}")


class Load:
    """The load generator in chunks of ``LOAD_CHUNK_S`` on a thread, until ``stop``."""

    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        self.sent = 0
        self.errors: dict[str, int] = defaultdict(int)
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            result = run_load(self.plan)
            self.sent += result.requests
            self.seconds += result.duration_s
            for kind, count in result.errors.items():
                self.errors[kind] += count

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(LOAD_CHUNK_S + 30)


@dataclass
class Run:
    """One rollout: how it ended, after how many analyses and seconds, and its windows."""

    scenario: str
    phase: str
    analyses: int
    seconds: float
    windows: list[dict[str, Any]] = field(default_factory=list)


def windows_of(events: list[Event], started: float) -> list[dict[str, Any]]:
    """The judged analyses of one rollout, oldest first: the canary's figures per window."""
    found = []
    for event in reversed(events):
        if event.at < started or not event.payload.get("checks"):
            continue
        figures = event.payload["figures"]
        checks = {c["name"]: c for c in event.payload["checks"]}
        found.append(
            {
                "requests": figures.get("canary.requests", 0),
                "errors": figures.get("canary.errors", 0),
                "p99_ms": checks.get("p99", {}).get("value"),
                "champion_p99_ms": checks.get("p99_vs_champion", {})
                .get("figures", {})
                .get("champion_ms"),
                "decision_change": checks.get("decisions", {}).get("value"),
                "divergence": checks.get("prediction_divergence", {}).get("value"),
                "outcomes": {name: c["outcome"] for name, c in checks.items()},
                "verdict": event.kind.removeprefix("rollout."),
            }
        )
    return found


def drive(
    home: Path,
    name: str,
    model: str,
    champion: int,
    canary: int,
    policy: RolloutPolicy,
    runs: int,
    out: list[Run],
    deadline: float,
) -> None:
    """Roll ``canary`` out ``runs`` times on ``name``, resetting the champion in between."""
    with Yard(load_settings(home=home, environ={})) as yard:
        store = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
        roll(store, name, champion, canary, policy, runs, out, deadline)


def roll(
    store: DeploymentStore,
    name: str,
    champion: int,
    canary: int,
    policy: RolloutPolicy,
    runs: int,
    out: list[Run],
    deadline: float,
) -> None:
    controller = RolloutController(store)
    for _ in range(runs):
        if time.monotonic() > deadline:
            return
        store.update(name, lambda c: replace(c, champion=champion), reason="bench reset")
        started = time.time()
        controller.start(name, canary, policy, actor="bench")
        while time.monotonic() < deadline:
            time.sleep(0.25)
            record = store.get(name).rollout
            if record is not None and not record.state.active:
                break
        record = store.get(name).rollout
        assert record is not None
        events = store.events(name, "rollout.", limit=60)
        out.append(
            Run(
                name,
                record.state.phase.value,
                record.state.analyses,
                time.time() - started,
                windows_of(events, started),
            )
        )


def percent(part: int, whole: int) -> str:
    return f"{part}/{whole}"


def report(mode: str, results: list[Run], policy: RolloutPolicy, load: Load) -> None:
    rate = load.sent / load.seconds if load.seconds else 0.0
    errors = dict(load.errors)
    print(f"\n### {mode}: {rate:,.0f} requests/s served in all, load errors {errors or 'none'}\n")
    print(
        "| scenario | runs | promoted | rolled back | analyses to the end (median, max; "
        "of them with canary traffic) "
        "| seconds (median) | canary as measured (median over windows) "
        "| Flagger on the same windows |"
    )
    print("|---|---:|---:|---:|---|---:|---|---|")
    steps = len(policy.step_weights)
    for scenario in SCENARIOS:
        runs = [r for r in results if r.scenario == scenario]
        if not runs:
            continue
        promoted = sum(r.phase == "promoted" for r in runs)
        rolled = sum(r.phase == "rolled_back" for r in runs)
        analyses = [r.analyses for r in runs]
        # The first looks of a rollout can find no canary traffic yet: the workers load
        # the canary's model when the rollout starts (seconds, for a large forest).
        judged = [sum(1 for w in r.windows if w["requests"]) for r in runs]
        windows = [w for r in runs for w in r.windows]
        measured = describe(windows)
        verdicts = [
            flagger.verdict(
                [flagger.Interval(w["requests"], w["errors"], w["p99_ms"]) for w in r.windows],
                policy.failure_threshold,
                steps,
            )
            for r in runs
        ]
        flag = ", ".join(f"{verdicts.count(v)} {v}" for v in sorted(set(verdicts)))
        print(
            f"| {scenario} | {len(runs)} | {promoted} | {rolled} | "
            f"{statistics.median(analyses):g}, {max(analyses)}; "
            f"{statistics.median(judged):g}, {max(judged)} | "
            f"{statistics.median(r.seconds for r in runs):.1f} | {measured} | {flag} |"
        )
    failing: dict[str, int] = defaultdict(int)
    for run in results:
        if run.scenario == "good" and run.phase != "promoted":
            for window in run.windows:
                for name, outcome in window["outcomes"].items():
                    if outcome in ("failed", "breached"):
                        failing[name] += 1
    if failing:
        print(f"\ngood canaries' failing checks: {dict(failing)}")


def describe(windows: list[dict[str, Any]]) -> str:
    def median(key: str) -> float | None:
        values = [w[key] for w in windows if isinstance(w.get(key), int | float)]
        return statistics.median(values) if values else None

    errors = sum(w["errors"] or 0 for w in windows)
    requests = sum(w["requests"] or 0 for w in windows)
    parts = [f"errors {errors / requests:.1%}" if requests else "no requests"]
    p99, theirs = median("p99_ms"), median("champion_p99_ms")
    if p99 is not None and theirs:
        parts.append(f"p99 {p99:.1f} vs {theirs:.1f} ms")
    change = median("decision_change")
    if change is not None:
        parts.append(f"decisions differ {change:.1%}")
    divergence = median("divergence")
    if divergence is not None:
        parts.append(f"KS {divergence:.2f}")
    return ", ".join(parts)


def bodies(requests: np.ndarray, count: int) -> list[bytes]:
    return [
        orjson.dumps(
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 8], "data": row}]}
        )
        for row in requests[:count].tolist()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--modes", default="paced,saturating")
    parser.add_argument("--rate", type=float, default=1_200.0, help="paced: requests/s in all")
    parser.add_argument("--connections", type=int, default=64, help="saturating")
    parser.add_argument("--steps", default="20,50,100")
    parser.add_argument("--interval", type=float, default=4.0)
    parser.add_argument("--min-requests", type=int, default=100)
    parser.add_argument("--budget-s", type=float, default=900.0, help="per mode, at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = parser.parse_args()
    policy = RolloutPolicy(
        step_weights=tuple(float(w) for w in args.steps.split(",")),
        interval_s=args.interval,
        min_requests=args.min_requests,
    )
    print(f"policy: {policy.to_dict()}")
    root = Path(tempfile.mkdtemp(prefix="bench-live-"))
    try:
        for mode in args.modes.split(","):
            home = root / mode
            with Yard(load_settings(home=home, environ={})) as yard:
                plan, requests = build_models(yard, args.seed)
                store = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
                for scenario, (model, champion, _) in plan.items():
                    store.create(scenario, model, champion)
            process, url = start_server(home, "rf/1")
            chosen = [s for s in SCENARIOS if s in args.scenarios.split(",")]
            variants = tuple(
                (f"/v2/models/{scenario}/infer", body)
                for body in bodies(requests, 1_000)
                for scenario in chosen
            )
            load_plan = LoadPlan(
                url=url,
                path="/v2/models/good/infer",
                body=b"",
                connections=args.connections if mode == "saturating" else 48,
                duration_s=LOAD_CHUNK_S,
                rate=args.rate if mode == "paced" else None,
                variants=variants,
            )
            load = Load(load_plan)
            time.sleep(3.0)
            results: list[Run] = []
            deadline = time.monotonic() + args.budget_s
            try:
                threads = [
                    threading.Thread(
                        target=drive,
                        args=(home, s, *plan[s], policy, args.runs, results, deadline),
                    )
                    for s in chosen
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            finally:
                load.stop()
                process.send_signal(signal.SIGTERM)
                process.wait(30)
            report(mode, results, policy, load)
            (root / f"{mode}.json").write_bytes(
                orjson.dumps([r.__dict__ for r in results], option=orjson.OPT_SERIALIZE_NUMPY)
            )
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
