"""The server's safe defaults on a real server: the Host allow-list, JSON-only POST bodies,
CORS off unless configured, error bodies that keep a model's words to the log, and no
listening beyond loopback without a token unless ``--insecure``."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from modelyard.config import load_settings
from modelyard.yard import Yard

PICKLED = Path(__file__).parent / "pickled"
INFER = "/v2/models/fraud/infer"
WRITE_PATHS = (INFER, "/v1/models/fraud:predict", "/v1/feedback", "/v1/features/push")


def test_a_request_for_another_host_is_refused(server: Any, fraud_body: bytes) -> None:
    json = {"content-type": "application/json"}
    refused = httpx.post(
        f"{server.url}{INFER}",
        content=fraud_body,
        headers={**json, "host": "rebound.attacker.example", "x-request-id": "rebind-1"},
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "error": refused.json()["error"],
        "code": "host_not_allowed",
        "request_id": "rebind-1",
    }
    assert "ALLOWED_HOSTS" in refused.json()["error"]
    port = server.url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        answer = httpx.post(
            f"{server.url}{INFER}", content=fraud_body, headers={**json, "host": host}
        )
        assert answer.status_code == 200, host
    assert httpx.post(f"{server.url}{INFER}", json=orjson.loads(fraud_body)).status_code == 200


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_every_post_route_refuses_bodies_not_declared_json(
    server: Any, fraud_body: bytes, content_type: str | None
) -> None:
    # A browser's request (it sends Origin) must declare its type; see the next test.
    headers = {"origin": "https://page.example"}
    if content_type is not None:
        headers["content-type"] = content_type
    for path in WRITE_PATHS:
        answer = httpx.post(f"{server.url}{path}", content=fraud_body, headers=headers)
        assert answer.status_code == 415, (path, answer.text)
        assert answer.json()["code"] == "unsupported_media_type"
        assert "application/json" in answer.json()["error"]


def test_a_client_that_is_no_browser_may_leave_the_type_out(server: Any, fraud_body: bytes) -> None:
    # tritonclient's JSON mode sends no Content-Type, and no Origin: no web page sent it
    assert httpx.post(f"{server.url}{INFER}", content=fraud_body).status_code == 200


def test_cors_is_off_by_default(server: Any, fraud_body: bytes) -> None:
    origin = {"origin": "https://page.example", "content-type": "application/json"}
    answer = httpx.post(f"{server.url}{INFER}", content=fraud_body, headers=origin)
    assert answer.status_code == 200
    assert not [h for h in answer.headers if h.lower().startswith("access-control-")]
    preflight = httpx.options(
        f"{server.url}{INFER}",
        headers={"origin": "https://page.example", "access-control-request-method": "POST"},
    )
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_answers_configured_origins_only(
    model_home: Path, launch_server: Any, fraud_body: bytes
) -> None:
    server = launch_server(
        model_home, ["fraud@champion"], settings={"cors_origins": "https://app.example"}
    )
    preflight = httpx.options(
        f"{server.url}{INFER}",
        headers={"origin": "https://app.example", "access-control-request-method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    json = {"content-type": "application/json"}
    allowed = httpx.post(
        f"{server.url}{INFER}",
        content=fraud_body,
        headers={**json, "origin": "https://app.example"},
    )
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    other = httpx.post(
        f"{server.url}{INFER}",
        content=fraud_body,
        headers={**json, "origin": "https://evil.example"},
    )
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers


@pytest.fixture
def pickled_models(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``yardtest_models``, importable here and in the server processes."""
    monkeypatch.syspath_prepend(str(PICKLED))
    monkeypatch.setenv("PYTHONPATH", str(PICKLED))
    return importlib.import_module("yardtest_models")


def test_a_model_error_is_a_500_without_its_text_but_the_log_has_it(
    model_home: Path, tmp_path: Path, launch_server: Any, pickled_models: Any, wait_until: Any
) -> None:
    home = Path(shutil.copytree(model_home, tmp_path / "home"))
    features = np.random.default_rng(5).normal(size=(200, 4)).astype(np.float32)
    safe = features[features[:, 0] <= 0.5]
    with Yard(load_settings(home=home, environ={})) as yard:
        model = pickled_models.RaisesAbove([0.8, -0.5, 0.3, 0.1], 0.5)
        yard.registry.register(
            "risky",
            model,
            safe,
            feature_names=["f0", "f1", "f2", "f3"],
            flavour="pickle",
            trusted=True,
        )
    server = launch_server(home, ["risky"], trusted=True)
    body = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [2, 0, 0, 0]}]
    }
    answer = httpx.post(
        f"{server.url}/v2/models/risky/infer", json=body, headers={"x-request-id": "boom-1"}
    )
    assert answer.status_code == 500
    error = answer.json()
    assert (error["code"], error["request_id"]) == ("model_failed", "boom-1")
    for leak in ("cannot cope", "ValueError", "Traceback", "yardtest_models", str(PICKLED)):
        assert leak not in answer.text

    def logged() -> list[dict[str, Any]]:
        if not server.log_path.exists():
            return []
        return [
            e
            for e in map(orjson.loads, server.log_path.read_bytes().splitlines())
            if e.get("request_id") == "boom-1" and e.get("event") == "request"
        ]

    lines = wait_until(logged, 10)
    assert lines[0]["code"] == "model_failed"
    assert "ValueError: feature 0 above 0.500: this version cannot cope" in lines[0]["error"]


def run_serve(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["MODELYARD_HOME"] = str(home)
    command = [str(Path(sys.executable).with_name("modelyard")), "serve", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def test_listening_beyond_loopback_without_a_token_is_refused(model_home: Path) -> None:
    refused = run_serve(model_home, "--host", "0.0.0.0", "--port", "0", "--model", "fraud")
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "refusing to listen on 0.0.0.0 without a token" in line
    assert "MODELYARD_SERVING__TOKEN" in line
    assert "--insecure" in line


def test_insecure_lets_the_server_listen_on_every_interface(
    model_home: Path, launch_server: Any, fraud_body: bytes
) -> None:
    server = launch_server(
        model_home, ["fraud@champion"], settings={"host": "0.0.0.0"}, insecure=True
    )
    assert "WARNING: listening on 0.0.0.0 with no token" in server.stderr()
    answer = httpx.post(
        f"{server.url}{INFER}", content=fraud_body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200
