"""The demo's processes: ``modelyard serve`` and ``modelyard worker`` over one home, as a
user would start them, with the demo's pace in their ``MODELYARD_*`` settings.

Each runs as a child process with its output in ``<home>/logs``. ``stop`` asks each to
stop (SIGTERM: answered requests finish, a running retrain is left resumable) and kills
what is still there after a grace period, so neither outlives the demo; a Ctrl-C in the
terminal also reaches them (same process group) and they stop the same way.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelyard.config.settings import environment_without_settings
from modelyard.errors import ModelyardError

__all__ = ["Services", "free_port"]

_READY_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    output: Path

    def tail(self, lines: int = 20) -> str:
        text = self.output.read_text(errors="replace") if self.output.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Services:
    """A server for ``deployment`` and a retraining worker on ``home``; ``start`` them, then
    ``stop`` (or use as a context manager)."""

    def __init__(self, home: Path, deployment: str, settings: dict[str, str]) -> None:
        self.home = home
        self.deployment = deployment
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._settings = settings
        self._children: list[_Child] = []

    def _environment(self) -> dict[str, str]:
        env = environment_without_settings()
        env["MODELYARD_HOME"] = str(self.home)
        env.update(self._settings)
        return env

    def _spawn(self, name: str, args: list[str]) -> _Child:
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        output = logs / f"demo-{name}.out"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "modelyard", *args],
                env=self._environment(),
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        child = _Child(name, process, output)
        self._children.append(child)
        return child

    def start(self) -> None:
        """Start both and wait until the server answers for the deployment."""
        self._spawn(
            "server",
            ["serve", "--model", self.deployment, "--port", str(self.port), "--workers", "1"],
        )
        self._spawn("worker", ["worker", "--metrics-port", "0"])
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            for child in self._children:
                if child.process.poll() is not None:
                    raise ModelyardError(
                        f"the demo's {child.name} exited with {child.process.returncode}:\n"
                        f"{child.tail()}"
                    )
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise ModelyardError(f"the demo's server was not ready in {_READY_TIMEOUT_S:g} s")

    def metrics_text(self) -> str:
        """The server's ``/metrics`` (Prometheus text)."""
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def stop(self, grace_s: float = 20.0) -> dict[str, int | None]:
        """SIGTERM each child, wait up to ``grace_s``, kill what remains; exit codes."""
        for child in self._children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        codes: dict[str, int | None] = {}
        for child in self._children:
            try:
                codes[child.name] = child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                codes[child.name] = child.process.wait()
        self._children = []
        return codes

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
