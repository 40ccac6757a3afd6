"""Models that really hang, on real servers: the server keeps answering.

``HangsAbove`` never returns from a batch whose feature 0 is above 100 (warm-up and
registration use data far below it): on a thread (5 ms a call at warm-up) or on the
event loop (fast at warm-up). Two workers, and one: the supervisor watches either.
"""

from __future__ import annotations

import importlib
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from modelyard.config import load_settings
from modelyard.yard import Yard

from .conftest import workers

PICKLED = Path(__file__).parent / "pickled"
FIELDS = ["f0", "f1", "f2", "f3"]
WEIGHTS = [0.8, -0.5, 0.3, 0.1]
TIMEOUT_S = 1.0


@pytest.fixture
def pickled_models(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``yardtest_models``, importable here and in the server processes."""
    monkeypatch.syspath_prepend(str(PICKLED))
    monkeypatch.setenv("PYTHONPATH", str(PICKLED))
    return importlib.import_module("yardtest_models")


def body(first: float) -> bytes:
    row = [first, 0.2, 0.3, 0.4]
    return orjson.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": row}]}
    )


def hanging_home(model_home: Path, tmp_path: Path, models: Any, seconds: float) -> Path:
    """``stuck`` (hangs above 100; ``seconds`` a call otherwise) and ``fine``."""
    home = Path(shutil.copytree(model_home, tmp_path / "home"))
    features = np.random.default_rng(5).normal(size=(200, 4)).astype(np.float32)
    with Yard(load_settings(home=home, environ={})) as yard:
        for name, model in (
            ("stuck", models.HangsAbove(WEIGHTS, 100.0, seconds)),
            ("fine", models.Linear(WEIGHTS)),
        ):
            yard.registry.register(
                name, model, features, feature_names=FIELDS, flavour="pickle", trusted=True
            )
    return home


def events(log_path: Path, name: str) -> list[dict[str, Any]]:
    lines = log_path.read_bytes().splitlines() if log_path.exists() else []
    return [e for e in map(orjson.loads, lines) if e.get("event") == name]


def post(url: str, model: str, payload: bytes, timeout: float = 5.0) -> int | str:
    """A request on a new connection: its status, or the transport error's name."""
    try:
        response = httpx.post(
            f"{url}/v2/models/{model}/infer",
            content=payload,
            headers={"content-type": "application/json"},
            timeout=timeout,
        )
    except httpx.TransportError as error:
        return type(error).__name__
    return response.status_code


def test_a_model_hung_on_its_thread_gets_504_and_its_worker_is_replaced(
    model_home: Path,
    tmp_path: Path,
    launch_server: Any,
    pickled_models: Any,
    wait_until: Callable[..., Any],
) -> None:
    home = hanging_home(model_home, tmp_path, pickled_models, seconds=0.005)
    server = launch_server(
        home,
        ["stuck/1", "fine/1"],
        workers=2,
        trusted=True,
        settings={"request_timeout_s": str(TIMEOUT_S), "model_hang_limit_s": "3"},
    )
    loaded = {e["model"]: e["runs_on"] for e in events(server.log_path, "model_loaded")}
    assert loaded == {"stuck": "thread", "fine": "loop"}
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        started = time.monotonic()
        hung = client.post("/v2/models/stuck/infer", content=body(500.0))
        elapsed = time.monotonic() - started
        assert hung.status_code == 504, hung.text
        assert TIMEOUT_S * 0.99 <= elapsed <= TIMEOUT_S * 1.1, elapsed
        # the same connection, so the same worker, while its thread is still stuck
        assert client.post("/v2/models/fine/infer", content=body(0.1)).status_code == 200
        again = client.post("/v2/models/stuck/infer", content=body(0.1))
        assert again.status_code == 200  # the version went on with a fresh thread
    replaced = wait_until(lambda: events(server.log_path, "worker_replaced"), timeout=15)
    assert [e["reason"] for e in replaced] == ["hung"]
    assert events(server.log_path, "model_hung")[0]["model"] == "stuck"
    assert wait_until(lambda: len(events(server.log_path, "worker_ready")) >= 3, timeout=30)
    assert [post(server.url, "fine", body(0.1)) for _ in range(6)] == [200] * 6
    assert "is stuck (a model call has run for over 3 s)" in server.stderr()


def test_a_model_hung_on_the_event_loop_gets_its_worker_replaced(
    model_home: Path,
    tmp_path: Path,
    launch_server: Any,
    pickled_models: Any,
    wait_until: Callable[..., Any],
) -> None:
    home = hanging_home(model_home, tmp_path, pickled_models, seconds=0.0)
    server = launch_server(
        home,
        ["stuck/1", "fine/1"],
        workers=2,
        trusted=True,
        settings={"request_timeout_s": str(TIMEOUT_S), "loop_stall_limit_s": "1"},
    )
    loaded = {e["model"]: e["runs_on"] for e in events(server.log_path, "model_loaded")}
    assert loaded == {"stuck": "loop", "fine": "loop"}
    started = time.time()  # the JSON log's clock
    assert post(server.url, "stuck", body(500.0), timeout=0.5) == "ReadTimeout"
    # the other worker answers meanwhile (connections hashed to the frozen one wait)
    meanwhile = [post(server.url, "fine", body(0.1), timeout=0.3) for _ in range(8)]
    assert 200 in meanwhile, meanwhile
    replaced = wait_until(lambda: events(server.log_path, "worker_replaced"), timeout=15)
    assert [e["reason"] for e in replaced] == ["frozen"]
    replaced_after = replaced[0]["ts"] - started
    assert 0.8 <= replaced_after < 2.0, replaced_after  # the stall limit, a check, a tick
    assert wait_until(lambda: len(events(server.log_path, "worker_ready")) >= 3, timeout=30)
    assert [post(server.url, "fine", body(0.1)) for _ in range(8)] == [200] * 8
    assert "event loop has not run for" in server.stderr()


def test_one_worker_is_supervised_too_hung_on_its_thread(
    model_home: Path,
    tmp_path: Path,
    launch_server: Any,
    pickled_models: Any,
    wait_until: Callable[..., Any],
) -> None:
    home = hanging_home(model_home, tmp_path, pickled_models, seconds=0.005)
    server = launch_server(
        home,
        ["stuck/1", "fine/1"],
        workers=1,
        trusted=True,
        settings={"request_timeout_s": str(TIMEOUT_S), "model_hang_limit_s": "3"},
    )
    assert post(server.url, "stuck", body(500.0)) == 504
    assert post(server.url, "fine", body(0.1)) == 200  # its other model answers meanwhile
    replaced = wait_until(lambda: events(server.log_path, "worker_replaced"), timeout=15)
    assert [e["reason"] for e in replaced] == ["hung"]
    assert wait_until(lambda: len(events(server.log_path, "worker_ready")) >= 2, timeout=30)
    assert [post(server.url, "fine", body(0.1)) for _ in range(6)] == [200] * 6
    assert post(server.url, "stuck", body(0.1)) == 200  # a fresh worker, a fresh thread


def test_one_worker_is_supervised_too_frozen_on_its_loop(
    model_home: Path,
    tmp_path: Path,
    launch_server: Any,
    pickled_models: Any,
    wait_until: Callable[..., Any],
) -> None:
    home = hanging_home(model_home, tmp_path, pickled_models, seconds=0.0)
    server = launch_server(
        home,
        ["stuck/1", "fine/1"],
        workers=1,
        trusted=True,
        settings={"request_timeout_s": str(TIMEOUT_S), "loop_stall_limit_s": "1"},
    )
    assert post(server.url, "stuck", body(500.0), timeout=0.5) == "ReadTimeout"
    replaced = wait_until(lambda: events(server.log_path, "worker_replaced"), timeout=15)
    assert [e["reason"] for e in replaced] == ["frozen"]
    # the new worker listens on the same socket: the server answers again, unattended
    assert wait_until(lambda: post(server.url, "fine", body(0.1), timeout=2) == 200, timeout=30)
    assert [post(server.url, "fine", body(0.1)) for _ in range(6)] == [200] * 6
    assert "event loop has not run for" in server.stderr()


def test_a_worker_stops_when_its_supervisor_is_killed(
    model_home: Path, tmp_path: Path, launch_server: Any, pickled_models: Any, wait_until: Any
) -> None:
    home = hanging_home(model_home, tmp_path, pickled_models, seconds=0.0)
    server = launch_server(home, ["fine/1"], workers=1, trusted=True)
    (worker,) = workers(server.process.pid)
    server.stop(signal.SIGKILL)
    assert wait_until(lambda: not Path(f"/proc/{worker}").exists(), timeout=15)
    assert events(server.log_path, "supervisor_gone")
