"""Deployments on the real server: traffic split by weight, sticky by routing key, and a
weight change under load that reaches every worker within a second, failing nothing."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from sklearn.datasets import make_classification

from modelyard.config import load_settings
from modelyard.routing import DeploymentStore
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.serving.telemetry.logsearch import LogQuery, search
from modelyard.yard import Yard

JSON = {"content-type": "application/json"}

FRAUD_FIELDS = [f"f{i}" for i in range(30)]  # as in conftest.build_home


def deploy(home: Path, name: str, **config: Any) -> int:
    """Create ``name`` serving fraud/1 and apply ``config``; the revision it ends at."""
    with Yard(load_settings(home=home, environ={})) as yard:
        store = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
        routing_key = config.pop("routing_key", None)
        store.create(name, "fraud", 1, routing_key=routing_key)
        return store.update(name, lambda current: replace(current, **config)).revision


def versions_by_user(
    url: str, path: str, bodies: dict[str, bytes], headers: Any
) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(4):
            for user, body in bodies.items():
                response = client.post(path, content=body, headers={**JSON, **headers(user)})
                assert response.status_code == 200, response.text
                seen.setdefault(user, set()).add(response.headers["x-model-version"])
    return seen


def test_traffic_split_follows_weight_and_sticks_to_routing_key(
    fresh_home: Path, launch_server: Any, fraud_body: bytes
) -> None:
    deploy(fresh_home, "split", canary=2, canary_weight=30)
    deploy(fresh_home, "by-user", canary=2, canary_weight=50, routing_key="header:x-user-id")
    deploy(fresh_home, "by-field", canary=2, canary_weight=50, routing_key="field:f3")
    server = launch_server(fresh_home, ["fraud@champion"], workers=2, grpc=True)

    # No key: each request draws; 30% +- 4.5 standard deviations (n = 1000): 3 failed
    # one CI run in a few hundred, as chance allows.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answers = [
            client.post("/v2/models/split/infer", content=fraud_body, headers=JSON)
            for _ in range(1000)
        ]
    assert {a.status_code for a in answers} == {200}
    share = sum(a.headers["x-model-version"] == "2" for a in answers) / len(answers)
    assert 0.30 - 0.065 < share < 0.30 + 0.065, share

    # Keyed by header: one version per user, the one the store's own routing picks.
    with Yard(load_settings(home=fresh_home, environ={})) as yard:
        by_user = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry).get("by-user")
    users = {f"user-{n}": fraud_body for n in range(40)}
    seen = versions_by_user(
        server.url, "/v2/models/by-user/infer", users, lambda user: {"x-user-id": user}
    )
    assert all(len(versions) == 1 for versions in seen.values()), seen
    assert {user: next(iter(v)) for user, v in seen.items()} == {
        user: str(by_user.route(user, 0.0).version) for user in users
    }
    assert 8 <= sum(v == {"2"} for v in seen.values()) <= 32

    # The same over gRPC, the key in the call's metadata: the same version per user.
    grpcclient = pytest.importorskip("tritonclient.grpc")
    row = np.asarray(orjson.loads(fraud_body)["inputs"][0]["data"], dtype=np.float32)
    tensor = grpcclient.InferInput("input", [1, 30], "FP32")
    tensor.set_data_from_numpy(row.reshape(1, 30))
    client = grpcclient.InferenceServerClient(server.grpc_target)
    try:
        over_grpc = {
            user: client.infer("by-user", [tensor], headers={"x-user-id": user})
            .get_response()
            .model_version
            for user in users
        }
    finally:
        client.close()
    assert over_grpc == {user: next(iter(v)) for user, v in seen.items()}

    # Keyed by a field of the first record (the records route).
    rows, _ = make_classification(n_samples=40, n_features=30, random_state=7)
    rows = rows.astype(np.float32)
    bodies = {
        str(row[3]): orjson.dumps(
            {"instances": [dict(zip(FRAUD_FIELDS, map(float, row), strict=True))]}
        )
        for row in rows
    }
    seen = versions_by_user(server.url, "/v1/models/by-field:predict", bodies, lambda _: {})
    assert all(len(versions) == 1 for versions in seen.values()), seen
    assert {"1", "2"} == {v for versions in seen.values() for v in versions}


def test_weight_change_under_load_reaches_every_worker_within_a_second(
    fresh_home: Path, launch_server: Any, start_load: Any, fraud_body: bytes
) -> None:
    deploy(fresh_home, "checkout", canary=2, canary_weight=10)
    server = launch_server(fresh_home, ["fraud@champion"], workers=2)
    load = start_load(server.url, "/v2/models/checkout/infer", fraud_body, connections=8)
    assert load.wait_for(lambda outcomes: len(outcomes) > 300, timeout=30)

    changed_at = time.time()
    with Yard(load_settings(home=fresh_home, environ={})) as yard:
        store = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
        revision = store.update(
            "checkout", lambda current: replace(current, canary_weight=60), reason="test"
        ).revision
    settled = time.monotonic() + 1.0
    assert load.wait_for(lambda outcomes: sum(o.at > settled for o in outcomes) > 600, 60)
    outcomes = load.stop()

    failures = [o for o in outcomes if o.status != 200]
    assert failures == [], f"{len(failures)} of {len(outcomes)} failed: {failures[:5]}"
    after = [o for o in outcomes if o.at > settled]
    share = sum(o.version == "2" for o in after) / len(after)
    assert 0.60 - 0.08 < share < 0.60 + 0.08, share

    time.sleep(0.5)  # the workers flush their JSON log every 0.2 s
    lines = server.log_path.read_bytes().splitlines()
    updates = [
        line
        for line in search(lines, LogQuery(event="deployment_updated"), None)
        if line["deployment"] == "checkout" and line["revision"] == revision
    ]
    assert len({line["worker"] for line in updates}) == 2, updates
    assert all(line["ts"] - changed_at < 1.0 for line in updates), [
        line["ts"] - changed_at for line in updates
    ]
