"""Models to serve, and one shared server for the read-mostly protocol tests.

``fraud`` is a 30-feature random forest classifier (versions 1 and 2, alias
``champion`` on 1); ``price`` is a 5-feature linear regressor.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression

from modelyard.config import load_settings
from modelyard.loadtest.generator import LoadPlan, LoadResult, run_load
from modelyard.yard import Yard

FRAUD_FIELDS = [f"f{i}" for i in range(30)]
PRICE_FIELDS = ["rooms", "area", "age", "floor", "distance"]


def fraud_features() -> np.ndarray:
    features, _ = make_classification(n_samples=2000, n_features=30, random_state=7)
    return features.astype(np.float32)


def build_home(home: Path) -> Path:
    """Register the models into ``home``."""
    features, labels = make_classification(n_samples=2000, n_features=30, random_state=7)
    features = features.astype(np.float32)
    with Yard(load_settings(home=home, environ={})) as yard:
        for seed in (0, 1):
            forest = RandomForestClassifier(n_estimators=30, max_depth=8, random_state=seed)
            yard.registry.register(
                "fraud", forest.fit(features, labels), features, feature_names=FRAUD_FIELDS
            )
        yard.registry.set_alias("fraud", "champion", 1)
        x, y = make_regression(n_samples=500, n_features=5, random_state=1)
        yard.registry.register(
            "price", LinearRegression().fit(x, y), x.astype(np.float32), feature_names=PRICE_FIELDS
        )
    return home


@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the models registered once for the whole session (copy it to change it)."""
    return build_home(tmp_path_factory.mktemp("serving-models"))


@pytest.fixture
def fresh_home(model_home: Path, tmp_path: Path) -> Path:
    """A copy of the session's home, for tests that move aliases or stop servers."""
    return Path(shutil.copytree(model_home, tmp_path / "home"))


@dataclass
class Outcome:
    """One request of a load run: its status (or transport error), version and request id."""

    status: int | str
    version: str | None
    request_id: str
    at: float


class Load:
    """Keep-alive clients posting one request body in a loop on a thread of their own."""

    def __init__(self, url: str, path: str, body: bytes, connections: int = 8) -> None:
        self.url, self.path, self.body, self.connections = url, path, body, connections
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> list[Outcome]:
        self._stop.set()
        self._thread.join(timeout)
        return self.outcomes

    def wait_for(self, done: Callable[[list[Outcome]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self.outcomes):
                return True
            time.sleep(0.05)
        return False

    async def _run(self) -> None:
        limits = httpx.Limits(
            max_connections=self.connections, max_keepalive_connections=self.connections
        )
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=30) as client:
            await asyncio.gather(*[self._client(client, n) for n in range(self.connections)])

    async def _client(self, client: httpx.AsyncClient, number: int) -> None:
        count = 0
        while not self._stop.is_set():
            count += 1
            request_id = f"load-{number}-{count}"
            headers = {"content-type": "application/json", "x-request-id": request_id}
            try:
                response = await client.post(self.path, content=self.body, headers=headers)
                outcome = Outcome(
                    response.status_code,
                    response.headers.get("x-model-version"),
                    request_id,
                    time.monotonic(),
                )
            except httpx.TransportError as error:
                outcome = Outcome(type(error).__name__, None, request_id, time.monotonic())
                await asyncio.sleep(0.01)
            self.outcomes.append(outcome)


@pytest.fixture
def fraud_body() -> bytes:
    """One OIP request of 1 row x 30 features."""
    row = fraud_features()[0].tolist()
    return orjson.dumps(
        {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": row}]}
    )


@pytest.fixture(scope="session")
def server(model_home: Path, server_starter: Callable[..., Any]) -> Iterator[Any]:
    """One server (one worker) for the protocol, bad-input and schemathesis tests; it
    serves the gRPC service too (``server.grpc_target``)."""
    running = server_starter(model_home, ["fraud@champion", "price"], grpc=True)
    yield running
    running.stop()


@pytest.fixture
def start_load() -> Iterator[Callable[..., Load]]:
    """Start a ``Load`` (url, path, body, connections=8); any left running are stopped after."""
    runs: list[Load] = []

    def start(url: str, path: str, body: bytes, connections: int = 8) -> Load:
        load = Load(url, path, body, connections).start()
        runs.append(load)
        return load

    yield start
    for load in runs:
        load.stop()


def load_in_background(plan: LoadPlan) -> Future[LoadResult]:
    """Run the load generator's ``plan`` on a thread of its own (its own event loop) while
    the test acts on the server; the future's result is what the run measured."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load")
    future = pool.submit(run_load, plan)
    pool.shutdown(wait=False)
    return future


def workers(pid: int) -> set[int]:
    """The worker processes of the supervisor ``pid`` (spawned children, not its helpers)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                command = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in command:
                found.add(int(entry))
    return found
