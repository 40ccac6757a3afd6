"""Listings and searches as the data grows (issue 19, item 9): wall time and peak memory.

Measures, at each size, one CLI command run in-process (``modelyard.cli.main.main``, its
output discarded) in a fresh subprocess per measurement:

* ``runs list --limit 20``, without and with a filter (``metrics.auc > 0.9``, one run in
  ten), over 1k / 10k / 100k runs;
* ``versions NAME`` (its first page; before paging: every version) over 1k / 10k / 100k
  versions of one model;
* ``logs --request-id ID`` (a request in the middle of the log) over 10k / 100k / 1M
  logged requests of ~260 bytes. After: the log as the server leaves it (rotated at
  ``serving.log_rotate_bytes``, its segments indexed by the retention sweep, whose
  cost, ``index build``, is printed apart); before: one unrotated file.

Each figure is the median of ``--repeat`` subprocesses (one, for a call over 10 s): the
command's wall time (after ``models list``, or a lookup of another id for ``logs``, opened
the database and imported the command line) and the process's peak RSS growth over
what it held before.
``--compare-src`` runs the same measurements with another checkout's ``src`` (the
code before this change) on a copy of the same data; the growth column fits
time ~ size^k over the sizes (k ~ 0: flat, ~ 1: linear).

    .venv/bin/python benchmarks/scale/bench_listings.py --compare-src /work/wt-old-lp/src
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import orjson

from modelyard.serving.telemetry.logfiles import segments

SRC = Path(__file__).resolve().parents[2] / "src"

# Runs inside the measured process: time the second call, peak RSS over the baseline.
DRIVER = r"""
import io, json, os, sys, time, contextlib
from modelyard.cli.main import main
argv = json.loads(sys.argv[1])
def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
def call():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main(argv)
        except SystemExit as e:
            if e.code not in (0, None):
                raise RuntimeError(out.getvalue()[-2000:])
    return out.getvalue()
before = rss_kb()
measured, argv = argv, json.loads(sys.argv[2])
call()  # opens the database, imports the command line's modules
argv = measured
start = time.perf_counter()
text = call()
wall = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child would report its
# parent's peak (this script's, after building 100k rows).
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
print(json.dumps({"wall_s": wall, "peak_growth_mb": (peak - before) / 1024, "out": len(text)}))
"""

GENERATE_LOG = r"""
import sys, time
from pathlib import Path
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.serving.telemetry.logindex import maintain
active, count, rotate = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
log = JsonLog(active, worker="w0", rotate_bytes=rotate)
t0 = 1_800_000_000.0
for i in range(count):
    log.emit("info", "request", {"request_id": f"{i:032x}", "method": "POST",
             "path": "/v2/models/fraud/infer", "status": 200, "model": "fraud",
             "version": "3", "rows": 1, "duration_ms": 0.41}, t0 + i / 1000)
