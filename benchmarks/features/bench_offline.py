"""Training sets, modelyard side by side with Feast 0.67 and a hand-written DuckDB floor
(issue 15): 1M label rows x 3 feature views of 10M rows over 100k entities.

    .venv/bin/python benchmarks/features/bench_offline.py --setup      # once: Feast's venv
    .venv/bin/python benchmarks/features/bench_offline.py --scale 0.01 # a quick run
    .venv/bin/python benchmarks/features/bench_offline.py              # the issue's size

The data are generated (numpy, seed 15) into ``benchmarks/features/out/data-<scale>/``:
per view a Parquet file of ``card_id``, ``event_timestamp`` (30 days),
``created`` (the event time plus 0-60 s: when the row was written) and three
features; the labels are ``card_id``, ``event_timestamp``, ``label_id``. Each
contender runs once, in a fresh process of its own (``offline_side.py``), on the
same files and the same pandas frame of labels, and times the one call that returns
the training set as pandas:

* modelyard: ``get_training_set`` (ties by created time, leakage guard on);
* floor: a DuckDB query written by hand, an ``ASOF LEFT JOIN`` per view with the
  TTL as a ``CASE``, rows in label order (no tie-breaking, no guard); the same
  DuckDB memory limit and threads as modelyard;
* feast-file, feast-duckdb: Feast's local offline stores (``FileSource`` with
  ``created_timestamp_column``), in the throwaway venv ``benchmarks/.venvs/feast``.

Peak memory is the process's peak RSS (``ru_maxrss``): the labels frame, the result
and the library, not only the join. The results are compared afterwards: row counts
(Feast's file store has been seen to drop rows), and values against modelyard's by
``label_id``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OUT = HERE / "out"
FEAST_VENV = REPO / "benchmarks" / ".venvs" / "feast"
FEAST_PACKAGES = ["feast[duckdb]==0.67.*", "duckdb", "pyarrow"]
SEED = 15
VIEWS = 3
DAYS = 30
START = datetime(2024, 1, 1, tzinfo=UTC)
CONTENDERS = ["modelyard", "floor", "floor-chained", "feast-duckdb", "feast-file"]


def sizes(scale: float) -> tuple[int, int, int]:
    """Labels, rows per view, entities at ``scale`` (1.0: 1M, 10M, 100k)."""
    return int(1_000_000 * scale), int(10_000_000 * scale), max(int(100_000 * scale), 10)


def generate(folder: Path, scale: float) -> None:
    """The benchmark's data, deterministic for a scale; skipped when already there."""
    if (folder / "labels.parquet").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    labels, rows, entities = sizes(scale)
    rng = np.random.default_rng(SEED)
    start_us = int(START.timestamp() * 1_000_000)
    span_us = DAYS * 86_400 * 1_000_000
    for view in range(VIEWS):
        event = start_us + rng.integers(0, span_us, rows)
        table = pa.table(
            {
                "card_id": rng.integers(0, entities, rows),
                "event_timestamp": pa.array(event, pa.timestamp("us", tz="UTC")),
                "created": pa.array(
                    event + rng.integers(0, 60_000_000, rows), pa.timestamp("us", tz="UTC")
                ),
                f"f{view}_a": rng.normal(100.0, 30.0, rows).round(2),
                f"f{view}_b": rng.integers(0, 50, rows),
                f"f{view}_c": rng.random(rows),
            }
        )
        pq.write_table(table, folder / f"v{view}.parquet", row_group_size=1_000_000)
    times = start_us + 86_400 * 1_000_000 + rng.integers(0, span_us - 86_400 * 1_000_000, labels)
    pq.write_table(
        pa.table(
            {
                "card_id": rng.integers(0, entities, labels),
                "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
                "label_id": np.arange(labels, dtype=np.int64),
            }
        ),
        folder / "labels.parquet",
    )


def setup_feast() -> None:
    if (FEAST_VENV / "bin" / "python").exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(FEAST_VENV)], check=True)
    subprocess.run([str(FEAST_VENV / "bin" / "pip"), "install", *FEAST_PACKAGES], check=True)


def python_for(contender: str) -> str:
    return str(FEAST_VENV / "bin" / "python") if contender.startswith("feast") else sys.executable


def run(contender: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = data / f"result-{contender}.parquet"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    if contender.startswith("feast"):
        env.pop("PYTHONPATH")
    command = [
        python_for(contender), str(HERE / "offline_side.py"), contender, str(data), str(out),
        "--memory-limit", args.memory_limit, "--threads", str(args.threads),
    ]  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True, env=env)
        killed = watch(child, args.rss_cap_gib, args.timeout)
        stdout.seek(0)
        stderr.seek(0)
        out_text, err_text = stdout.read(), stderr.read()
    if killed or child.returncode != 0:
        tail = killed or "\n".join(err_text.strip().splitlines()[-15:])
        return {"contender": contender, "error": tail, "process_s": time.perf_counter() - started}
    done_lines = out_text.strip().splitlines()
    result: dict[str, Any] = json.loads(done_lines[-1])
    result["process_s"] = time.perf_counter() - started
    result["file"] = str(out)
    return result


