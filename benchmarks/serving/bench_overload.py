"""Admitted latency at 3x overload, and where it comes from: the server or the generator.

Run from the repository root:

    .venv/bin/python benchmarks/serving/bench_overload.py [--rounds 3] [--max-queue-rows 32]

What it measures: one worker serving the forest of ``bench_serving`` (100 trees, ONNX,
1 row x 30 features), loaded as ``tests/integration/serving/test_limits.py`` loads it
with modelyard's own generator (``modelyard.loadtest``): its closed-loop capacity on
16 connections, then an open-loop run on 4 connections at a quarter of it
("unloaded"), then 256 connections offering 3x capacity ("overloaded"). For each
round it prints the p99 of the admitted (2xx) answers' service time (from the send,
as the test reads it), the admitted and shed rates, the server's own view (the
worker's event-loop lag gauge, read from ``/metrics`` during the run) and the
generator's own event-loop lag (a 1 ms heartbeat on the generator's loop, p99 of how
late it fired): a late generator reads every answer late, and that lateness is in
each service time it reports.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as bench  # noqa: E402

from modelyard.loadtest.generator import LoadPlan, LoadResult, generate  # noqa: E402

OVERLOAD_CONNECTIONS = 256


def admitted_p99_ms(result: LoadResult) -> float:
    times = [r.service_s for r in result.responses if 200 <= r.status < 300]
    return float(np.percentile(times, 99)) * 1e3 if times else float("nan")


async def with_probes(plan: LoadPlan, url: str) -> tuple[LoadResult, float, float]:
    """Run ``plan``; also the p99 of the generator loop's lateness (ms) and the worst
    event-loop lag the server reported (ms) while it ran."""
    loop = asyncio.get_running_loop()
    late: list[float] = []
    server_lag: list[float] = []
    stop = False

    async def heartbeat() -> None:
        while not stop:
            expected = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            late.append(time.perf_counter() - expected)

    def scrape() -> None:
        while not stop:
            try:
                text = httpx.get(f"{url}/metrics", timeout=5).text
            except httpx.TransportError:
                continue
            found = re.search(r"^modelyard_event_loop_lag_seconds\S* ([0-9.e+-]+)$", text, re.M)
            if found:
                server_lag.append(float(found.group(1)))
            time.sleep(0.25)

    beat = asyncio.create_task(heartbeat())
    scraper = loop.run_in_executor(None, scrape)
    result = await generate(plan)
    stop = True
    await beat
    await scraper
    generator_p99 = float(np.percentile(late, 99)) * 1e3 if late else float("nan")
    return result, generator_p99, max(server_lag, default=float("nan")) * 1e3


def run(plan: LoadPlan, url: str) -> tuple[LoadResult, float, float]:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(with_probes(plan, url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-queue-rows", default="32")
    parser.add_argument("--workers", default="1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "logs").mkdir()
        prep = bench.prepare(out)
        port = bench.free_port()
        spec = bench.modelyard_spec(
            prep,
            out,
            port,
            label="overload",
            description="one worker",
            log_inferences=False,
            max_queue_rows=args.max_queue_rows,
        )
        spec.command[spec.command.index("--workers") + 1] = args.workers
        print(f"uptime: {bench.uptime()}")
        print(
            "round  capacity/s  unloaded_p99_ms  admitted/s  shed/s  admitted_p99_ms  "
            "ratio  generator_lag_p99_ms(unl/over)  server_lag_max_ms(over)"
        )
        with bench.running(spec, port, out) as (url, _):
            base: dict[str, Any] = {
                "url": url,
                "path": spec.infer_path,
                "body": spec.body,
                "keep_header": "retry-after",
            }
            for number in range(args.rounds):
                capacity = run(LoadPlan(**base, connections=16, duration_s=1.5, warmup_s=0.3), url)
                rate = capacity[0].throughput
                unloaded = run(
                    LoadPlan(**base, connections=4, rate=rate / 4, duration_s=2.0, warmup_s=0.2),
                    url,
                )
                over = run(
                    LoadPlan(
                        **base,
                        connections=OVERLOAD_CONNECTIONS,
                        rate=3 * rate,
                        duration_s=3.0,
                        warmup_s=0.3,
                    ),
                    url,
                )
                result = over[0]
                shed = sum(1 for r in result.responses if r.status == 503)
                quiet, loaded = admitted_p99_ms(unloaded[0]), admitted_p99_ms(result)
                print(
                    f"{number:>5}  {rate:>10.0f}  {quiet:>15.2f}  "
                    f"{result.ok / result.duration_s:>10.0f}  {shed / result.duration_s:>6.0f}  "
                    f"{loaded:>15.2f}  {loaded / quiet:>5.2f}  "
                    f"{unloaded[1]:>13.2f} / {over[1]:<13.2f}  {over[2]:>10.2f}"
                )


if __name__ == "__main__":
    main()
