"""A real modelyard server in a subprocess on a free port (httpx ``tests/conftest.py`` style).

``launch_server(home, models, ...)`` starts ``python -m modelyard.serving`` with
settings passed as ``MODELYARD_*`` environment variables, waits until
``/v2/health/ready`` answers 200, and stops the server (SIGTERM) at teardown. With
``grpc=True`` it serves the gRPC service too, on another free port (``grpc_target``).
``local_s3`` is an S3-compatible server on loopback (moto's) for the artifact store.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

READY_TIMEOUT_S = 90.0


def poll_until(
    check: Callable[[], Any], timeout: float, between: Callable[[], None] | None = None
) -> Any:
    """Poll ``check`` until it answers something truthy or ``timeout`` seconds pass, calling
    ``between`` (default: a 0.2 s pause) between polls; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if between is None:
            time.sleep(0.2)
        else:
            between()
    return check()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A running server: its URL, process, home, JSON log and captured stderr; its gRPC
    address (``host:port``) when it serves gRPC."""

    url: str
    process: subprocess.Popen[bytes]
    home: Path
    log_path: Path
    stderr_path: Path
    stopped: bool = field(default=False)
    grpc_target: str | None = None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.stopped = True
        return code


def start_server(
    home: Path,
    models: list[str],
    *,
    workers: int = 1,
    settings: dict[str, str] | None = None,
    trusted: bool = False,
    insecure: bool = False,
    environ: dict[str, str] | None = None,
    grpc: bool = False,
) -> ServerProcess:
    """Start a server and wait until it is ready (raise with its stderr if it is not);
    ``settings`` are serving's, ``environ`` any other ``MODELYARD_*`` variables;
    ``trusted`` passes ``--trusted`` (pickle-based models may load), ``insecure``
    ``--insecure`` (a host beyond loopback without a token), ``grpc`` a gRPC port."""
    port = free_port()
    grpc_port = free_port() if grpc else None
    log_path = home / "logs" / f"serving-{port}.jsonl"
    stderr_path = home / f"server-{port}.stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env.update(
        {
            "MODELYARD_HOME": str(home),
            "MODELYARD_SERVING__PORT": str(port),
            "MODELYARD_SERVING__WORKERS": str(workers),
            "MODELYARD_SERVING__LOG_PATH": str(log_path),
        }
    )
    if grpc_port is not None:
        env["MODELYARD_SERVING__GRPC_PORT"] = str(grpc_port)
    for key, value in (settings or {}).items():
        env[f"MODELYARD_SERVING__{key.upper()}"] = value
    env.update(environ or {})
    args = [sys.executable, "-m", "modelyard.serving"]
    for model in models:
        args += ["--model", model]
    if trusted:
        args.append("--trusted")
    if insecure:
        args.append("--insecure")
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(args, env=env, stdout=stderr, stderr=stderr)
    server = ServerProcess(f"http://127.0.0.1:{port}", process, home, log_path, stderr_path)
    if grpc_port is not None:
        server.grpc_target = f"127.0.0.1:{grpc_port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{server.stderr()}")
        try:
            return httpx.get(f"{server.url}/v2/health/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    if poll_until(ready, READY_TIMEOUT_S):
        return server
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"the server was not ready in {READY_TIMEOUT_S} s:\n{server.stderr()}")


@pytest.fixture(scope="session")
def wait_until() -> Callable[..., Any]:
    """``poll_until``: wait on a condition with a deadline, never a fixed sleep."""
    return poll_until


@pytest.fixture(scope="session")
def unused_port() -> Callable[[], int]:
    """``free_port``: a TCP port on loopback nobody listens on (for a process a test starts)."""
    return free_port


@pytest.fixture(scope="session")
def server_starter() -> Callable[..., ServerProcess]:
    """``start_server`` itself, for session-scoped server fixtures (the caller stops them)."""
    return start_server


@pytest.fixture
def launch_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start servers for one test; whatever is still running is stopped afterwards."""
    started: list[ServerProcess] = []

    def launch(home: Path, models: list[str], **kwargs: object) -> ServerProcess:
        server = start_server(home, models, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield launch
    for server in started:
        if not server.stopped:
            server.stop()


@dataclass(frozen=True)
class LocalS3:
    """An S3-compatible server on loopback (moto's), with fake credentials: ``environ``
    points any boto-based client (s3fs included) at it, as a user's ``AWS_*`` variables
    point it at their object store."""

    endpoint: str
    environ: dict[str, str]

    def new_bucket(self) -> str:
        """A fresh, empty bucket's name: each test has its own."""
        bucket = f"modelyard-{uuid.uuid4().hex[:12]}"
        httpx.put(f"{self.endpoint}/{bucket}", timeout=10).raise_for_status()
        return bucket


@pytest.fixture(scope="session")
def local_s3() -> Iterator[LocalS3]:
    """One S3-compatible server for the session (moto's, in a thread of this process)."""
    server_module = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    port = free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    environ = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "modelyard-test",
        "AWS_SECRET_ACCESS_KEY": "modelyard-test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        yield LocalS3(endpoint, environ)
    finally:
        server.stop()


@pytest.fixture
def s3_environ(local_s3: LocalS3, monkeypatch: pytest.MonkeyPatch) -> LocalS3:
    """The local S3 server, with this process's ``AWS_*`` variables pointing at it."""
    for key, value in local_s3.environ.items():
        monkeypatch.setenv(key, value)
    return local_s3