def watch(child: subprocess.Popen[str], cap_gib: float, timeout: float) -> str | None:
    """Wait for ``child``; kill it past ``cap_gib`` of RSS (the machine is shared: a
    contender that would take all its memory fails alone) or ``timeout`` seconds."""
    started = time.monotonic()
    while child.poll() is None:
        rss_gib = _rss_kib(child.pid) / 2**20
        if rss_gib > cap_gib:
            child.kill()
            child.wait()
            seconds = time.monotonic() - started
            return f"killed: RSS {rss_gib:.1f} GiB > {cap_gib:g} GiB after {seconds:.0f} s"
        if time.monotonic() - started > timeout:
            child.kill()
            child.wait()
            return f"killed: over {timeout:.0f} s"
        time.sleep(0.25)
    return None


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def compare(results: dict[str, dict[str, Any]], labels: int) -> dict[str, str]:
    """Each contender's rows and values against modelyard's, matched by label_id."""
    ours = results.get("modelyard")
    if not ours or "file" not in ours:
        return {}
    mine = pd.read_parquet(ours["file"]).set_index("label_id").sort_index()
    columns = [c for c in mine.columns if c.startswith("f")]
    notes = {}
    for name, result in results.items():
        if "file" not in result:
            continue
        theirs = pd.read_parquet(result["file"])
        rows = len(theirs)
        theirs = theirs.drop_duplicates("label_id").set_index("label_id").sort_index()
        common = mine.index.intersection(theirs.index)
        a = mine.loc[common, columns].astype("float64").to_numpy()
        b = theirs.loc[common, columns].astype("float64").to_numpy()
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        differing = int((~same.all(axis=1)).sum())
        nulls = int(np.isnan(b[:, 0]).sum())
        notes[name] = (
            f"{rows:,} rows of {labels:,}"
            + ("" if rows == labels else f" ({labels - rows:+,} missing)")
            + f"; {differing:,} label rows differ from modelyard's; {nulls:,} null"
        )
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 1M labels, 3 x 10M rows")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB's, for modelyard and floor")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600.0, help="per contender, seconds")
    parser.add_argument(
        "--rss-cap-gib", type=float, default=12.0, help="kill a contender past this RSS"
    )
    parser.add_argument("--setup", action="store_true", help="create Feast's throwaway venv")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    contenders = args.contenders.split(",")
    if args.setup:
        setup_feast()
    if any(c.startswith("feast") for c in contenders) and not (FEAST_VENV / "bin").exists():
        parser.error(f"no Feast venv at {FEAST_VENV}; run once with --setup")
    data = OUT / f"data-{args.scale:g}"
    labels, rows, entities = sizes(args.scale)
    generated = time.perf_counter()
    generate(data, args.scale)
    print(
        f"data: {labels:,} labels, {VIEWS} views x {rows:,} rows, {entities:,} entities "
        f"({time.perf_counter() - generated:.1f} s) in {data}",
        flush=True,
    )
    load = os.getloadavg()[0]
    results: dict[str, dict[str, Any]] = {}
    for contender in contenders:
        results[contender] = run(contender, data, args)
        r = results[contender]
        shown = r.get("error") or f"{r['wall_s']:.2f} s, peak {r['peak_rss_mib']:,.0f} MiB"
        print(f"{contender}: {shown}", flush=True)
    notes = compare(results, labels)
    print_table(results, notes, args, load)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"scale": args.scale, "results": results, "notes": notes, "load": load}
        args.json.write_text(json.dumps(payload, indent=2))


def print_table(
    results: dict[str, dict[str, Any]], notes: dict[str, str], args: argparse.Namespace, load: float
) -> None:
    ours = results.get("modelyard", {})
    print()
    print(
        "| contender | wall | CPU | peak RSS | RSS before the call | vs modelyard (wall) "
        "| rows, values |\n|---|---|---|---|---|---|---|"
    )
    for name, r in results.items():
        if "error" in r:
            print(f"| {name} | failed | | | | | {r['error'].splitlines()[-1]} |")
            continue
        ratio = r["wall_s"] / ours["wall_s"] if "wall_s" in ours else float("nan")
        print(
            f"| {name} | {r['wall_s']:.2f} s | {r['cpu_s']:.2f} s | {r['peak_rss_mib']:,.0f} MiB "
            f"| {r['rss_before_mib']:,.0f} MiB | {ratio:.2f}x | {notes.get(name, '')} |"
        )
    print()
    if "wall_s" in ours:
        floor = results.get("floor", {})
        feast = results.get("feast-file", {})
        if "wall_s" in floor:
            ratio = ours["wall_s"] / floor["wall_s"]
            verdict = "PASS" if ratio <= 1.5 else "FAIL"
            print(f"modelyard / floor: {ratio:.2f}x (target <= 1.5x): {verdict}")
        if "wall_s" in feast:
            speedup = feast["wall_s"] / ours["wall_s"]
            verdict = "PASS" if speedup >= 10 else "FAIL"
            print(f"Feast file store / modelyard: {speedup:.1f}x (target >= 10x): {verdict}")
    print(
        f"scale {args.scale:g}, DuckDB memory_limit {args.memory_limit}, threads {args.threads}, "
        f"load average before {load:.2f}, after {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
