"""The dashboard's models and runs data routes over a large home (issue 21, items 1 and 5).

Builds a home holding ``--runs`` runs (each with ``--metrics`` metrics of ``--steps``
points, two params and a tag) and ``--versions`` versions of one model ``big`` (plus
``--moves`` alias moves and a retrain's events), written through the stores as the
library writes them (``SqlRunRepository``, ``SqlRegistryRepository``), then times
each data route of the models and runs pages through Starlette's ``TestClient`` over
``create_app``: the route's reads, its document and its JSON, without the network.
Each figure is the median of ``--repeat`` calls after one warm-up call. The first
page and a page deep in the list are both timed: keyset paging makes them cost the same.

``--browser`` also times whole page loads: ``modelyard ui`` serves the home, and
Debian's headless Chromium (Playwright) loads each page afresh until it has drawn
what it is for (the table's rows, the histograms, the charts' canvases).

    .venv/bin/python benchmarks/ui/bench_pages.py --runs 10000 --versions 10000 --browser
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

from modelyard.config import load_settings
from modelyard.registry.records import VersionDraft
from modelyard.registry.sql import SqlRegistryRepository
from modelyard.routing.deployment import Event
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.tracking import RunInfo
from modelyard.tracking.search import page_token, run_key
from modelyard.tracking.sql import SqlRunRepository
from modelyard.ui.app import create_app
from modelyard.yard import Yard

T0 = 1_800_000_000.0


def fill_runs(yard: Yard, count: int, metrics: int, steps: int) -> list[RunInfo]:
    """``count`` runs, one second apart; one in ten has auc > 0.9."""
    runs = SqlRunRepository(yard.db)
    made = []
    for i in range(count):
        info = RunInfo(
            id=uuid.UUID(int=i + 1).hex,
            name=f"run-{i}",
            experiment="bench" if i % 2 else "default",
            status="FINISHED",
            start_time=T0 + i,
            end_time=T0 + i + 0.5,
            seed=i,
            user="bench",
            git_commit=None,
            environment={"python": "3.11"},
        )
        runs.create_run(info)
        auc = 0.95 if i % 10 == 0 else 0.5 + (i % 7) / 100
        points = [
            (info.id, f"m{k}" if k else "auc", auc if k == 0 else step / (k + 1), step, T0 + i)
            for k in range(metrics)
            for step in range(steps)
        ]
        runs.write_batch(info.id, points, {"model": "rf", "depth": str(i % 9)}, {"team": "a"})
        made.append(info)
    return made


def fill_versions(yard: Yard, count: int, moves: int) -> None:
    """``count`` versions of ``big``: one registered for real (artifact, profile), the
    rest the same draft stored again, as the registry's repository stores them."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 6)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(int)
    first = yard.registry.register("big", LogisticRegression().fit(features, labels), features)
    draft = VersionDraft(
        flavour=first.flavour,
        artifact_digest=first.artifact_digest,
        artifact_size=first.artifact_size,
        signature=first.signature,
        profile_digest=first.profile_digest,
        metrics={"auc": 0.9, "accuracy": 0.8},
        lineage=first.lineage,
        run_id=None,
        parent_version=None,
        description="",
        created_at=T0,
        created_by="bench",
    )
    repository = SqlRegistryRepository(yard.db)
    for n in range(2, count + 1):
        repository.add_version("big", replace(draft, created_at=T0 + n, parent_version=n - 1))
    for m in range(moves):
        version = 1 + (m * 7919) % count
        yard.registry.set_alias("big", "champion", version, actor="bench", reason=f"move {m}")
    yard.deployments.create("big-live", "big", 1, actor="bench")
    events = SqlDeploymentRepository(yard.db)
    for kind, payload in [
        ("retrain.started", {"trigger": "drift"}),
        ("retrain.trained", {"run_id": uuid.UUID(int=1).hex}),
        ("retrain.registered", {"version": count}),
    ]:
        events.record(Event(T0, kind, "big-live", "bench", {**payload, "retrain": 1}, "bench"))


def timed(client: TestClient, path: str, repeat: int) -> tuple[float, int, int]:
    """Median milliseconds of ``repeat`` GETs (after one), the status and the body's bytes."""
    reply = client.get(path)
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        reply = client.get(path)
        walls.append((time.perf_counter() - start) * 1000)
    return statistics.median(walls), reply.status_code, len(reply.content)


