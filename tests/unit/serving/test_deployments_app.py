"""Deployments through the ASGI app in-process (no sockets): routing, swaps on a new
revision, the arm and version every hook sees, shadows in ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard.config import Settings, load_settings
from modelyard.monitoring import InferenceLogger, InMemoryInferenceLogRepository, LogPolicy
from modelyard.monitoring.inference_log.policy import default_policy
from modelyard.routing import DeploymentStore, FeatureInputs
from modelyard.serving.hosting.features import Fetched
from modelyard.serving.hosting.shadow import ShadowEvent
from modelyard.serving.http.app import ServingApp
from modelyard.serving.recording import InferenceLogRecorder

FIELDS = ["user", "amount", "age", "score"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, stores_for: Any) -> Path:
    """Versions 1 and 2 agree; version 3 was fitted on flipped labels."""
    path = tmp_path_factory.mktemp("deployments-home")
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 4)).astype(np.float32)
    labels = (features[:, 1] + features[:, 2] > 0).astype(int)
    with stores_for(path) as yard:
        for target in (labels, labels, 1 - labels):
            model = LogisticRegression().fit(features, target)
            yard.registry.register("fraud", model, features, feature_names=FIELDS)
        yard.registry.set_alias("fraud", "champion", 1)
    return path


def settings_for(home: Path) -> Settings:
    return load_settings(home=home, environ={}, serving={"log_path": home / "test.jsonl"})


class Client:
    """Calls the app as uvicorn would, on one event loop kept for the test."""

    def __init__(self, app: ServingApp) -> None:
        self.app = app
        self.runner = asyncio.Runner()

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def post(
        self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        sent: list[dict[str, Any]] = []
        pending = [{"type": "http.request", "body": orjson.dumps(body), "more_body": False}]
        raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        raw.append((b"content-type", b"application/json"))

        async def receive() -> dict[str, Any]:
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": path, "headers": raw}
        self.run(self.app(scope, receive, send))
        start, message = sent
        return (
            start["status"],
            {k.decode(): v.decode() for k, v in start["headers"]},
            orjson.loads(message["body"]),
        )


@pytest.fixture
def setup(
    home: Path, tmp_path: Path, make_app: Any, recorded: Any, stores_for: Any
) -> Iterator[tuple[Client, DeploymentStore]]:
    with stores_for(home) as yard:
        store = yard.deployments
        name = f"checkout-{tmp_path.name}"[-60:]
        store.create(name, "fraud", 1, routing_key="header:x-user")
        app = make_app(settings_for(home), yard, ["fraud@champion"], inference_log=recorded)
        client = Client(app)
        client.run(app.startup())
        client.name = name  # type: ignore[attr-defined]
        yield client, store
        client.run(app.shutdown())
        client.runner.close()


def infer_body(rows: int = 1) -> dict[str, Any]:
    data = [[float(r), 0.5, -1.0, 0.25] for r in range(rows)]
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, 4], "data": data}]}


def test_deployment_routes_swaps_and_tells_the_inference_log(
    setup: tuple[Client, DeploymentStore], recorded: Any
) -> None:
    client, store = setup
    name: str = client.name  # type: ignore[attr-defined]
    path = f"/v2/models/{name}/infer"

    def batches() -> list[tuple[str, str, int]]:
        return [
            (r.deployment, r.arm, b.version) for b in recorded.answered for r, _, _ in b.requests
        ]

    status, headers, body = client.post(path, infer_body(2))
    assert (status, headers["x-model-version"], body["model_version"]) == (200, "1", "1")

    store.update(name, lambda config: replace(config, canary=2, canary_weight=50))
    client.run(client.app.manager.poll_once())
    seen: dict[str, set[str]] = {}
    for n in range(60):
        user = f"user-{n % 12}"
        status, headers, _ = client.post(path, infer_body(), {"x-user": user})
        assert status == 200
        seen.setdefault(user, set()).add(headers["x-model-version"])
    assert all(len(v) == 1 for v in seen.values())
    assert {v for versions in seen.values() for v in versions} == {"1", "2"}
    arms = set(batches())
    assert arms == {(name, "champion", 1), (name, "canary", 2)}
    # A pinned version of the deployment, and a plain reference next to it.
    status, headers, _ = client.post(f"/v2/models/{name}/versions/2/infer", infer_body())
    assert (status, headers["x-model-version"], batches()[-1][1]) == (200, "2", "pinned")
    status, headers, _ = client.post("/v2/models/fraud/infer", infer_body())
    assert (status, *batches()[-1][:2]) == (200, "fraud", "primary")
    status, _, answer = client.post(f"/v2/models/{name}/versions/3/infer", infer_body())
    assert status == 404
    assert "not part of deployment" in answer["error"]
    status, _, index = client.post("/v2/repository/index", {})
    assert {"name": name, "version": "1", "state": "READY"}.items() <= next(
        entry for entry in index if entry["name"] == name
    ).items()
    metrics = client.app.metrics_text().decode()
    assert f'modelyard_model_version{{model="fraud",ref="deployment:{name}"}} 1.0' in metrics


def test_shadow_answers_are_compared_and_never_returned(
    setup: tuple[Client, DeploymentStore],
) -> None:
    client, store = setup
    name: str = client.name  # type: ignore[attr-defined]
    shadowed: list[ShadowEvent] = []
    client.app.on_shadow.append(shadowed.append)
    store.set_shadow(name, 3, 1.0)
    client.run(client.app.manager.poll_once())
    for _ in range(5):
        status, headers, _ = client.post(f"/v2/models/{name}/infer", infer_body(4))
        assert (status, headers["x-model-version"]) == (200, "1")

    async def shadows_answered() -> None:  # they run on the shadow lane's thread
        for _ in range(500):
            if len(shadowed) >= 5:
                return
            await asyncio.sleep(0.01)

    client.run(shadows_answered())
    assert len(shadowed) == 5
    lane = client.app.table.deployments[name].runtimes[3].shadow_batcher
    assert lane is not None
    assert lane.threaded  # never on the event loop
    assert {(e.version, e.primary_version, e.status, e.rows) for e in shadowed} == {(3, 1, 200, 4)}
    agreed = sum(e.agreed_rows or 0 for e in shadowed)
    assert agreed < 20  # version 3 learned the flipped labels
    metrics = client.app.metrics_text().decode()
    assert (
        f'modelyard_shadow_requests_total{{deployment="{name}",outcome="answered",version="3"}} 5.0'
        in metrics
    )
    assert (
        f'modelyard_shadow_rows_total{{deployment="{name}",result="compared",version="3"}} 20.0'
        in metrics
    )

    store.set_shadow(name, None, None)
    client.run(client.app.manager.poll_once())
    assert set(client.app.table.deployments[name].runtimes) == {1}
    assert 3 not in {r.version for r in client.app.table.runtimes()}  # unloaded


def test_each_deployments_log_policy_reaches_the_inference_log(
    setup: tuple[Client, DeploymentStore], home: Path, tmp_path: Path
) -> None:
    client, store = setup
    name: str = client.name  # type: ignore[attr-defined]
    logger = InferenceLogger(InMemoryInferenceLogRepository(), tmp_path / "wal", ingest=False)
    default = default_policy(settings_for(home).monitoring)
    client.app.inference_log = InferenceLogRecorder(logger, default)
    client.run(client.app._housekeeping())
    assert logger.policy(name) == LogPolicy(sample_rate=1.0, ttl_s=30 * 86_400.0)  # defaults
    store.update(name, lambda config: replace(config, log_sample_rate=0.1, log_ttl_days=0))
    client.run(client.app.manager.poll_once())
    client.run(client.app._housekeeping())
    assert logger.policy(name) == LogPolicy(sample_rate=0.1, ttl_s=None)  # 0 days: forever
    logger.close()


class CardFeatures:
    """A feature store that knows card c1's age and score."""

    def reader(self, inputs: FeatureInputs) -> tuple[Any, str, str]:
        def read(keys: Sequence[str], at: float) -> Fetched:
            found = np.array([key == "c1" for key in keys])
            values = {"age": 41.0, "score": 0.25}
            return Fetched(
                {n: np.array([values[n] if f else None for f in found], dtype=object)
                 for n in inputs.inputs},
                found,
            )  # fmt: skip

        return read, "card_id", "string"


