"""The issue's test: on the real server under load from a local load generator, a canary
that raises on 20% of inputs is rolled back automatically, clients see no failure beyond
the canary's share before the rollback, and 100% of traffic is back on the champion."""

from __future__ import annotations

import asyncio
import importlib
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from modelyard.config import load_settings
from modelyard.routing import DeploymentStore, RolloutController, RolloutPolicy
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.yard import Yard

PICKLED = Path(__file__).parent / "pickled"
FIELDS = ["f0", "f1", "f2", "f3"]
WEIGHTS = [0.8, -0.5, 0.3, 0.1]
CANARY_WEIGHT = 20.0


@pytest.fixture
def pickled_models(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``yardtest_models``, importable here and in the server processes."""
    monkeypatch.syspath_prepend(str(PICKLED))
    monkeypatch.setenv("PYTHONPATH", str(PICKLED))
    return importlib.import_module("yardtest_models")


@dataclass
class Answer:
    status: int | str
    version: str | None
    sent: float  # wall clock, to compare with the rollback event's time


class VariedLoad:
    """Keep-alive clients posting one-row requests drawn in turn from ``bodies``."""

    def __init__(self, url: str, path: str, bodies: list[bytes], connections: int = 6) -> None:
        self.url, self.path, self.bodies, self.connections = url, path, bodies, connections
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    def stop(self) -> list[Answer]:
        self._stop.set()
        self._thread.join(30)
        return self.answers

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.connections)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=30) as client:
            await asyncio.gather(*[self._client(client, n) for n in range(self.connections)])

    async def _client(self, client: httpx.AsyncClient, number: int) -> None:
        count = number
        headers = {"content-type": "application/json"}
        while not self._stop.is_set():
            body = self.bodies[count % len(self.bodies)]
            count += self.connections
            sent = time.time()
            try:
                response = await client.post(self.path, content=body, headers=headers)
                answer = Answer(response.status_code, response.headers.get("x-model-version"), sent)
            except httpx.TransportError as error:
                answer = Answer(type(error).__name__, None, sent)
            self.answers.append(answer)


def test_failing_canary_is_rolled_back_under_load(
    model_home: Path,
    tmp_path: Path,
    launch_server: Any,
    pickled_models: Any,
    wait_until: Callable[..., Any],
) -> None:
    home = Path(shutil.copytree(model_home, tmp_path / "home"))
    rng = np.random.default_rng(3)
    features = rng.normal(size=(2000, 4)).astype(np.float32)
    threshold = float(np.quantile(features[:, 0], 0.8))  # 20% of inputs make it raise
    safe = features[features[:, 0] <= threshold]  # registration predicts on its data
    with Yard(load_settings(home=home, environ={})) as yard:
        registry = yard.registry
        champion = pickled_models.Linear(WEIGHTS)
        canary = pickled_models.RaisesAbove(WEIGHTS, threshold)
        for model in (champion, canary):
            registry.register(
                "risky", model, safe, feature_names=FIELDS, flavour="pickle", trusted=True
            )
        DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry).create("risky", "risky", 1)
    server = launch_server(
        home, ["fraud@champion"], workers=2, trusted=True, settings={"poll_interval_s": "0.25"}
    )
    bodies = [
        orjson.dumps(
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": row}]}
        )
        for row in features[:500].tolist()
    ]
    load = VariedLoad(server.url, "/v2/models/risky/infer", bodies)
    started = time.monotonic()
    assert wait_until(lambda: len(load.answers) >= 200, 30), "no traffic before the rollout"

    policy = RolloutPolicy(step_weights=(CANARY_WEIGHT, 50, 100), interval_s=2.0, min_requests=20)
    with Yard(load_settings(home=home, environ={})) as yard:
        store = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
        rollout_at = time.time()
        RolloutController(store).start("risky", 2, policy, actor="test")
        rolled_back = wait_until(lambda: store.events("risky", "rollout.rollback"), 30)
        assert rolled_back, "the controller did not roll the canary back in 30 s"
        rollback = store.events("risky", "rollout.rollback")[0]
        final = store.get("risky")
    settled = rollback.at + 1.0  # a poll interval and an answer's time, generously
    # traffic after the rollback: enough answers sent once every worker has seen it
    assert wait_until(lambda: sum(a.sent > settled for a in load.answers) > 150, 30)
    answers = load.stop()
    assert time.monotonic() - started < 45

    assert rollback.actor == "rollout-controller"
    assert "clear breach" in rollback.reason, rollback.reason
    assert final.config.canary is None
    assert final.rollout is not None
    assert final.rollout.state.phase.value == "rolled_back"

    # Nothing failed before the rollout; only a request still in flight when it began (sent
    # within the second before) may have reached the canary, and failed there.
    in_flight = [a for a in answers if rollout_at - 1.0 < a.sent < rollout_at and a.version == "2"]
    before = [a for a in answers if a.sent < rollout_at and a not in in_flight]
    assert [a for a in before if a.status != 200] == []
    during = [a for a in answers if rollout_at <= a.sent < rollback.at]
    failed = [a for a in during if a.status != 200]
    assert failed, "the canary never answered before the rollback"
    assert {a.version for a in failed} == {"2"}  # every failure came from the canary
    assert all(a.status == 500 for a in failed)
    # No failure beyond the canary's share: at most the requests it answered, ~20% of all.
    on_canary = sum(a.version == "2" for a in during)
    assert len(failed) <= on_canary
    assert len(failed) / len(during) <= on_canary / len(during) < (CANARY_WEIGHT + 8) / 100

    after = [a for a in answers if a.sent > settled]
    assert len(after) > 100
    assert {(a.status, a.version) for a in after} == {(200, "1")}
