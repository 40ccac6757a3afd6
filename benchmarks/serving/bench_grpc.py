"""REST against gRPC: the same 1-row request to one modelyard server's two endpoints.

Run from the repository root (about 40 s a round with the defaults)::

    .venv/bin/python benchmarks/serving/bench_grpc.py --rounds 5

Starts modelyard with the benchmark's 30-feature forest (``bench_serving.py``: two
workers, inference logging on) and ``serving.grpc_port`` set, checks that both endpoints
give the forest's probabilities for the row, then in each round measures, one after
the other, ``--clients`` concurrent clients, each on a connection of its own and with
one request in flight, for ``--duration`` seconds (after 1 s of warm-up):

* ``rest-wrk``: wrk (C) posting the Open Inference Protocol JSON body, as
  ``bench_serving.py`` does;
* ``rest-python``: the same body from the project's Python load generator (the
  ``modelyard bench`` engine: raw asyncio sockets on uvloop), a client as costly as the
  gRPC one is;
* ``grpc-python``: a ``grpc.aio`` client (grpcio's C core under asyncio) calling
  ``ModelInfer`` with the row as ``raw_input_contents``, the message serialised once up
  front, as the REST body is;
* ``grpc-constant``: the same client against ``servers/constant_grpc.py``, grpcio's
  asyncio server on uvloop in two processes answering every call with modelyard's
  answer, unparsed: what a gRPC call costs a Python server before any work is done.

Clients and server share the machine's two cores, so requests/s depend on the
client's cost as much as on the server's: next to each figure are the CPU time the
server's processes and the client spent per request, and for modelyard the rows per
model call (from ``/metrics``: how far requests shared micro-batches). The machine is shared: each
round's gRPC figure is divided by the REST figures of the same round, and those ratios
are reported round by round, with their median.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
from grpc import aio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as bench  # noqa: E402

from modelyard.serving.wire.proto.messages import (  # noqa: E402
    ModelInferRequest,
    ModelInferResponse,
)

INFER = "/inference.GRPCInferenceService/ModelInfer"
WARMUP_S = 1.0


def grpc_body(row: np.ndarray) -> bytes:
    """The row as a serialised ``ModelInferRequest`` (raw FP32), as tritonclient sends it."""
    message = ModelInferRequest(model_name="fraud")
    message.inputs.add(name="input", datatype="FP32", shape=[1, len(row)])
    message.raw_input_contents.append(np.ascontiguousarray(row, dtype="<f4").tobytes())
    return message.SerializeToString()


def grpc_probabilities(payload: bytes) -> list[float]:
    response = ModelInferResponse.FromString(payload)
    names = [tensor.name for tensor in response.outputs]
    raw = response.raw_output_contents[names.index("probabilities")]
    return np.frombuffer(raw, dtype="<f4").tolist()


async def _grpc_load(
    target: str, body: bytes, clients: int, duration_s: float
) -> tuple[list[float], int, float]:
    """Latencies (s) of the calls answered in the measured window, the failures, and the
    window's length."""
    # A channel per client, each its own connection (no shared subchannel), so that the
    # kernel spreads them over the workers as it spreads HTTP connections.
    channels = [
        aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(clients)
    ]
    latencies: list[float] = []
    failures = 0
    start = time.monotonic() + WARMUP_S
    stop = start + duration_s

    async def client(channel: aio.Channel) -> None:
        nonlocal failures
        call = channel.unary_unary(INFER)  # bytes in, bytes out: no serialiser
        while True:
            sent = time.monotonic()
            if sent >= stop:
                return
            try:
                await call(body, timeout=10)
            except grpc.RpcError:
                failures += 1
                continue
            if sent >= start:
                latencies.append(time.monotonic() - sent)

    try:
        await asyncio.gather(*(client(channel) for channel in channels))
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))
    return latencies, failures, duration_s


@contextlib.contextmanager
def constant_grpc(port: int, answer: bytes) -> Iterator[int]:
    """``servers/constant_grpc.py`` on ``port`` (two processes) until the block ends; its
    session id."""
    env = bench.base_env()
    env["BENCH_ANSWER"] = answer.hex()
    command = [sys.executable, str(bench.SERVERS_DIR / "constant_grpc.py"), str(port), "2"]
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(grpc.RpcError):
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    channel.unary_unary(INFER)(b"", timeout=1)
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the constant gRPC server did not start")
            time.sleep(0.2)
        yield process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def run_grpc(
    target: str, body: bytes, clients: int, duration_s: float, session: int, name: str
) -> bench.Measurement:
    load = os.getloadavg()[0]
    server_before, client_before = bench.session_cpu_by_process(session), bench.self_cpu_s()
    latencies, failures, seconds = asyncio.run(_grpc_load(target, body, clients, duration_s))
    used = bench.cpu_since(server_before, session)
    client_cpu = bench.self_cpu_s() - client_before
    # CPU includes the warm-up second, as the Python REST client's does: counted over it
    total = max(len(latencies), 1) * (1 + WARMUP_S / duration_s)
    ordered = sorted(latencies) or [float("nan")]

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    return bench.Measurement(
        server=name,
        connections=clients,
        duration_s=seconds,
        requests=len(latencies),
        rps=len(latencies) / seconds,
        p50_ms=quantile(0.5),
        p90_ms=quantile(0.9),
        p99_ms=quantile(0.99),
        max_ms=ordered[-1] * 1e3,
        errors=failures,
        load_before=load,
        server_cpu_us=sum(used.values()) / total * 1e6,
        client_cpu_us=client_cpu / total * 1e6,
        process_cpu_s=used,
        tool="grpc.aio",
    )