def test_a_request_with_only_the_entity_key_gets_its_features(
    home: Path, tmp_path: Path, make_app: Any, recorded: Any, stores_for: Any
) -> None:
    with stores_for(home) as stores:
        name = f"carded-{tmp_path.name}"[-60:]
        refs = FeatureInputs(("card_stats:age", "card_stats:score"))
        stores.deployments.create(name, "fraud", 1, features=refs)
        app = make_app(
            settings_for(home), stores, [], inference_log=recorded, features=CardFeatures()
        )
        client = Client(app)
        client.run(app.startup())
        try:
            request = {"instances": [{"card_id": "c1", "user": 7.0, "amount": 12.5}]}
            status, headers, body = client.post(f"/v1/models/{name}:predict", request)
            assert (status, headers["x-model-version"]) == (200, "1"), body
            (batch,) = recorded.answered
            np.testing.assert_array_equal(
                batch.model_input, np.array([[7.0, 12.5, 41.0, 0.25]], dtype=np.float32)
            )
            unknown = {"instances": [{"card_id": "c9", "user": 7.0, "amount": 1.0}]}
            status, _, body = client.post(f"/v1/models/{name}:predict", unknown)
            assert status == 422
            assert "no features for card_id 'c9' (row 0)" in body["error"]
        finally:
            client.run(app.shutdown())
            client.runner.close()