log.close()
start = time.perf_counter()
maintain(active, t0, ttl_s=0, max_bytes=rotate, max_age_s=0)
print(time.perf_counter() - start)
"""


def measure(
    src: Path, home: Path, argv: list[str], repeat: int, warm: list[str] | None = None
) -> tuple[float, float]:
    """Median wall time and peak RSS growth of ``argv``, after ``warm`` in the same process."""
    warm = ["models", "list"] if warm is None else warm
    walls, peaks = [], []
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env.update({"PYTHONPATH": str(src), "MODELYARD_HOME": str(home)})
    for _ in range(repeat):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                DRIVER,
                orjson.dumps(argv).decode(),
                orjson.dumps(warm).decode(),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        result = orjson.loads(done.stdout.strip().splitlines()[-1])
        walls.append(result["wall_s"])
        peaks.append(result["peak_growth_mb"])
        if result["wall_s"] > 10:  # one call of a slow one is figure enough
            break
    return statistics.median(walls), statistics.median(peaks)


def init_home(src: Path, home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env.update({"PYTHONPATH": str(src), "MODELYARD_HOME": str(home)})
    subprocess.run(
        [sys.executable, "-c", "from modelyard.cli.main import main; main(['init'])"],
        env=env,
        check=True,
        capture_output=True,
    )


SIGNATURE = orjson.dumps(
    {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 3]}],
        "outputs": [],
        "layout": "tensor",
    }
).decode()


def fill(db: Path, size: int) -> None:
    """``size`` runs (one in ten with auc > 0.9) and ``size`` versions of model ``big``."""
    conn = sqlite3.connect(db)
    t0 = 1_800_000_000.0
    run_rows = [
        (uuid.UUID(int=i).hex, f"run-{i}", "default", "FINISHED", t0 + i, t0 + i + 1, "{}")
        for i in range(size)
    ]
    conn.executemany(
        "INSERT INTO runs (id, name, experiment, status, start_time, end_time, environment) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        run_rows,
    )
    conn.executemany(
        "INSERT INTO run_latest_metrics (run_id, key, value, step, timestamp) "
        "VALUES (?, 'auc', ?, 0, ?)",
        [(r[0], 0.95 if i % 10 == 0 else 0.5, t0) for i, r in enumerate(run_rows)],
    )
    conn.executemany(
        "INSERT INTO run_params (run_id, key, value) VALUES (?, 'model', 'rf')",
        [(r[0],) for r in run_rows],
    )
    conn.execute(
        "INSERT INTO registered_models (name, description, created_at, updated_at) "
        "VALUES ('big', '', ?, ?)",
        (t0, t0),
    )
    conn.executemany(
        "INSERT INTO model_versions (model_id, version, flavour, artifact_digest, "
        "artifact_size, signature, metrics, lineage, description, created_at) "
        "VALUES (1, ?, 'onnx', ?, 100, ?, '{\"auc\": 0.9}', '{}', '', ?)",
        [(v, f"{v:064x}", SIGNATURE, t0 + v) for v in range(1, size + 1)],
    )
    conn.commit()
    conn.close()


def growth(sizes: list[int], values: list[float]) -> str:
    """The exponent k of value ~ size^k between the smallest and largest size."""
    if len(sizes) < 2 or min(values) <= 0:
        return "-"
    k = math.log(values[-1] / values[0]) / math.log(sizes[-1] / sizes[0])
    word = "flat" if k < 0.15 else "sub-linear" if k < 0.75 else "linear"
    return f"k={k:.2f} ({word})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--log-sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare-src", type=Path, default=None)
    parser.add_argument("--rotate-bytes", type=int, default=64 * 1024 * 1024)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    log_sizes = [int(s) for s in args.log_sizes.split(",") if s]
    variants = [("after", SRC)] + ([("before", args.compare_src)] if args.compare_src else [])
    base_src = args.compare_src or SRC  # the older schema, so both can open the data
    rows: list[tuple[str, str, list[int], list[tuple[float, float]]]] = []
    work = Path(tempfile.mkdtemp(prefix="bench-listings-"))
    try:
        listing = {
            "runs list --limit 20": ["runs", "list", "--limit", "20"],
            "runs list --limit 20 --filter": [
                "runs",
                "list",
                "--limit",
                "20",
                "--filter",
                "metrics.auc > 0.9",
            ],
            "versions big (first page)": ["versions", "big"],
        }
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for size in sizes:
            base = work / f"home-{size}"
            init_home(base_src, base)
            fill(base / "modelyard.db", size)
            for variant, src in variants:
                home = work / f"home-{size}-{variant}"
                shutil.copytree(base, home)
                init_home(src, home)  # migrates the copy now, not in a measured call
                for name, argv in listing.items():
                    figure = measure(src, home, argv, args.repeat)
                    results.setdefault((name, variant), []).append(figure)
                    print(f"{name:32} {variant:6} {size:>9,}: {figure[0] * 1000:9.2f} ms "
                          f"{figure[1]:8.1f} MB", flush=True)  # fmt: skip
                shutil.rmtree(home)
            shutil.rmtree(base)
        for (name, variant), figures in results.items():
            rows.append((name, variant, sizes, figures))
        index_builds = []
        for count in log_sizes:
            logdir = work / f"log-{count}"
            active = logdir / "serving.jsonl"
            generated = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    GENERATE_LOG,
                    str(active),
                    str(count),
                    str(args.rotate_bytes),
                ],  # fmt: skip
                env={**os.environ, "PYTHONPATH": str(SRC)},
                capture_output=True,
                text=True,
                check=True,
            )
            index_builds.append(float(generated.stdout.strip()))
            target = f"{count // 2:032x}"
            for variant, src in variants:
                if variant == "before":  # one file, as the server wrote it before rotation
                    single = work / f"log-{count}-single" / "serving.jsonl"
                    single.parent.mkdir()
                    with single.open("wb") as out:
                        for segment in segments(active):
                            with segment.path.open("rb") as part:
                                shutil.copyfileobj(part, out)
                        with active.open("rb") as part:
                            shutil.copyfileobj(part, out)
                    path = single
                else:
                    path = active
                argv = ["logs", "--file", str(path), "--request-id", target]
                warm = ["logs", "--file", str(path), "--request-id", "warm-up"]
                figure = measure(src, work, argv, args.repeat, warm)
                results.setdefault(("logs --request-id", variant), []).append(figure)
                print(f"{'logs --request-id':32} {variant:6} {count:>9,}: "
                      f"{figure[0] * 1000:9.2f} ms {figure[1]:8.1f} MB", flush=True)  # fmt: skip
                if variant == "before":
                    shutil.rmtree(path.parent)
            shutil.rmtree(logdir)
        for variant, _ in variants:
            rows.append(
                ("logs --request-id", variant, log_sizes, results[("logs --request-id", variant)])
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print("| command | code | sizes | wall ms | peak RSS growth MB | growth (time) |")
    print("|---|---|---|---|---|---|")
    for name, variant, at, figures in rows:
        walls = " / ".join(f"{w * 1000:.1f}" for w, _ in figures)
        peaks = " / ".join(f"{p:.1f}" for _, p in figures)
        size_text = " / ".join(f"{s:,}" for s in at)
        trend = growth(at, [w for w, _ in figures])
        print(f"| {name} | {variant} | {size_text} | {walls} | {peaks} | {trend} |")
    builds = " / ".join(f"{b:.2f}" for b in index_builds)
    print(f"\nindex build (the sweep, once per rotated segment), s: {builds} "
          f"for {' / '.join(f'{c:,}' for c in log_sizes)} requests")  # fmt: skip


if __name__ == "__main__":
    main()