def check_answers(
    spec: bench.ServerSpec, url: str, target: str, body: bytes, expected: np.ndarray
) -> bytes:
    """Both endpoints must give the forest's probabilities for the row; the gRPC answer."""
    rest = httpx.post(
        url + spec.infer_path, content=spec.body, headers={"content-type": "application/json"}
    )
    rest.raise_for_status()
    over_rest = bench.probabilities_oip(orjson.loads(rest.content))

    async def one() -> bytes:
        async with aio.insecure_channel(target) as channel:
            answer: bytes = await channel.unary_unary(INFER)(body, timeout=10)
            return answer

    answer = asyncio.run(one())
    np.testing.assert_allclose(over_rest, expected, atol=1e-5)
    np.testing.assert_allclose(grpc_probabilities(answer), over_rest, rtol=1e-6)
    return answer


def batch_rows(url: str) -> tuple[float, float]:
    """The server's rows and model calls so far (``modelyard_batch_rows``, all workers)."""
    rows = calls = 0.0
    for text in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if text.startswith("modelyard_batch_rows_sum{"):
            rows += float(text.rsplit(" ", 1)[1])
        elif text.startswith("modelyard_batch_rows_count{"):
            calls += float(text.rsplit(" ", 1)[1])
    return rows, calls


def line(m: bench.Measurement, rows_per_call: float | None) -> str:
    batching = "" if rows_per_call is None else f"  {rows_per_call:4.1f} rows/call"
    return (
        f"{m.server:13} {m.rps:7,.0f} req/s  p50 {m.p50_ms:6.2f} ms  p99 {m.p99_ms:6.2f} ms  "
        f"server {m.server_cpu_us:4.0f} us/req  client {m.client_cpu_us:4.0f} us/req"
        f"{batching}  errors {m.errors}  load {m.load_before:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as tmp:
        out = Path(tmp)
        (out / "logs").mkdir()
        prep = bench.prepare(out)
        port, grpc_port, constant_port = bench.free_port(), bench.free_port(), bench.free_port()
        spec = bench.modelyard_spec(
            prep, out, port, label="modelyard", description="modelyard", grpc_port=str(grpc_port)
        )
        target = f"127.0.0.1:{grpc_port}"
        body = grpc_body(prep.row)
        script = bench.lua_script(spec.body, out, "oip")
        rounds: list[dict[str, bench.Measurement]] = []
        batched: list[dict[str, float]] = []
        with contextlib.ExitStack() as stack:
            url, session = stack.enter_context(bench.running(spec, port, out))
            answer = check_answers(spec, url, target, body, prep.expected)
            constant = stack.enter_context(constant_grpc(constant_port, answer))
            print(f"modelyard, 2 workers, {args.clients} clients, {args.duration:g} s each")
            for number in range(1, args.rounds + 1):
                figures: dict[str, bench.Measurement] = {}
                batching: dict[str, float] = {}
                measurements = {
                    "rest-wrk": lambda: bench.run_wrk(
                        url + spec.infer_path, script, args.clients, args.duration,
                        "rest-wrk", session,
                    ),
                    "rest-python": lambda: bench.run_python_loadgen(
                        url, spec, args.clients, args.duration, None, session
                    ),
                    "grpc-python": lambda: run_grpc(
                        target, body, args.clients, args.duration, session, "grpc-python"
                    ),
                }  # fmt: skip
                for name, measure in measurements.items():
                    rows, calls = batch_rows(url)
                    figures[name] = measure()
                    after_rows, after_calls = batch_rows(url)
                    batching[name] = (after_rows - rows) / max(after_calls - calls, 1)
                figures["grpc-constant"] = run_grpc(
                    f"127.0.0.1:{constant_port}", body, args.clients, args.duration,
                    constant, "grpc-constant",
                )  # fmt: skip
                figures["rest-python"].server = "rest-python"
                rounds.append(figures)
                batched.append(batching)
                print(f"round {number}")
                for name, m in figures.items():
                    print("  " + line(m, batching.get(name)))
                grpc_rps = figures["grpc-python"].rps
                print(
                    f"  grpc / rest-python {grpc_rps / figures['rest-python'].rps:.2f}"
                    f"  grpc / rest-wrk {grpc_rps / figures['rest-wrk'].rps:.2f}",
                    flush=True,
                )
    print("\nmedians of the rounds")
    for name in rounds[0]:
        rps = statistics.median(r[name].rps for r in rounds)
        server_cpu = statistics.median(r[name].server_cpu_us for r in rounds)
        client_cpu = statistics.median(r[name].client_cpu_us for r in rounds)
        p99 = statistics.median(r[name].p99_ms for r in rounds)
        rows = [b[name] for b in batched if name in b]
        batching = f"  {statistics.median(rows):4.1f} rows/call" if rows else ""
        print(
            f"  {name:13} {rps:7,.0f} req/s  p99 {p99:6.2f} ms  server {server_cpu:4.0f} us/req  "
            f"client {client_cpu:4.0f} us/req{batching}"
        )
    for reference in ("rest-python", "rest-wrk"):
        ratios = [r["grpc-python"].rps / r[reference].rps for r in rounds]
        cpu = [r["grpc-python"].server_cpu_us / r[reference].server_cpu_us for r in rounds]
        print(
            f"  grpc / {reference}: req/s {', '.join(f'{x:.2f}' for x in ratios)} "
            f"(median {statistics.median(ratios):.2f}); server CPU per request "
            f"{', '.join(f'{x:.2f}' for x in cpu)} (median {statistics.median(cpu):.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
