"""Instructions per request, counted by valgrind: a figure this noisy machine cannot move.

Run from the repository root (needs ``valgrind`` and a C compiler:
``apt-get install valgrind gcc``):

    .venv/bin/python benchmarks/serving/bench_instructions.py

Wall-clock and CPU figures on this shared host swing by 20-50% between runs of
the same code (BENCHMARKING.md), which hides any single change worth less than
that. Counting instructions does not swing: the same code counts the same to
within a fraction of a percent. A count is not a time (cache misses, the kernel's
share and the other processes are not in it, and this host runs the same
instructions up to 2x slower under load), so it serves to compare two versions
of the request path, and ``bench_serving.py`` stays the measure of throughput.

In-process, so that only the server's own work is counted: the app of
``modelyard serve`` (built by the worker's composition root, ``process.worker.worker_app``) and
its HTTP protocol, ``connection.HttpConnection``, fed by fake transports: each of
8 connections (about the batch size the real server sees with wrk's 32
connections over 2 workers) sends its next request as soon as its answer is
written; any answer but a 200 fails the run, since a fast error would count
as a cheap request. Counting runs only while the requests are answered: the child switches
callgrind on and off itself through valgrind's client requests (a few lines of C,
compiled here, because the macros are inline assembly that Python cannot emit;
``callgrind_control`` from outside takes effect only when callgrind next looks,
which made counts differ by 10% between runs). Each case runs with 1,000 and 3,000
requests, and the difference over 2,000 requests is what one request costs, so
that setting up the connections and the first requests' one-off work cancel
out. Background tasks (registry polling, heartbeat) are stopped: they run per
second, not per request.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as bench  # noqa: E402

CONNECTIONS = 8
SWITCH_C = """
#include <valgrind/callgrind.h>
void counting_on(void) { CALLGRIND_START_INSTRUMENTATION; }
void counting_off(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""
SMALL, LARGE = 1_000, 3_000
# name -> (request, inference logging on, what it is)
CASES = {
    "live": ("live", False, "GET /v2/health/live"),
    "infer": ("infer", False, "infer, inference logging off"),
    "infer-logged": ("infer", True, "infer, inference logging on"),
}


# -- the child: the app under valgrind -------------------------------------------------


class _Client:
    """A fake transport: checks each answer's status, and sends the next request."""

    def __init__(self, loop: asyncio.AbstractEventLoop, request: bytes, run: _Run) -> None:
        self._loop = loop
        self._request = request
        self._run = run
        self.connection: Any = None

    def write(self, data: bytes) -> None:
        if not data.startswith(b"HTTP/1.1 200 "):
            self._run.refused = data
        self._run.answered += 1
        if self._run.answered < self._run.total:
            self._loop.call_soon(self.connection.data_received, self._request)
        elif self._run.answered == self._run.total:
            self._run.done.set_result(None)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Run:
    def __init__(self, total: int, done: asyncio.Future[None]) -> None:
        self.total = total
        self.answered = 0
        self.done = done
        self.refused = b""  # the last answer that was not a 200


def _request(kind: str, body: bytes) -> bytes:
    if kind == "live":
        return b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    head = (
        b"POST /v2/models/fraud/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    return head + body


async def _serve(
    home: Path, body: bytes, kind: str, log: bool, total: int, out: Path, switch: Any
) -> None:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from modelyard.config import load_settings
    from modelyard.serving.http.connection import HttpConnection
    from modelyard.serving.process.worker import worker_app

    environ = {
        "MODELYARD_SERVING__LOG_PATH": str(out / "serving.jsonl"),
        "MODELYARD_MONITORING__WAL_DIR": str(out / "wal"),
        "MODELYARD_MONITORING__LOG_SAMPLE_RATE": "1.0",
        "MODELYARD_MONITORING__LOG_INFERENCES": "true" if log else "false",
    }
    settings = load_settings(home=home, environ=environ)
    # Wired as a worker of ``modelyard serve`` is: its supervisor stores the log.
    with worker_app(settings, ["fraud@champion"], ingest_log=False) as app:
        await app.startup()
        for task in app._tasks:  # polling and heartbeat: per second, not per request
            task.cancel()
        loop = asyncio.get_running_loop()
        request = _request(kind, body)
        run = _Run(total, loop.create_future())
        config, state = Config(app), ServerState()
        connections = []
        for _ in range(CONNECTIONS):
            client = _Client(loop, request, run)
            connection = HttpConnection(config, state, {}, loop, app=app)
            client.connection = connection
            connection.connection_made(client)  # type: ignore[arg-type]
            connections.append(connection)
        for connection in connections:
            loop.call_soon(connection.data_received, request)
        switch.counting_on()
        await run.done
        switch.counting_off()
        if run.refused:
            raise SystemExit(f"an answer was not a 200: {run.refused[:300]!r}")
        for connection in connections:
            connection.connection_lost(None)
        await app.shutdown()


def child(argv: list[str]) -> int:
    import ctypes

    import uvloop

    home, body, kind, log, total, out, library = argv
    switch = ctypes.CDLL(library)
    uvloop.run(
        _serve(Path(home), Path(body).read_bytes(), kind, log == "1", int(total), Path(out), switch)
    )
    return 0


def build_switch(out: Path) -> Path:
    """The shared library whose two functions turn callgrind's counting on and off."""
    source, library = out / "switch.c", out / "switch.so"
    source.write_text(SWITCH_C)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


# -- the parent: two counted runs per case -----------------------------------------------


def counted(
    home: Path, body: Path, library: Path, kind: str, log: bool, total: int, out: Path
) -> int:
    """Instructions spent answering ``total`` requests."""
    out.mkdir(parents=True, exist_ok=True)
    profile = out / "callgrind.out"
    command = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no",
        f"--callgrind-out-file={profile}",
        sys.executable, __file__, "--child",
        str(home), str(body), kind, "1" if log else "0", str(total), str(out), str(library),
    ]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True)
    stderr = finished.stderr
    if finished.returncode != 0:
        raise SystemExit(f"the counted run failed:\n{stderr[-2000:]}")
    found = re.search(r"Collected : (\d+)", stderr)
    if found is None:
        raise SystemExit(f"valgrind printed no instruction count:\n{stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    args = parser.parse_args(argv)
    for tool in ("valgrind", "cc"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed: apt-get install valgrind gcc")
    chosen = [name.strip() for name in args.cases.split(",")]
    unknown = [name for name in chosen if name not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; known: {', '.join(CASES)}")
    (bench.HERE / "out").mkdir(exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="instructions-", dir=bench.HERE / "out"))
    prep = bench.prepare(out)
    body = out / "body.json"
    body.write_bytes(prep.oip_body)
    library = build_switch(out)
    print("| case | instructions per request |")
    print("|---|---|")
    for name in chosen:
        kind, log, description = CASES[name]
        small = counted(prep.home, body, library, kind, log, SMALL, out / f"{kind}-{log}-small")
        large = counted(prep.home, body, library, kind, log, LARGE, out / f"{kind}-{log}-large")
        print(f"| {description} | {(large - small) / (LARGE - SMALL):,.0f} |", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
