"""Soak: a real ``modelyard serve`` at half its measured capacity for half an hour.

Usage (from the repository root; the default run takes about 32 minutes)::

    .venv/bin/python benchmarks/serving/bench_soak.py
    .venv/bin/python benchmarks/serving/bench_soak.py --duration 180   # a quick check

What it does: registers the serving benchmark's model (the 100-tree forest of
``bench_serving.py``, converted to ONNX) in a fresh home; starts ``modelyard serve``
on a free 127.0.0.1 port with default settings (2 workers, inference logging on, the
JSON request log on) except for the monitoring pass, every
``MODELYARD_MONITORING__CHECK_INTERVAL_S`` = ``--check-interval`` (30 s, so a run
holds many passes), and two alert rules on the deployment (``drift_share > 0.5``,
which held-out rows should not fire, and ``requests > 0`` with a 60 s cooldown, which
fires about every other pass, so the alert path's writes are soaked too). It then
measures capacity with a closed-loop run of the project's load generator
(``modelyard bench``'s engine, 32 connections), and drives an open-loop constant rate
of ``--fraction`` (50%) of that for ``--duration`` seconds, sending 256 held-out rows
in turn. Capacity is measured with the same generator that drives the soak because
it shares the 2 cores with the server: wrk's higher figure would be out of its reach.

The load runs in back-to-back windows of ``--interval`` seconds (a few ms apart,
while the generator reconnects); after each window it records:

* per window: requests, answered rate, non-2xx (statuses and transport errors), and
  latency p50/p99/max measured from each request's due time (queueing counts);
* per server process (the supervisor, each worker by pid, multiprocessing's resource
  tracker): RSS (``VmRSS``), open files (entries of ``/proc/PID/fd``), CPU seconds;
* on disk: the SQLite database file and its ``-wal``, the inference log's
  write-ahead log directory, and the JSON request log;
* the machine's 1-minute load average (other work on a shared box shows up as
  latency).

During the run the database is only ``stat``-ed, never opened: a reader would hold
back SQLite's checkpoints and change the WAL figure. After the server has stopped it
reads the rows the inference log stored, the drift checks and alerts the monitoring
passes wrote, and counts monitoring failures in the JSON log.

Output in ``--out`` (default ``benchmarks/serving/soak/``): ``soak.json`` (every
sample, the summary, the command) and ``soak.svg`` (one self-contained chart per
group of series over elapsed time); the server's home is deleted unless ``--keep``.

The verdict per series (``trend``), stated once: the first half of the samples is
warm-up (caches, allocator arenas, SQLite pages) and left out; over the second half a
least-squares line gives the slope per hour. A series is **growing** when that slope
is both more than 3 standard errors above zero (it is not noise) and more than the
larger of 10% of the series' second-half mean and its floor per hour (``FLOORS``:
16 MiB of RSS or of WAL, 8 open files, 1 ms of latency, 10 us of CPU per request);
otherwise **bounded**. The database file and the request log are expected to grow
with traffic (every request is kept for ``monitoring.log_ttl_days``); for them the
summary also prints bytes per answered request, which a leak would not hold steady.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as serving  # noqa: E402
from soak_trends import FLOORS, trend  # noqa: E402

from modelyard.loadtest.generator import MAX_DURATION_S, LoadPlan, LoadResult, run_load  # noqa: E402
from modelyard.monitoring.charts import PALETTE, Series, label, line_chart  # noqa: E402

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
ROWS_SENT = 256  # held-out rows sent in turn (varied inputs, no drift by construction)

# -- one sample --------------------------------------------------------------------------


@dataclass
class Sample:
    """What one window measured and what the server looked like at its end."""

    t: float  # seconds since the soak's load began, at the window's end
    window_s: float
    requests: int
    ok: int
    non_2xx: int
    errors: dict[str, int]
    rate: float  # answered requests per second
    p50_ms: float
    p99_ms: float
    max_ms: float
    rss_mib: dict[str, float]  # process label -> MiB
    fds: dict[str, int]
    cpu_s: dict[str, float]  # CPU seconds each process used so far
    disk_mib: dict[str, float]
    load1: float


def process_role(pid: int, session: int) -> str:
    """``supervisor``, ``resource tracker`` or ``worker`` from a server process's cmdline."""
    if pid == session:
        return "supervisor"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "worker"
    return "resource tracker" if b"resource_tracker" in cmdline else "worker"


