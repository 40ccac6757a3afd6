"""Where a request's CPU goes: modelyard's HTTP layer against the floor, per process.

Run from the repository root (the FastAPI venv of ``bench_serving.py --setup``
provides the floor server's httptools and uvloop):

    .venv/bin/python benchmarks/serving/bench_request_cost.py --repeat 3

Each round measures, in turn and on the same model home, with wrk at 32 connections:

* ``floor``: ``servers/constant_httptools.py``, httptools callbacks answering a
  constant (the kernel, the event loop and the parser: the floor under any Python
  server here);
* ``skeleton``: modelyard's ``GET /v2/health/live`` (its connection and app
  skeleton: routing, request id, answer, /metrics, no model);
* ``infer, logging off`` and ``infer, logging on``: the benchmark request of
  ``bench_serving.py`` with inference logging off and on.

It prints CPU per request from /proc for the supervisor and each worker, and how
evenly the workers shared the load (the smaller worker's share of their CPU: 50%
is even). Medians over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as bench  # noqa: E402


@dataclass
class Case:
    name: str
    start: Callable[[int], bench.ServerSpec]  # the server, given its port
    path: str
    script: Path
    rps: list[float] = field(default_factory=list)
    workers_us: list[float] = field(default_factory=list)
    supervisor_us: list[float] = field(default_factory=list)
    smaller_share: list[float] = field(default_factory=list)


def get_script(out: Path) -> Path:
    """A wrk script for plain GETs that prints the same summary line as the POST one."""
    path = out / "get.lua"
    path.write_text(bench.LUA_TEMPLATE.split("\n\n", 1)[1])
    return path


def is_helper(pid: int) -> bool:
    """multiprocessing's resource tracker: neither a worker nor the supervisor."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def measure(case: Case, out: Path, duration: float) -> None:
    port = bench.free_port()
    with bench.running(case.start(port), port, out) as (url, session):
        bench.run_wrk(url + case.path, case.script, 32, 3, case.name, session)  # warm-up
        m = bench.run_wrk(url + case.path, case.script, 32, duration, case.name, session)
        helpers = {pid for pid in m.process_cpu_s if is_helper(pid)}
    used = {pid: seconds * 1e6 / m.requests for pid, seconds in m.process_cpu_s.items()}
    # The session's leader is the supervisor (the floor server's forking parent); the
    # other processes serve.
    workers = [us for pid, us in used.items() if pid != session and pid not in helpers]
    case.rps.append(m.rps)
    case.workers_us.append(sum(workers))
    case.supervisor_us.append(used.get(session, 0.0))
    case.smaller_share.append(min(workers) / sum(workers) if len(workers) > 1 else 0.5)
    print(
        f"   {case.name}: {m.rps:,.0f} req/s, workers {sum(workers):.0f} us/req "
        f"({', '.join(f'{w:.0f}' for w in workers)}), supervisor "
        f"{case.supervisor_us[-1]:.1f} us/req",
        flush=True,
    )


def cases(prep: bench.Prepared, out: Path) -> list[Case]:
    post = bench.lua_script(prep.oip_body, out, "oip")
    infer = "/v2/models/fraud/infer"

    def modelyard(label: str, log: bool) -> Callable[[int], bench.ServerSpec]:
        return lambda port: bench.modelyard_spec(
            prep, out, port, label=label, description=label, log_inferences=log
        )

    return [
        Case(
            "floor (httptools constant)",
            lambda port: bench.constant_httptools_spec(prep, port),
            infer,
            post,
        ),  # fmt: skip
        Case(
            "skeleton (GET /v2/health/live)",
            modelyard("live", False),
            "/v2/health/live",
            get_script(out),
        ),  # fmt: skip
        Case("infer, logging off", modelyard("nolog", False), infer, post),
        Case("infer, logging on", modelyard("log", True), infer, post),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    args = parser.parse_args(argv)
    if bench.missing_venvs(["constant-httptools"]):
        parser.error("the FastAPI venv is missing: run bench_serving.py --setup first")
    (bench.HERE / "out").mkdir(exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="request-cost-", dir=bench.HERE / "out"))
    (out / "logs").mkdir()
    prep = bench.prepare(out)
    measured = cases(prep, out)
    for round_number in range(1, args.repeat + 1):
        print(f"round {round_number} of {args.repeat}", flush=True)
        for case in measured:
            measure(case, out, args.duration)
    print("\n| case | req/s | workers CPU us/req | supervisor us/req | smaller worker's share |")
    print("|---|---|---|---|---|")
    for case in measured:
        print(
            f"| {case.name} | {statistics.median(case.rps):,.0f} | "
            f"{statistics.median(case.workers_us):.0f} | "
            f"{statistics.median(case.supervisor_us):.1f} | "
            f"{statistics.median(case.smaller_share):.0%} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
