"""Wall time and peak memory of ``modelyard monitor metrics`` and ``monitor check`` as the
logged window grows (issue 19, item 9).

    .venv/bin/python benchmarks/monitoring/bench_window_scale.py \\
        [--sizes 10000,100000,1000000] [--compare-src /path/to/old/src] [--compare-up-to N]

For each size a fresh embedded (SQLite) home gets that many logged requests over the
hour before now: micro-batches of 64 one-row requests with 10 float features and a
binary classifier's ``label`` and ``score``, two workers' batches interleaved, 1% of
them answered 500, encoded and stored by the real code (``record.encode``,
``storage.storable``, ``SqlInferenceLogRepository.add_batches``, 200 batches a
transaction). No model is registered, so ``check`` measures and samples the window
and evaluates alert rules but runs no drift test.

Each command then runs in a child process, over the whole window (``--since`` the
first request) and, for ``metrics``, over the last 10 s only (what the window's 60 s
early start cost). A child's peak memory is its own ``VmHWM``, which it prints at exit. With
``--compare-src`` the same commands also run with that ``src`` first on the path
(the code before this change), on the same home (``--compare-up-to``: only for sizes
up to N, as the code before needs memory in proportion). Prints one table, and the growth of
each command's time and peak memory between the two largest sizes, above what the
10 s window costs at the same size (start-up): the exponent of a power law, ~0 flat,
~1 linear.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from modelyard.config import load_settings
from modelyard.monitoring import SqlInferenceLogRepository
from modelyard.monitoring.inference_log.record import Group, encode
from modelyard.monitoring.inference_log.storage import storable
from modelyard.yard import Yard

BATCH = 64
FEATURES = [f"f{i}" for i in range(10)]
DEPLOYMENT = "fraud"
# The child reports its own high-water mark (VmHWM) as its last stderr line: a spawned
# child's ``ru_maxrss`` starts at its parent's, which holds the filled window's batches.
_CHILD = (
    "import atexit, sys; sys.path.insert(0, sys.argv[1]); import modelyard; "
    "assert modelyard.__file__.startswith(sys.argv[1]), modelyard.__file__; "
    "atexit.register(lambda: sys.stderr.write(next(l for l in open('/proc/self/status') "
    "if l.startswith('VmHWM:')))); "
    "from modelyard.cli.main import main; sys.argv = ['modelyard', *sys.argv[2:]]; main()"
)


def fill(home: Path, requests: int, now: float) -> float:
    """Log ``requests`` over the hour before ``now``; returns the first request's time."""
    with Yard(load_settings(home=home, environ={})) as yard:
        return _fill(SqlInferenceLogRepository(yard.db), requests, now)


def _fill(log: SqlInferenceLogRepository, requests: int, now: float) -> float:
    rng = np.random.default_rng(0)
    first = now - 3600.0
    step = 3600.0 / requests
    pending = []
    for number in range(math.ceil(requests / BATCH)):
        count = min(BATCH, requests - number * BATCH)
        at = first + number * BATCH * step
        group = Group(DEPLOYMENT, "fraud", 1)
        features = {name: rng.normal(size=count) for name in FEATURES}
        score = rng.uniform(size=count)
        outputs = {"label": (score >= 0.5).astype(np.int64), "score": score}
        status = np.where(rng.uniform(size=count) < 0.01, 500, 200)
        for i in range(count):
            group.append(
                request_id=f"{number}-{i}",
                ts=at + i * step,
                latency_ms=float(rng.lognormal(1.0, 0.5)),
                rows=1,
                arm="primary",
                status=int(status[i]),
                inputs=features,
                input_rows=(i, i + 1),
                outputs=outputs,
                output_rows=(i, i + 1),
            )
        pending += storable(encode(group, secrets.token_hex(16)))[0]
        if len(pending) >= 200:
            log.add_batches(pending)
            pending = []
    log.add_batches(pending)
    return first


def run(src: Path, home: Path, args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak MiB of ``modelyard *args`` run with ``src`` first."""
    env = {**os.environ, "MODELYARD_HOME": str(home)}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(src), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, error_bytes = child.communicate()
    wall = time.perf_counter() - started
    error = error_bytes.decode()
    if child.returncode:
        raise SystemExit(f"modelyard {' '.join(args)} failed ({child.returncode}):\n{error}")
    peak_kib = int(error.rsplit("VmHWM:", 1)[1].split()[0])
    return wall, peak_kib / 1024


def growth(points: list[tuple[int, float, float]]) -> str:
    """The exponent of a power law between the two largest sizes, of what a command costs
    above ``metrics (last 10 s)`` at the same size (start-up: imports, the database)."""
    (x0, y0, b0), (x1, y1, b1) = points[-2], points[-1]
    above0, above1 = max(y0 - b0, 1e-9), max(y1 - b1, 1e-9)
    exponent = math.log(above1 / above0) / math.log(x1 / x0)
    word = "flat" if exponent < 0.2 else "linear" if exponent > 0.8 else "sublinear"
    return f"{word} (x^{exponent:.2f}: {above0:,.1f} -> {above1:,.1f} above start-up)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--compare-src", type=Path, default=None)
    parser.add_argument(
        "--compare-up-to", type=int, default=None, help="Run --compare-src only up to this size."
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    sources = {"after": Path(__file__).resolve().parents[2] / "src"}
    if args.compare_src is not None:
        sources = {"before": args.compare_src.resolve(), **sources}
    results: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
    print(f"{'requests':>10}  {'code':<6}  {'command':<22}  {'wall s':>8}  {'peak MiB':>9}")
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            now = time.time()
            started = time.perf_counter()
            first = fill(home, size, now)
            filled = time.perf_counter() - started
            print(f"# {size:,} requests logged in {filled:.1f} s", flush=True)
            since = f"{first - 1:.3f}"
            commands = {
                "metrics (whole)": ["monitor", "metrics", DEPLOYMENT, "--since", since],
                "check (whole)": ["monitor", "check", DEPLOYMENT, "--since", since],
                "metrics (last 10 s)": [
                    "monitor", "metrics", DEPLOYMENT, "--since", f"{now - 10:.3f}",
                    "--until", f"{now:.3f}",
                ],
            }  # fmt: skip
            for code, src in sources.items():
                if code == "before" and size > (args.compare_up_to or size):
                    continue
                for name, command in commands.items():
                    wall, peak = run(src, home, command)
                    results.setdefault((code, name), []).append((size, wall, peak))
                    print(
                        f"{size:>10,}  {code:<6}  {name:<22}  {wall:>8.2f}  {peak:>9,.0f}",
                        flush=True,
                    )
    print("\ngrowth between the two largest sizes each code ran:")
    for (code, name), points in results.items():
        base = {size: (w, p) for size, w, p in results[(code, "metrics (last 10 s)")]}
        if len(points) < 2 or name == "metrics (last 10 s)":
            continue
        wall = growth([(s, w, base[s][0]) for s, w, _ in points])
        peak = growth([(s, p, base[s][1]) for s, _, p in points])
        print(f"  {code:<6}  {name:<16}  time {wall}")
        print(f"  {'':<6}  {'':<16}  peak memory {peak} MiB")


if __name__ == "__main__":
    main()
