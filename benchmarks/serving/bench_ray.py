"""modelyard on Ray Serve against the built-in server and a hand-written Ray Serve app.

Usage (from the repository root; ~6 minutes with --repeat 3)::

    .venv/bin/python benchmarks/serving/bench_ray.py --repeat 3
    .venv/bin/python benchmarks/serving/bench_ray.py --duration 5 --repeat 1

The model, the request and the measuring are ``bench_serving``'s: the seeded
RandomForest(100 trees, depth 10) on 30 features, the same Open Inference Protocol
body, ``wrk -t1 --latency`` (closed loop) on 127.0.0.1 for ``--duration`` seconds at
32 connections and at 1, every server checked against scikit-learn's answer first.
Each round starts and measures, in turn:

* ``builtin``: ``modelyard serve`` with one worker process (``--replicas``);
* ``modelyard-ray``: ``modelyard serve --backend ray``, the same app in as many Ray Serve
  replicas, behind Ray's HTTP proxy (a local single-node cluster it starts);
* ``ray-ort``: ``servers/ray_ort.py``, a minimal Ray Serve deployment calling onnxruntime
  (no validation, logs or metrics), as many replicas, ``max_ongoing_requests=256``.

What the Ray proxy costs per request is read two ways: the latency gap at one connection
(``modelyard-ray`` p50 minus ``builtin`` p50, the same app behind one more hop), and the
CPU time per request of every process of the server (the driver, Ray's proxy, controller,
GCS and raylet included) against the built-in server's. Figures are medians over rounds;
ratios are taken round by round (BENCHMARKING.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as bench  # noqa: E402


def builtin_spec(prep: bench.Prepared, out: Path, port: int, replicas: int) -> bench.ServerSpec:
    spec = bench.modelyard_spec(
        prep, out, port, label="builtin", description="modelyard serve (built-in)"
    )
    spec.command[spec.command.index("--workers") + 1] = str(replicas)
    return spec


def modelyard_ray_spec(
    prep: bench.Prepared, out: Path, port: int, replicas: int
) -> bench.ServerSpec:
    spec = bench.modelyard_spec(
        prep,
        out,
        port,
        label="modelyard-ray",
        description="modelyard serve --backend ray",
        backend="ray",
    )
    spec.command[spec.command.index("--workers") + 1] = str(replicas)
    return spec


def ray_ort_spec(prep: bench.Prepared, port: int, replicas: int) -> bench.ServerSpec:
    return bench.ServerSpec(
        name="ray-ort",
        description="hand-written Ray Serve + onnxruntime",
        command=[str(bench.MAIN_PY), "ray_ort.py", str(port), str(replicas)],
        ready_path="/",
        infer_path="/v2/models/fraud/infer",
        body=prep.oip_body,
        probabilities=bench.probabilities_oip,
        env={"BENCH_MODEL": str(prep.onnx_path)},
        cwd=bench.SERVERS_DIR,
    )


def process_name(pid: int) -> str:
    """What a server process is: Ray names its actors' processes (``ray::ProxyActor``)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    first = command[0].decode(errors="replace")
    if first.startswith("ray::"):
        return first
    return " ".join(Path(part.decode(errors="replace")).name[:24] for part in command[:3])


def cpu_by_process(m: bench.Measurement) -> str:
    """The server's CPU per request, split by process (the four busiest)."""
    busiest = sorted(m.process_cpu_s.items(), key=lambda item: -item[1])[:4]
    return ", ".join(
        f"{process_name(pid)} {seconds / max(m.requests, 1) * 1e6:,.0f} us"
        for pid, seconds in busiest
    )


def measure(
    spec: bench.ServerSpec, port: int, prep: bench.Prepared, out: Path, duration: float
) -> dict[int, bench.Measurement]:
    script = bench.lua_script(spec.body, out, spec.name)
    with bench.running(spec, port, out) as (url, session):
        bench.check_answer(spec, url, prep.expected)
        bench.run_wrk(url + spec.infer_path, script, 32, 2, spec.name, session)  # warm-up
        found = {
            c: bench.run_wrk(url + spec.infer_path, script, c, duration, spec.name, session)
            for c in (32, 1)
        }
        print(f"  {spec.name} c=32 CPU/request by process: {cpu_by_process(found[32])}")
        return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--replicas", type=int, default=1, help="workers / Ray replicas")
    args = parser.parse_args(argv)

    out = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    (out / "logs").mkdir()
    prep = bench.prepare(out)
    rounds: list[dict[str, dict[int, bench.Measurement]]] = []
    for number in range(args.repeat):
        ports = [bench.free_port() for _ in range(3)]
        specs = [
            builtin_spec(prep, out, ports[0], args.replicas),
            modelyard_ray_spec(prep, out, ports[1], args.replicas),
            ray_ort_spec(prep, ports[2], args.replicas),
        ]
        found = {}
        for spec, port in zip(specs, ports, strict=True):
            found[spec.name] = measure(spec, port, prep, out, args.duration)
            for connections, m in found[spec.name].items():
                print(
                    f"round {number + 1} {spec.name} c={connections}: {bench.fmt_measurement(m)}",
                    flush=True,
                )
        rounds.append(found)

    def median(server: str, connections: int, attribute: str) -> float:
        return statistics.median(getattr(r[server][connections], attribute) for r in rounds)

    print(f"\n{args.repeat} round(s) of {args.duration:g} s, {args.replicas} worker(s)/replica(s)")
    print("| server | c=32 req/s | c=32 p50 | c=32 p99 | c=1 req/s | c=1 p50 | CPU/request |")
    print("|---|---|---|---|---|---|---|")
    for server in ("builtin", "modelyard-ray", "ray-ort"):
        print(
            f"| {server} | {median(server, 32, 'rps'):,.0f} "
            f"| {median(server, 32, 'p50_ms'):.2f} ms | {median(server, 32, 'p99_ms'):.2f} ms "
            f"| {median(server, 1, 'rps'):,.0f} | {median(server, 1, 'p50_ms'):.2f} ms "
            f"| {median(server, 32, 'server_cpu_us'):,.0f} us |"
        )
    gap_ms = statistics.median(
        r["modelyard-ray"][1].p50_ms - r["builtin"][1].p50_ms for r in rounds
    )
    cpu_us = statistics.median(
        r["modelyard-ray"][32].server_cpu_us - r["builtin"][32].server_cpu_us for r in rounds
    )
    ratio = statistics.median(r["builtin"][32].rps / r["modelyard-ray"][32].rps for r in rounds)
    versus = statistics.median(r["modelyard-ray"][32].rps / r["ray-ort"][32].rps for r in rounds)
    print(
        f"\nRay's hop per request (modelyard-ray minus builtin, medians of per-round gaps): "
        f"{gap_ms:.2f} ms at c=1 p50, {cpu_us:,.0f} us of CPU at c=32; builtin answers "
        f"{ratio:.1f}x the requests/s; modelyard-ray answers {versus:.2f}x ray-ort's"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
