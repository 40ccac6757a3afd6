"""What fetching features at serving time costs: one deployment whose requests carry every
input, the same model behind a deployment that fetches two of them from the feature store.

    .venv/bin/python benchmarks/features/bench_serving_features.py [--repeat 3] [--duration 10]

A logistic regression over ``amount`` and two windowed aggregates of the card's
transactions (``count_1h``, ``amount_sum_1h``), 10,000 cards with 20 events each pushed
to the stream (SQLite online store, the default). Two deployments of that version on one
2-worker server: ``plain`` takes the three inputs in the request; ``fetched`` takes the
card's key and the amount, and reads the aggregates from the online store (one read per
event-loop turn, the aggregates computed from the card's events as of the request).
wrk (``-c32``) posts JSON records with a card chosen at random per request (the same
Lua script for both, so both parse bodies of the same shape and size). Each round
measures ``plain`` then ``fetched`` on the same running server; the table gives the
medians over rounds of req/s, p50/p99 and the server's CPU per request (all its
processes, from /proc), and the extra CPU a fetched request costs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

import bench_serving as bench  # noqa: E402

from modelyard.config import load_settings  # noqa: E402
from modelyard.features import Aggregation, Entity, Feature, FeatureView, StreamSource  # noqa: E402
from modelyard.routing import DeploymentStore, FeatureInputs  # noqa: E402
from modelyard.routing.sql import SqlDeploymentRepository  # noqa: E402
from modelyard.yard import Yard  # noqa: E402

INPUTS = ["amount", "count_1h", "amount_sum_1h"]
CARDS = 10_000
EVENTS_PER_CARD = 20
STATS = FeatureView(
    "card_stats",
    Entity("card", key="card_id"),
    StreamSource("transactions", fields=(Feature("amount", "float64"),)),
    aggregations=(Aggregation("count", "1h"), Aggregation("sum", "1h", "amount")),
)
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
math.randomseed(7)
request = function()
  local card = math.random(0, CARDS - 1)
  return wrk.format(nil, PATH, nil, string.format(BODY, card))
end
""" + bench.LUA_TEMPLATE.split("\n\n", 1)[1]


def build_home(home: Path) -> None:
    """The model, the view, both deployments, and the cards' events."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, size=(2000, 3)).astype(np.float32)
    y = (x[:, 0] + 0.1 * x[:, 2] > 60).astype(int)
    now = time.time()
    with Yard(load_settings(home=home, environ={})) as yard:
        yard.registry.register("risk", LogisticRegression().fit(x, y), x, feature_names=INPUTS)
        yard.features.apply([STATS])
        deployments = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
        deployments.create("plain", "risk", 1)
        refs = FeatureInputs(("card_stats:count_1h", "card_stats:amount_sum_1h"))
        deployments.create("fetched", "risk", 1, features=refs)
        for start in range(0, CARDS, 500):
            events = [
                {"card_id": f"c{card}", "event_time": now - 3000 + i * 100,
                 "amount": float(rng.uniform(1, 200)), "event_id": f"c{card}-{i}"}
                for card in range(start, start + 500) for i in range(EVENTS_PER_CARD)
            ]  # fmt: skip
            yard.features.push("transactions", events)


def script(out: Path, name: str, path: str, body: str) -> Path:
    lua = LUA.replace("CARDS", str(CARDS)).replace("PATH", f'"{path}"')
    lua = lua.replace("BODY", "[==[" + body + "]==]")
    target = out / f"{name}.lua"
    target.write_text(lua)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="bench-serving-features-"))
    home = out / "home"
    (out / "logs").mkdir()
    print("building the home (model, view, 200,000 events)...", flush=True)
    build_home(home)
    plain = script(
        out, "plain", "/v1/models/plain:predict",
        '{"instances": [{"amount": 42.5, "count_1h": 12, "amount_sum_1h": 1234.5}]}'
        '%.0s',  # the card is not in the request: the same random call, unused
    )  # fmt: skip
    fetched = script(
        out, "fetched", "/v1/models/fetched:predict",
        '{"instances": [{"card_id": "c%d", "amount": 42.5}]}',
    )  # fmt: skip
    port = bench.free_port()
    spec = bench.ServerSpec(
        name="modelyard",
        description="modelyard, 2 workers",
        command=[
            str(bench.MAIN_PY),
            "-m",
            "modelyard.serving",
            "--home",
            str(home),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--model",
            "risk",
        ],  # fmt: skip
        ready_path="/v2/health/ready",
        infer_path="/v1/models/plain:predict",
        body=b"",
        probabilities=lambda answer: [],
        env={"MODELYARD_SERVING__LOG_PATH": str(out / "logs" / "serving.jsonl")},
    )
    rows: dict[str, list[bench.Measurement]] = {"plain": [], "fetched": []}
    with bench.running(spec, port, out) as (url, session):
        check = httpx.post(
            url + "/v1/models/fetched:predict",
            json={"instances": [{"card_id": "c1", "amount": 42.5}]},
            timeout=30,
        )
        assert check.status_code == 200, check.text  # fmt: skip
        for round_no in range(args.repeat):
            for name, lua in (("plain", plain), ("fetched", fetched)):
                subprocess.run(["wrk", "-t1", "-c8", "-d2s", "-s", str(lua), url],
                               capture_output=True, check=True)  # warm-up  # fmt: skip
                m = bench.run_wrk(url, lua, args.connections, args.duration, name, session)
                rows[name].append(m)
                print(f"round {round_no + 1} {name}: {bench.fmt_measurement(m)}", flush=True)
    print()
    print("| deployment | req/s | p50 ms | p99 ms | errors | server CPU µs/request |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, measured in rows.items():
        med = {k: statistics.median(getattr(m, k) for m in measured)
               for k in ("rps", "p50_ms", "p99_ms", "server_cpu_us")}  # fmt: skip
        errors = sum(m.errors for m in measured)
        print(f"| {name} | {med['rps']:,.0f} | {med['p50_ms']:.2f} | {med['p99_ms']:.2f} "
              f"| {errors} | {med['server_cpu_us']:.0f} |")  # fmt: skip
    extra = [
        f.server_cpu_us - p.server_cpu_us
        for p, f in zip(rows["plain"], rows["fetched"], strict=True)
    ]
    p99 = [f.p99_ms - p.p99_ms for p, f in zip(rows["plain"], rows["fetched"], strict=True)]
    print(f"\nfetching the two features costs {statistics.median(extra):.0f} µs of server CPU "
          f"a request (rounds {', '.join(f'{e:.0f}' for e in extra)}); p99 "
          f"{statistics.median(p99):+.2f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
