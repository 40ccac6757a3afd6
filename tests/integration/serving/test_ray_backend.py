"""``modelyard serve --backend ray`` on a local single-node Ray cluster (started by the
server, stopped with it): the same answers as the built-in server, byte for byte but for
request ids, including a deployment's sticky traffic split, and its requests reach the
inference log and its /metrics."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from modelyard.config import load_settings
from modelyard.monitoring.inference_log.payload import Payload
from modelyard.routing import DeploymentStore
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.store.database import Database
from modelyard.store.schema import inference_batches
from modelyard.yard import Yard

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None,
        reason="the ray backend needs Ray Serve: pip install 'modelyard[ray]'",
    ),
]

JSON = {"content-type": "application/json"}
ROW = [0.25 * (i % 7) - 0.5 for i in range(30)]
GOOD = orjson.dumps(
    {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": ROW}]}
)
# (method, path, body, headers): answers, errors of each kind, metadata, the JSON route
REQUESTS: list[tuple[str, str, bytes | None, dict[str, str]]] = [
    ("POST", "/v2/models/fraud/infer", GOOD, JSON),
    ("POST", "/v2/models/fraud/versions/2/infer", GOOD, JSON),
    (
        "POST",
        "/v2/models/fraud/infer",
        orjson.dumps(
            {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
        ),
        JSON,
    ),
    ("POST", "/v2/models/fraud/infer", b"{not json", JSON),
    ("POST", "/v2/models/fraud/infer", GOOD, {"content-type": "text/plain"}),
    ("POST", "/v2/models/missing/infer", GOOD, JSON),
    ("GET", "/v2/models/fraud", None, {}),
    ("GET", "/v2/models/fraud/ready", None, {}),
    ("POST", "/v1/models/price:predict", b'{"instances": [[1, 2, 3, 4, 5]]}', JSON),
    ("POST", "/v1/models/price:predict", b'{"instances": [{"rooms": "many"}]}', JSON),
]


def comparable(response: httpx.Response) -> tuple[int, Any, str | None]:
    """Status, body without its request id, and the answering version."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = response.content
    if isinstance(body, dict):
        body.pop("id", None)
        body.pop("request_id", None)
    return response.status_code, body, response.headers.get("x-model-version")


def logged_request_ids(home: Path) -> set[str]:
    db = Database(load_settings(home=home, environ={}).resolved_database_url)
    try:
        with db.read() as conn:
            payloads = conn.execute(select(inference_batches.c.payload)).scalars().all()
    finally:
        db.dispose()
    return {r.request_id for data in payloads for r in Payload(data).records}


@pytest.fixture(scope="module")
def both_servers(
    model_home: Path, tmp_path_factory: pytest.TempPathFactory, server_starter: Any
) -> Iterator[tuple[Any, Any]]:
    """The built-in server and the Ray backend, one replica each, on one home that has a
    50/50 deployment keyed by user."""
    home = Path(shutil.copytree(model_home, tmp_path_factory.mktemp("ray") / "home"))
    with Yard(load_settings(home=home, environ={})) as yard:
        store = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
        store.create("by-user", "fraud", 1, routing_key="header:x-user-id")
        store.update("by-user", lambda current: replace(current, canary=2, canary_weight=50))
    models = ["fraud@champion", "price"]
    builtin = server_starter(home, models, workers=1)
    try:
        on_ray = server_starter(home, models, workers=1, settings={"backend": "ray"})
    except BaseException:
        builtin.stop()
        raise
    yield builtin, on_ray
    on_ray.stop()
    builtin.stop()


def test_ray_backend_answers_oip_v2_with_the_same_bodies_as_the_built_in_server(
    both_servers: tuple[Any, Any],
) -> None:
    builtin, on_ray = both_servers
    with httpx.Client(timeout=30) as client:
        for method, path, body, headers in REQUESTS:
            want = client.request(method, builtin.url + path, content=body, headers=headers)
            got = client.request(method, on_ray.url + path, content=body, headers=headers)
            assert comparable(got) == comparable(want), (method, path)
        # the deployment's split, sticky by user: every user gets the same version on both
        for user in (f"user-{n}" for n in range(12)):
            headers = {**JSON, "x-user-id": user}
            path = "/v2/models/by-user/infer"
            want = client.post(builtin.url + path, content=GOOD, headers=headers)
            got = client.post(on_ray.url + path, content=GOOD, headers=headers)
            assert comparable(got) == comparable(want), user


def test_ray_replicas_requests_reach_the_inference_log_and_metrics(
    both_servers: tuple[Any, Any], wait_until: Any
) -> None:
    _, on_ray = both_servers
    response = httpx.post(
        f"{on_ray.url}/v2/models/fraud/infer",
        content=GOOD,
        headers={**JSON, "x-request-id": "through-ray-1"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert wait_until(lambda: "through-ray-1" in logged_request_ids(on_ray.home), 20)
    # the replica's own /metrics, as a worker's: its readiness and the request just counted
    metrics = httpx.get(f"{on_ray.url}/metrics", timeout=30)
    assert metrics.status_code == 200
    assert b"modelyard_ready 1" in metrics.content
    assert b'modelyard_requests_total{model="fraud"' in metrics.content