@contextmanager
def dashboard(home: Path) -> Iterator[str]:
    """``modelyard ui`` over ``home`` on a free port, until the block ends."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["MODELYARD_HOME"] = str(home)
    args = [sys.executable, "-m", "modelyard", "ui", "--port", str(port)]
    process = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ui/api/session", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def page_loads(url: str, pages: list[tuple[str, str, str]], repeat: int) -> list[float]:
    """Median milliseconds from navigating to each page to its ``ready`` selector visible."""
    from playwright.sync_api import sync_playwright  # the dev extra's; only for --browser

    medians = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for _, route, ready in pages:
            walls = []
            for attempt in range(repeat + 1):
                page.goto("about:blank")
                start = time.perf_counter()
                page.goto(f"{url}/ui/#{route}")
                page.locator(ready).first.wait_for(timeout=30_000)
                if attempt:  # the first load warms the server's and the browser's caches
                    walls.append((time.perf_counter() - start) * 1000)
            medians.append(statistics.median(walls))
        browser.close()
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--metrics", type=int, default=5, help="metric keys per run")
    parser.add_argument("--steps", type=int, default=10, help="points per metric")
    parser.add_argument("--moves", type=int, default=200, help="alias moves of big")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--home", type=Path, default=None, help="keep the home here")
    parser.add_argument("--browser", action="store_true", help="time page loads in Chromium")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="bench-ui-")) / "home"
    settings = load_settings(home=home, environ={})
    try:
        start = time.perf_counter()
        with Yard(settings) as yard:
            runs = fill_runs(yard, args.runs, args.metrics, args.steps)
            built_runs = time.perf_counter() - start
            fill_versions(yard, args.versions, args.moves)
        built = time.perf_counter() - start
        print(
            f"built {args.runs:,} runs ({args.runs * args.metrics * args.steps:,} metric points) "
            f"in {built_runs:.1f} s, {args.versions:,} versions and {args.moves} alias moves "
            f"in {built - built_runs:.1f} s"
        )
        middle = runs[len(runs) // 2]
        deep_run = quote(page_token(run_key(middle)), safe="")
        deep_version = str(args.versions // 2)
        paths: list[tuple[str, str]] = [
            ("models list", "/ui/api/models"),
            ("model big, versions page 1", "/ui/api/models/big"),
            (
                f"model big, versions below {deep_version}",
                f"/ui/api/models/big?page_token={deep_version}",
            ),
            ("version page (profile, lineage)", f"/ui/api/models/big/versions/{deep_version}"),
            ("model retraining history", "/ui/api/models/big/retrains"),
            ("runs page 1", "/ui/api/runs"),
            ("runs, a page in the middle", f"/ui/api/runs?page_token={deep_run}"),
            ("runs, filter metrics.auc > 0.9", "/ui/api/runs?filter=metrics.auc%20%3E%200.9"),
            (
                "runs, filter, a page in the middle",
                f"/ui/api/runs?filter=metrics.auc%20%3E%200.9&page_token={deep_run}",
            ),
            (
                "runs, filter on a param and experiment",
                "/ui/api/runs?filter=params.depth%20%3D%20%273%27&experiment=bench",
            ),
            (
                "runs, 8 chosen columns",
                "/ui/api/runs?columns="
                + ",".join(
                    [f"metrics.m{k}" for k in range(1, min(args.metrics, 5))]
                    + ["metrics.auc", "params.model", "params.depth"]
                ),
            ),
            ("run page (charts of its metrics)", f"/ui/api/runs/{middle.id}"),
            ("one metric's history", f"/ui/api/runs/{middle.id}/metric?key=auc"),
        ]
        rows: list[tuple[str, Any, Any, Any]] = []
        with TestClient(create_app(settings)) as client:
            for label, path in paths:
                ms, status, size = timed(client, path, args.repeat)
                assert status == 200, (path, status)
                rows.append((label, ms, status, size))
                print(f"{label:42} {ms:8.2f} ms  {size:>8,} bytes", flush=True)
        print()
        print(
            f"| data route ({args.runs:,} runs, {args.versions:,} versions) | median ms | bytes |"
        )
        print("|---|---|---|")
        for label, ms, _, size in rows:
            print(f"| {label} | {ms:.1f} | {size:,} |")
        if args.browser:
            pages = [
                ("Models", "/models", "main table tbody tr"),
                ("Model big (versions page 1)", "/models/big", "main table tbody tr"),
                (
                    f"Version {deep_version}",
                    f"/models/big/versions/{deep_version}",
                    "svg[role=img]",
                ),
                ("Runs", "/runs", "main table tbody tr"),
                ("Runs, filtered", "/runs?filter=metrics.auc%20%3E%200.9", "main table tbody tr"),
                ("Run (its charts drawn)", f"/runs/{middle.id}", "figure.chart canvas"),
            ]
            with dashboard(home) as url:
                loads = page_loads(url, pages, args.repeat)
            print()
            print("| page, loaded in headless Chromium | median ms |")
            print("|---|---|")
            for (label, _, _), ms in zip(pages, loads, strict=True):
                print(f"| {label} | {ms:.0f} |")
    finally:
        if args.home is None:
            shutil.rmtree(home.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