class ProcessNames:
    """A stable label per server process: workers numbered in the order first seen, so
    a replaced worker shows as a new line (``worker 3``) rather than a jump in one."""

    def __init__(self, session: int) -> None:
        self.session = session
        self.labels: dict[int, str] = {}
        self.workers = 0

    def label(self, pid: int) -> str:
        if pid not in self.labels:
            role = process_role(pid, self.session)
            if role == "worker":
                self.workers += 1
                role = f"worker {self.workers}"
            self.labels[pid] = role
        return self.labels[pid]


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def open_files(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def file_mib(path: Path) -> float:
    try:
        return path.stat().st_size / MIB
    except FileNotFoundError:
        return 0.0


def tree_mib(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # a segment removed meanwhile
                total += (Path(root) / name).stat().st_size
    return total / MIB


def disk_usage(home: Path) -> dict[str, float]:
    """MiB of each thing the server writes under a default home (see ``Settings``)."""
    return {
        "database": file_mib(home / "modelyard.db"),
        "database -wal": file_mib(home / "modelyard.db-wal"),
        "inference log WAL": tree_mib(home / "wal"),
        "request log": tree_mib(home / "logs"),
    }


def take_sample(t: float, result: LoadResult, names: ProcessNames, home: Path) -> Sample:
    cpu = serving.session_cpu_by_process(names.session)
    rss: dict[str, float] = {}
    fds: dict[str, int] = {}
    for pid in sorted(cpu):
        name = names.label(pid)
        size, files = rss_mib(pid), open_files(pid)
        if size is not None and files is not None:  # else it exited meanwhile
            rss[name], fds[name] = size, files
    lat = result.latency
    return Sample(
        t=t,
        window_s=result.duration_s,
        requests=result.requests,
        ok=result.ok,
        non_2xx=result.error_count,
        errors=result.errors,
        rate=result.requests / result.duration_s if result.duration_s else 0.0,
        p50_ms=lat.p50_s * 1e3,
        p99_ms=lat.p99_s * 1e3,
        max_ms=lat.max_s * 1e3,
        rss_mib=rss,
        fds=fds,
        cpu_s={names.label(pid): seconds for pid, seconds in cpu.items()},
        disk_mib=disk_usage(home),
        load1=os.getloadavg()[0],
    )


# -- series, summary, chart --------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One series of the run, with its group (a chart) and its verdict's floor."""

    group: str
    name: str
    values: list[float | None]
    floor_key: str | None  # None: no verdict (rate, non-2xx, load)


def per_process(samples: Sequence[Sample], attr: str) -> dict[str, list[float | None]]:
    names: list[str] = []
    for s in samples:
        names += [n for n in getattr(s, attr) if n not in names]
    return {n: [getattr(s, attr).get(n) for s in samples] for n in names}


def cpu_per_request_us(samples: Sequence[Sample]) -> list[float | None]:
    """The server's CPU per answered request in each window (all its processes)."""
    values: list[float | None] = [None]
    for before, after in zip(samples, samples[1:], strict=False):
        used = sum(after.cpu_s.values()) - sum(
            v for k, v in before.cpu_s.items() if k in after.cpu_s
        )
        values.append(used / after.requests * 1e6 if after.requests else None)
    return values


def lines_of(samples: Sequence[Sample], target_rate: float) -> list[Line]:
    lines = [Line("RSS (MiB)", n, v, "rss") for n, v in per_process(samples, "rss_mib").items()]
    lines += [
        Line("open files", n, [float(x) if x is not None else None for x in v], "fds")
        for n, v in per_process(samples, "fds").items()
    ]
    for name in samples[0].disk_mib:
        grows = name in ("database", "request log")  # with traffic, by design
        key = None if grows else "wal"
        lines.append(Line("disk (MiB)", name, [s.disk_mib[name] for s in samples], key))
    lines += [
        Line("latency (ms)", "p50", [s.p50_ms for s in samples], "latency"),
        Line("latency (ms)", "p99", [s.p99_ms for s in samples], "latency"),
        Line("rate (req/s)", "answered", [s.rate for s in samples], None),
        Line("rate (req/s)", "target", [target_rate for _ in samples], None),
        Line("non-2xx per window", "non-2xx", [float(s.non_2xx) for s in samples], None),
        Line("server CPU per request (us)", "all processes", cpu_per_request_us(samples), "cpu"),
        Line("load average (1 min)", "machine", [s.load1 for s in samples], None),
    ]
    return lines


def summarise(samples: Sequence[Sample], target_rate: float) -> tuple[list[str], dict[str, Any]]:
    """The printed summary and its figures: each series' trend, totals, bytes a request."""
    times = [s.t for s in samples]
    rows = [
        f"{'series':<42} {'start':>10} {'end':>10} {'max':>10} {'slope/h (2nd half)':>20}  verdict",
    ]
    figures: dict[str, Any] = {"trends": {}}
    for line in lines_of(samples, target_rate):
        if line.group == "rate (req/s)" and line.name == "target":
            continue
        floor = FLOORS[line.floor_key] if line.floor_key else 0.0
        found = trend(times, line.values, floor)
        key = f"{line.group}: {line.name}"
        figures["trends"][key] = asdict(found)
        verdict = found.verdict if line.floor_key else "-"
        if line.group == "disk (MiB)" and line.floor_key is None:
            verdict = "grows with traffic"
        slope = (
            "-"
            if math.isnan(found.slope_per_h)
            else f"{found.slope_per_h:+.3g} ± {found.stderr_per_h:.2g}"
        )
        rows.append(
            f"{key:<42} {found.start:>10.4g} {found.end:>10.4g} {found.peak:>10.4g} "
            f"{slope:>20}  {verdict}"
        )
    answered = sum(s.ok for s in samples)
    requests = sum(s.requests for s in samples)
    errors: dict[str, int] = {}
    for s in samples:
        for k, v in s.errors.items():
            errors[k] = errors.get(k, 0) + v
    elapsed = samples[-1].t if samples else 0.0
    figures.update(
        requests=requests, answered_2xx=answered, errors=errors, elapsed_s=elapsed,
        mean_rate=requests / elapsed if elapsed else 0.0, target_rate=target_rate,
    )  # fmt: skip
    rows.append(
        f"requests {requests:,} in {elapsed:.0f} s ({figures['mean_rate']:,.0f}/s against "
        f"{target_rate:,.0f}/s), 2xx {answered:,}, non-2xx {requests - answered:,} {errors}"
    )
    half = len(samples) // 2
    late = samples[half:]
    late_requests = sum(s.requests for s in late[1:])
    for name in ("database", "request log"):
        grown = (late[-1].disk_mib[name] - late[0].disk_mib[name]) * MIB
        per = grown / late_requests if late_requests else math.nan
        figures[f"{name} bytes per request"] = per
        rows.append(f"{name}: {per:,.0f} bytes per request over the second half")
    return rows, figures


def elapsed_label(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def chart(samples: Sequence[Sample], target_rate: float, title: str) -> str:
    """One standalone SVG: a chart per group of series, two columns."""
    times = [s.t for s in samples]
    groups: dict[str, list[Line]] = {}
    for line in lines_of(samples, target_rate):
        groups.setdefault(line.group, []).append(line)
    width, cell_h, top = 760, 172, 30
    cells = []
    for i, (group, members) in enumerate(groups.items()):
        x, y = 20 + (i % 2) * 370, top + (i // 2) * cell_h
        series = [
            Series(m.name, times, m.values, PALETTE[j % len(PALETTE)])
            for j, m in enumerate(members)
        ]
        body = line_chart(series, time_label=elapsed_label)
        cells.append(
            f'<g transform="translate({x},{y})">{label(0, 12, group)}'
            f'<g transform="translate(0,16)">{body}</g></g>'
        )
    height = top + math.ceil(len(groups) / 2) * cell_h + 10
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><style>text{{font:10px sans-serif;fill:#555}}'
        f"</style>{label(20, 18, title)}{''.join(cells)}</svg>\n"
    )


# -- the run -----------------------------------------------------------------------------


def modelyard_command(port: int) -> list[str]:
    return [
        str(Path(sys.executable).parent / "modelyard"), "serve", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "2", "--model", "fraud@champion",
    ]  # fmt: skip


def add_alert_rules(home: Path) -> None:
    """The two rules of the docstring, through the CLI as a user would add them."""
    env = serving.base_env() | {"MODELYARD_HOME": str(home)}
    cli = str(Path(sys.executable).parent / "modelyard")
    for name, metric, threshold, cooldown in (
        ("soak-drift", "drift_share", "0.5", "1h"),
        ("soak-traffic", "requests", "0", "60s"),
    ):
        subprocess.run(
            [cli, "monitor", "alerts", "add", "fraud", name, "--metric", metric,
             "--threshold", threshold, "--cooldown", cooldown],
            check=True, env=env, capture_output=True,
        )  # fmt: skip


def bodies(prep: serving.Prepared) -> tuple[tuple[str, bytes], ...]:
    path = "/v2/models/fraud/infer"
    return tuple(
        (
            path,
            orjson.dumps(
                {
                    "inputs": [
                        {
                            "name": "input",
                            "shape": [1, 30],
                            "datatype": "FP32",
                            "data": row.tolist(),
                        }
                    ]
                }
            ),
        )  # fmt: skip
        for row in prep.held_out[:ROWS_SENT]
    )


def after_stop(home: Path) -> dict[str, int]:
    """What the stopped server left: rows logged, drift checks, alerts, monitor failures."""
    found: dict[str, int] = {}
    database = f"file:{home / 'modelyard.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(database, uri=True)) as db:
        queries = {
            "logged_requests": "SELECT coalesce(sum(requests), 0) FROM inference_batches",
            "drift_checks": "SELECT count(*) FROM drift_results",
            "alerts": "SELECT count(*) FROM events WHERE kind = 'alert'",
        }
        for name, sql in queries.items():
            found[name] = int(db.execute(sql).fetchone()[0])
    failures = 0
    for path in (home / "logs").glob("*.jsonl*"):
        with path.open("rb") as log:
            for text in log:
                if b'"monitor_failed"' in text or b'"monitor_cycle_failed"' in text:
                    failures += 1
    found["monitor_failures_logged"] = failures
    return found


@dataclass
class Record:
    command: str
    commit: str
    started_at: float
    cpus: int
    settings: dict[str, str]
    capacity_rps: float
    capacity_p99_ms: float
    rate: float
    samples: list[Sample] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    after_stop: dict[str, int] = field(default_factory=dict)


def git_commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(serving.ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() or "unknown"


def soak(args: argparse.Namespace, prep: serving.Prepared, out: Path, record: Record) -> None:
    port = serving.free_port()
    spec = serving.ServerSpec(
        name="modelyard-soak",
        description="modelyard serve, 2 workers, default settings",
        command=modelyard_command(port),
        ready_path="/v2/health/ready",
        infer_path="/v2/models/fraud/infer",
        body=prep.oip_body,
        probabilities=serving.probabilities_oip,
        env={"MODELYARD_HOME": str(prep.home), **record.settings},
        cwd=out,
    )
    variants = bodies(prep)
    with serving.running(spec, port, out) as (url, session):
        serving.check_answer(spec, url, prep.expected)
        capacity = run_load(
            LoadPlan(url=url, path=spec.infer_path, body=b"", variants=variants,
                     connections=args.connections, duration_s=args.capacity_s, warmup_s=3.0)
        )  # fmt: skip
        record.capacity_rps = capacity.throughput
        record.capacity_p99_ms = capacity.latency.p99_s * 1e3
        record.rate = args.rate or round(capacity.throughput * args.fraction, -1)
        # Once traffic is logged: a model served without a deployment is known by it.
        add_alert_rules(prep.home)
        print(
            f"capacity (closed loop, {args.connections} connections): "
            f"{capacity.throughput:,.0f} req/s, p99 {record.capacity_p99_ms:.2f} ms; "
            f"soak at {record.rate:,.0f} req/s for {args.duration:g} s",
            flush=True,
        )
        names = ProcessNames(session)
        began = time.monotonic()
        while (left := args.duration - (time.monotonic() - began)) > 0.5:
            result = run_load(
                LoadPlan(url=url, path=spec.infer_path, body=b"", variants=variants,
                         connections=args.connections, duration_s=min(args.interval, left),
                         rate=record.rate)
            )  # fmt: skip
            sample = take_sample(time.monotonic() - began, result, names, prep.home)
            record.samples.append(sample)
            workers = sum(v for k, v in sample.rss_mib.items() if k != "supervisor")
            print(
                f"{sample.t:7.0f} s  {sample.rate:7,.0f}/s  p50 {sample.p50_ms:6.2f}  "
                f"p99 {sample.p99_ms:7.2f} ms  non-2xx {sample.non_2xx}  "
                f"RSS sup {sample.rss_mib.get('supervisor', 0):.0f} + workers {workers:.0f} MiB"
                f"  fds {sum(sample.fds.values())}  db {sample.disk_mib['database']:.1f}"
                f" + wal {sample.disk_mib['database -wal']:.1f} MiB  load {sample.load1:.1f}",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=1800.0, help="soak seconds")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds per sample")
    parser.add_argument("--fraction", type=float, default=0.5, help="of measured capacity")
    parser.add_argument("--rate", type=float, default=None, help="req/s instead of a fraction")
    parser.add_argument("--capacity-s", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--check-interval", type=float, default=30.0, help="monitoring pass s")
    parser.add_argument("--out", type=Path, default=HERE / "soak")
    parser.add_argument("--keep", action="store_true", help="keep the server's home")
    args = parser.parse_args(argv)
    if not 1 <= args.interval <= MAX_DURATION_S:
        parser.error(f"--interval must be between 1 and {MAX_DURATION_S:g} s")
    if args.duration < 6 * args.interval:
        parser.error("--duration must hold at least 6 intervals (3 in the half judged)")
    if not 0 < args.fraction <= 1:
        parser.error("--fraction must be more than 0 and at most 1")

    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=args.out))
    (scratch / "logs").mkdir()
    command = " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])
    print(f"command: {command}\nscratch: {scratch}\nbefore: {serving.uptime()}", flush=True)
    record = Record(
        command=command, commit=git_commit(), started_at=time.time(), cpus=os.cpu_count() or 1,
        settings={"MODELYARD_MONITORING__CHECK_INTERVAL_S": f"{args.check_interval:g}"},
        capacity_rps=math.nan, capacity_p99_ms=math.nan, rate=math.nan,
    )  # fmt: skip
    try:
        prep = serving.prepare(scratch)
        soak(args, prep, scratch, record)  # the server has stopped when this returns
        record.after_stop = after_stop(prep.home)
        record.summary, record.figures = summarise(record.samples, record.rate)
        write_outputs(args.out, record)
        report(record)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def write_outputs(out: Path, record: Record) -> None:
    (out / "soak.json").write_text(json.dumps(asdict(record), indent=1) + "\n")
    title = (
        f"modelyard serve soak: {record.rate:,.0f} req/s ({record.capacity_rps:,.0f} measured), "
        f"{record.samples[-1].t / 60:.1f} min, {record.cpus} CPUs, commit {record.commit}"
    )
    (out / "soak.svg").write_text(chart(record.samples, record.rate, title))
    print(f"\nwrote {out / 'soak.json'} and {out / 'soak.svg'}")


def report(record: Record) -> None:
    print(f"after: {serving.uptime()}\n")
    print("\n".join(record.summary))
    stopped = record.after_stop
    answered = record.figures["answered_2xx"]
    print(
        f"after stop: {stopped['logged_requests']:,} requests in the inference log "
        f"(soak 2xx {answered:,}, plus the capacity run's), {stopped['drift_checks']} drift "
        f"checks, {stopped['alerts']} alerts, {stopped['monitor_failures_logged']} monitoring "
        f"failures in the JSON log"
    )
    print(
        "logged >= answered: "
        + ("yes" if stopped["logged_requests"] >= answered else "NO (acknowledged rows lost)")
    )


if __name__ == "__main__":
    sys.exit(main())
