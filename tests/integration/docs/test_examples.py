"""Every code example in ``docs/`` and README runs, as a reader would paste it, so the
pages cannot rot.

Each page runs on its own: a fresh working directory, a fresh modelyard home
(``MODELYARD_HOME``), its blocks in order.

- ```` ```python ````: executed in one namespace for the page (later blocks see earlier
  names); a failure points at the page and line.
- ```` ```bash ````: run by ``bash -euo pipefail`` with the project's ``modelyard`` on
  ``PATH``; every command must succeed. A line ``export NAME=VALUE`` also holds for the
  page's later blocks. A server started in the background (``modelyard serve ... &``)
  is stopped when the page ends.
- ```` ```json ```` right after a ``bash`` block documents what that block printed: the
  printed JSON must have the same shape (same keys at every level, same list lengths,
  same kinds of values, equal strings and integers but for ``VOLATILE`` keys).
- ```` ```toml ````: a ``modelyard.toml``; ``load_settings`` must accept it.
- A block preceded by ``<!-- docs-test: skip REASON -->`` is not run, and must say why.

Pages say ``127.0.0.1:8000``, the server's default address (and ``127.0.0.1:8001`` for its
gRPC service, started with ``MODELYARD_SERVING__GRPC_PORT=8001``); here each page gets
free ports instead, written into its commands and settings.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from modelyard.config import load_settings
from modelyard.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
# README is the first page a new user reads: its steps run like the site's.
PAGES = [*sorted(p.name for p in DOCS.glob("*.md")), "../README.md"]
RUN = ("python", "bash")
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\b(?P<reason>[^>]*)-->")
DEFAULT_ADDRESS = "127.0.0.1:8000"
DEFAULT_GRPC_ADDRESS = "127.0.0.1:8001"
GRPC_PORT_SETTING = "MODELYARD_SERVING__GRPC_PORT=8001"
BASH_TIMEOUT_S = 240
# Values that differ on every run: ids minted per request, clocks.
VOLATILE = frozenset({"id", "request_id", "received_at", "started_at", "time", "ts"})


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: its language, code and first line (1-based)."""

    language: str
    code: str
    line: int
    skip_reason: str | None


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, in order, with any skip marker just before them."""
    found: list[Block] = []
    pending_skip: str | None = None
    for token in MarkdownIt("commonmark").parse(page.read_text("utf-8")):
        if token.type == "html_block":
            marker = SKIP.search(token.content)
            pending_skip = marker.group("reason").strip() if marker else None
        elif token.type == "fence":
            language = token.info.split()[0] if token.info.strip() else ""
            line = (token.map[0] + 2) if token.map else 0
            found.append(Block(language, token.content, line, pending_skip))
            pending_skip = None
    return found


def same_shape(documented: Any, printed: Any, where: str = "$") -> list[str]:
    """Where ``printed`` differs from ``documented`` in shape or in a stable value."""
    if isinstance(documented, dict):
        if not isinstance(printed, dict):
            return [f"{where}: documented an object, got {printed!r}"]
        if set(documented) != set(printed):
            return [f"{where}: documented keys {sorted(documented)}, got {sorted(printed)}"]
        return [
            problem
            for key in documented
            if key not in VOLATILE
            for problem in same_shape(documented[key], printed[key], f"{where}.{key}")
        ]
    if isinstance(documented, list):
        if not isinstance(printed, list) or len(printed) != len(documented):
            return [f"{where}: documented {len(documented)} items, got {printed!r}"]
        return [
            problem
            for i, (doc, got) in enumerate(zip(documented, printed, strict=True))
            for problem in same_shape(doc, got, f"{where}[{i}]")
        ]
    if isinstance(documented, float) or isinstance(printed, float):
        ok = isinstance(printed, int | float) and not isinstance(printed, bool)
        return [] if ok else [f"{where}: documented a number, got {printed!r}"]
    if documented != printed:
        return [f"{where}: documented {documented!r}, got {printed!r}"]
    return []


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PageRun:
    """The state of one page's run: its directory, environment, namespace and shells."""

    def __init__(self, page: Path, workdir: Path) -> None:
        self.page = page
        self.workdir = workdir
        self.address = f"127.0.0.1:{_free_port()}"
        self.grpc_port = _free_port()
        bin_dir = str(Path(sys.executable).parent)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
        self.env.update(
            {
                "PATH": f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}",
                "MODELYARD_HOME": str(workdir / ".modelyard"),
                "MODELYARD_SERVING__PORT": self.address.rsplit(":", 1)[1],
                # The test machine has two cores: one worker starts in half the time.
                "MODELYARD_SERVING__WORKERS": "1",
                "NO_COLOR": "1",
            }
        )
        self.namespace: dict[str, Any] = {"__name__": "__docs__"}
        self.shells: list[subprocess.Popen[str]] = []
        self.last_output: str | None = None

    def _code(self, block: Block) -> str:
        return (
            block.code.replace(DEFAULT_ADDRESS, self.address)
            .replace(DEFAULT_GRPC_ADDRESS, f"127.0.0.1:{self.grpc_port}")
            .replace(GRPC_PORT_SETTING, f"MODELYARD_SERVING__GRPC_PORT={self.grpc_port}")
        )

    def python(self, block: Block) -> None:
        # Leading newlines keep tracebacks on the page's own line numbers.
        source = "\n" * (block.line - 1) + self._code(block)
        exec(compile(source, str(self.page), "exec"), self.namespace)
        self.last_output = None

    def bash(self, block: Block) -> None:
        for name, value in re.findall(r"^export (\w+)=(\S+)", block.code, re.MULTILINE):
            self.env[name] = value
        # A session of its own, so that a server it leaves in the background is stopped
        # with the page (bash without job control keeps its children in its group).
        # Output goes to files and bash's own exit is awaited: a server it leaves running
        # in the background would hold a pipe open until the page ends.
        out_path, err_path = self.workdir / ".bash.out", self.workdir / ".bash.err"
        with out_path.open("w") as out_file, err_path.open("w") as err_file:
            shell = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", self._code(block)],
                cwd=self.workdir,
                env=self.env,
                stdout=out_file,
                stderr=err_file,
                text=True,
                start_new_session=True,
            )
        self.shells.append(shell)
        try:
            shell.wait(timeout=BASH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
        out, err = out_path.read_text(), err_path.read_text()
        assert shell.returncode == 0, (
            f"{self.page.name}:{block.line}: bash exited {shell.returncode}\n"
            f"--- stdout\n{out}\n--- stderr\n{err}"
        )
        self.last_output = out

    def toml(self, block: Block) -> None:
        path = self.workdir / ".modelyard.toml"
        path.write_text(block.code)
        try:
            load_settings(environ={}, toml_path=path)
        except ConfigurationError as error:
            raise AssertionError(f"{self.page.name}:{block.line}: {error}") from error

    def check_output(self, block: Block) -> None:
        assert self.last_output is not None, (
            f"{self.page.name}:{block.line}: a JSON answer documented after no command"
        )
        printed = json.loads(self.last_output)
        problems = same_shape(json.loads(block.code), printed)
        assert not problems, f"{self.page.name}:{block.line}: " + "; ".join(problems)
        self.last_output = None

    def close(self) -> None:
        for shell in self.shells:
            try:
                os.killpg(shell.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for shell in self.shells:
            _wait_group(shell.pid)


def _wait_group(pgid: int, timeout: float = 30.0) -> None:
    """Wait until no process of the group is left, then kill what still is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return


@pytest.fixture
def page_run(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PageRun]:
    run = PageRun(DOCS / request.param, tmp_path)
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("MODELYARD_")]:
        monkeypatch.delenv(key)
    for key, value in run.env.items():
        monkeypatch.setenv(key, value)
    try:
        yield run
    finally:
        run.close()


@pytest.mark.slow
@pytest.mark.parametrize("page_run", PAGES, indirect=True)
def test_every_example_of_the_page_runs(page_run: PageRun) -> None:
    for block in blocks(page_run.page):
        if block.skip_reason is not None:
            continue
        if block.language == "python":
            page_run.python(block)
        elif block.language == "bash":
            page_run.bash(block)
        elif block.language == "json" and page_run.last_output is not None:
            page_run.check_output(block)
        elif block.language == "toml":
            page_run.toml(block)


@pytest.mark.parametrize("page", PAGES)
def test_a_skipped_example_says_why(page: str) -> None:
    for block in blocks(DOCS / page):
        if block.skip_reason is not None:
            assert block.skip_reason, f"{page}:{block.line}: a skipped example must say why"
            assert block.language in RUN, f"{page}:{block.line}: only code is ever skipped"


def test_shapes_are_compared_key_by_key() -> None:
    documented = {"model_name": "iris", "outputs": [{"data": [0.5]}], "id": "a"}
    assert same_shape(documented, {**documented, "id": "b"}) == []
    assert same_shape(documented, {"model_name": "iris", "outputs": [{"data": ["x"]}], "id": "b"})
    assert same_shape(documented, {**documented, "model_name": "other"})
    assert same_shape(documented, {"model_name": "iris", "id": "a"})
