"""What supervising a single worker costs: start-up time and memory of ``modelyard serve``
with ``MODELYARD_SERVING__WORKERS=1``, this code against another copy of the code.

Run from the repository root:

    .venv/bin/python benchmarks/serving/bench_supervised_startup.py \\
        --compare-src /path/to/old/src [--rounds 5]

What it measures: the forest of ``bench_serving`` (100 trees, ONNX) registered in a
fresh home; ``python -m modelyard.serving --workers 1`` started ``--rounds`` times for
each copy of the code, alternating (a burst of load elsewhere on this shared machine
then hits both alike): the seconds from the process start to the first 200 from
``/v2/health/ready``, and once ready the memory of the whole process tree (the server
and every descendant: the supervisor, its worker and multiprocessing's helper), as the
sum of each process's PSS (proportional set size, from ``/proc/PID/smaps_rollup``:
shared pages are split between the processes that share them, so the sum is what the
tree really holds) and the sum of RSS. It prints the median of each, and the change.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as bench  # noqa: E402


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def memory_kib(pids: list[int], field: str) -> int:
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(f"{field}:"):
                total += int(line.split()[1])
    return total


def one_start(home: Path, source: Path | None, out: Path) -> tuple[float, int, int, int]:
    """Seconds to ready, PSS and RSS (KiB) of the tree, and its process count."""
    port = bench.free_port()
    env = bench.base_env()
    env.update(
        {
            "MODELYARD_HOME": str(home),
            "MODELYARD_SERVING__PORT": str(port),
            "MODELYARD_SERVING__WORKERS": "1",
            "MODELYARD_SERVING__LOG_PATH": str(out / f"serve-{port}.jsonl"),
        }
    )
    if source is not None:
        env["PYTHONPATH"] = str(source)
    command = [sys.executable, "-m", "modelyard.serving", "--model", "fraud@champion"]
    started = time.perf_counter()
    with (out / f"serve-{port}.out").open("wb") as sink:
        process = subprocess.Popen(
            command, env=env, stdout=sink, stderr=sink, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}/v2/health/ready"
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited; see {out}/serve-{port}.out")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        ready_s = time.perf_counter() - started
        time.sleep(1.0)  # the runner's threads and the first monitoring pass settle
        tree = descendants(process.pid)
        return ready_s, memory_kib(tree, "Pss"), memory_kib(tree, "Rss"), len(tree)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare-src", type=Path, required=True, help="the other copy's src")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"uptime: {bench.uptime()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        prep = bench.prepare(out)
        figures: dict[str, list[tuple[float, int, int, int]]] = {"compared": [], "this": []}
        for _ in range(args.rounds):
            figures["compared"].append(one_start(prep.home, args.compare_src.resolve(), out))
            figures["this"].append(one_start(prep.home, None, out))
    print("code       ready_s(median)  tree_PSS_MiB  tree_RSS_MiB  processes")
    medians = {}
    for name, rows in figures.items():
        ready = statistics.median(r[0] for r in rows)
        pss = statistics.median(r[1] for r in rows) / 1024
        rss = statistics.median(r[2] for r in rows) / 1024
        medians[name] = (ready, pss, rss)
        print(f"{name:<9}  {ready:>15.2f}  {pss:>12.1f}  {rss:>12.1f}  {rows[0][3]:>9}")
    (old_ready, old_pss, old_rss), (new_ready, new_pss, new_rss) = medians.values()
    print(
        f"change: ready {new_ready - old_ready:+.2f} s, PSS {new_pss - old_pss:+.1f} MiB, "
        f"RSS {new_rss - old_rss:+.1f} MiB"
    )


if __name__ == "__main__":
    main()
