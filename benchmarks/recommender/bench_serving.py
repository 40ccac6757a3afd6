"""Serving recommendations from a 100k-item catalogue for 1M users, modelyard's
``:recommend`` against a hand-written FastAPI endpoint calling ``implicit``'s ``recommend``.

    .venv/bin/python benchmarks/recommender/bench_serving.py [--duration 10] [--users 1000000]

Both serve the same factors (32 dimensions, random: serving cost does not depend on
how they were fitted) and the same seen items (5 per user, excluded), ``--workers``
processes each (default 2: ``modelyard serve --workers 2``, ``uvicorn --workers 2``),
one BLAS thread per process. The load generator
(``modelyard.loadtest``, loopback only) runs closed-loop on ``--connections`` (32), each
request for one of 2,000 users, k = 10. Prints p50/p99 and throughput side by side.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

from modelyard.config import load_settings
from modelyard.loadtest.generator import LoadPlan, LoadResult, run_load
from modelyard.recommend import example_requests
from modelyard.registry.flavours.recommender import RecommenderModel
from modelyard.yard import Yard

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def build(users: int, items: int, dims: int, seen: int, seed: int) -> RecommenderModel:
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, items, users * seen)
    return RecommenderModel(
        users=np.char.add("u", np.arange(users).astype(str)),
        items=np.char.add("i", np.arange(items).astype(str)),
        popularity=rng.random(items).astype(np.float32),
        seen_indptr=np.arange(0, users * seen + 1, seen, dtype=np.int64),
        seen_indices=indices,
        user_factors=rng.normal(0, 0.3, (users, dims)).astype(np.float32),
        item_factors=rng.normal(0, 0.3, (items, dims)).astype(np.float32),
        kind="mf-random",
    )


def env(home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    clean.update(MODELYARD_HOME=str(home), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return clean


def wait(url: str, process: subprocess.Popen[bytes], timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready in {timeout:g} s")


def load(url: str, path: str, users: int, duration: float, connections: int) -> LoadResult:
    rng = np.random.default_rng(1)
    variants = tuple(
        (path, orjson.dumps({"user": f"u{int(u)}", "k": 10})) for u in rng.integers(0, users, 2000)
    )
    plan = LoadPlan(url=url, path=path, body=variants[0][1], connections=connections,
                    duration_s=duration, warmup_s=min(2.0, duration / 2), variants=variants,
                    headers={"content-type": "application/json"})  # fmt: skip
    return run_load(plan)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="server processes, each")
    args = parser.parse_args()

    def run(url: str, path: str) -> LoadResult:
        return load(url, path, args.users, args.duration, args.connections)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        model = build(args.users, args.items, 32, 5, seed=0)
        np.savez(work / "factors.npz", user_factors=model.user_factors,
                 item_factors=model.item_factors, seen_indptr=model.seen_indptr,
                 seen_indices=model.seen_indices)  # fmt: skip
        with Yard(load_settings(home=work / "home", environ={})) as yard:
            yard.register_model("rec", model, example_requests(model))
        print(f"built and registered {args.users:,} users x {args.items:,} items "
              f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
        rows = []
        port = free_port()
        server = subprocess.Popen(
            [str(BIN / "modelyard"), "serve", "--model", "rec/1", "--port", str(port),
             "--workers", str(args.workers)],
            env=env(work / "home"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait(f"http://127.0.0.1:{port}/v2/health/ready", server)
            url = f"http://127.0.0.1:{port}"
            path = "/v1/models/rec:recommend"
            rows.append(("modelyard :recommend", run(url, path)))
        finally:
            stop(server)
        port = free_port()
        baseline = subprocess.Popen(
            [str(BIN / "uvicorn"), "fastapi_implicit:app", "--port", str(port), "--log-level",
             "warning", "--workers", str(args.workers)],
            cwd=HERE, env={**env(work / "home"), "BENCH_FACTORS": str(work / "factors.npz")},
        )  # fmt: skip
        try:
            wait(f"http://127.0.0.1:{port}/health", baseline)
            rows.append(
                ("FastAPI + implicit.recommend", run(f"http://127.0.0.1:{port}", "/recommend"))
            )
        finally:
            stop(baseline)
    print(f"{args.connections} connections, {args.duration:g} s each, k = 10, "
          f"{args.workers} workers each")  # fmt: skip
    print("| server | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|")
    for name, result in rows:
        print(f"| {name} | {result.throughput:,.0f} | {result.latency.p50_s * 1000:.2f} | "
              f"{result.latency.p99_s * 1000:.2f} | {result.error_count} |")  # fmt: skip


if __name__ == "__main__":
    main()
