"""The issue's test: on the real server under saturating load, a good canary (the
champion's recipe with another seed) is promoted, judged on every check, the champion's
decisions on the canary's own requests included."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson

from modelyard.config import load_settings
from modelyard.loadtest.generator import LoadPlan, LoadResult, run_load
from modelyard.routing import DeploymentStore, RolloutController, RolloutPolicy
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.yard import Yard

from .conftest import fraud_features


def test_a_good_canary_is_promoted_under_saturating_load(
    fresh_home: Path, launch_server: Any, wait_until: Any
) -> None:
    with Yard(load_settings(home=fresh_home, environ={})) as yard:
        DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry).create(
            "checkout", "fraud", 1
        )
    server = launch_server(
        fresh_home, ["fraud@champion"], workers=2, settings={"poll_interval_s": "0.25"}
    )
    variants = tuple(
        (
            "/v2/models/checkout/infer",
            orjson.dumps(
                {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": row}]}
            ),
        )
        for row in fraud_features()[:400].tolist()
    )
    # Closed loop on more connections than the two workers can serve at once: saturated;
    # in runs of 5 s until the rollout has ended.
    plan = LoadPlan(server.url, "", b"", connections=48, duration_s=5.0, variants=variants)
    results: list[LoadResult] = []
    stop = threading.Event()

    def drive() -> None:
        while not stop.is_set():
            results.append(run_load(plan))

    load = threading.Thread(target=drive, daemon=True)
    load.start()

    policy = RolloutPolicy(step_weights=(20, 50, 100), interval_s=2.0, min_requests=50)
    with Yard(load_settings(home=fresh_home, environ={})) as yard:
        store = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
        RolloutController(store).start("checkout", 2, policy, actor="test")

        def ended() -> bool:
            record = store.get("checkout").rollout
            return record is not None and not record.state.active

        wait_until(ended, timeout=60)
        final = store.get("checkout")
        events = store.events("checkout", "rollout.")
    stop.set()
    load.join(30)
    assert sum(r.requests for r in results) > 1_000
    assert final.rollout is not None
    assert final.rollout.state.phase.value == "promoted", [e.reason for e in events]
    assert final.config.champion == 2
    judged = [e.payload for e in events if e.payload.get("checks")]
    outcomes = [{c["name"]: c["outcome"] for c in p["checks"]} for p in judged]
    assert all("failed" not in o.values() and "breached" not in o.values() for o in outcomes)
    # The runner re-ran the canary's logged inputs through the champion.
    decisions = [c for p in judged for c in p["checks"] if c["name"] == "decisions"]
    assert any(c["outcome"] == "passed" and c["value"] is not None for c in decisions)
    assert all(c["value"] < 0.05 for c in decisions if c["value"] is not None)
    assert any(p["figures"]["canary.requests"] >= 50 for p in judged)
