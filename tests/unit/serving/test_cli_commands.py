"""The ``serve`` and ``logs`` command functions, registered on a Typer app as the CLI will."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from modelyard.cli.logs import logs
from modelyard.cli.serve import serve
from modelyard.errors import ConfigurationError, NotFoundError

NOW = 1_800_000_000.0


def app() -> typer.Typer:
    commands = typer.Typer()
    commands.command()(serve)
    commands.command()(logs)
    return commands


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "serving.jsonl"
    lines = [
        {
            "ts": NOW,
            "time": "2027-01-15T08:00:00.000Z",
            "level": "info",
            "event": "request",
            "request_id": "r-1",
            "method": "POST",
            "path": "/v2/models/fraud/infer",
            "status": 200,
            "model": "fraud",
            "version": "3",
            "rows": 1,
            "duration_ms": 1.2,
        },
        {
            "ts": NOW + 1,
            "time": "2027-01-15T08:00:01.000Z",
            "level": "warning",
            "event": "request",
            "request_id": "r-2",
            "method": "POST",
            "path": "/v2/models/fraud/infer",
            "status": 422,
            "model": "fraud",
            "version": "3",
            "rows": 0,
            "duration_ms": 0.4,
            "code": "invalid_input",
            "error": "field 'amount' must be a number, got 'abc' (row 0)",
        },
    ]
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def test_logs_by_request_id(log_file: Path) -> None:
    result = CliRunner().invoke(app(), ["logs", "--file", str(log_file), "--request-id", "r-2"])
    assert result.exit_code == 0, result.output
    assert "422" in result.output
    assert "field 'amount' must be a number" in result.output
    assert "r-1" not in result.output


def test_logs_by_status_as_json(log_file: Path) -> None:
    result = CliRunner().invoke(
        app(), ["logs", "--file", str(log_file), "--status", "2xx", "--json"]
    )
    assert result.exit_code == 0, result.output
    (line,) = result.output.strip().splitlines()
    assert orjson.loads(line)["request_id"] == "r-1"


def test_logs_stats(log_file: Path) -> None:
    result = CliRunner().invoke(app(), ["logs", "--file", str(log_file), "--stats"])
    assert result.exit_code == 0, result.output
    assert "invalid_input" in result.output
    assert "2 matching line(s)" in result.output


def test_logs_without_a_file_is_a_user_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app(), ["logs", "--file", str(tmp_path / "nope.jsonl")])
    assert isinstance(result.exception, NotFoundError)


def test_serve_options() -> None:
    single = typer.Typer()
    single.command()(serve)
    options = {opt for param in typer.main.get_command(single).params for opt in param.opts}
    expected = {"--model", "-m", "--port", "--workers", "--max-batch-wait-us", "--trusted"}
    expected |= {"--backend"}
    assert expected | {"--insecure"} <= options


def test_serve_refuses_an_open_host_without_a_token_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app(), ["serve", "--host", "0.0.0.0"], env={"MODELYARD_HOME": str(tmp_path)}
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigurationError)
    assert "set MODELYARD_SERVING__TOKEN, or pass --insecure" in result.exception.message


def test_serve_refuses_an_unknown_backend_naming_the_setting(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app(), ["serve", "--backend", "k8s"], env={"MODELYARD_HOME": str(tmp_path)}
    )
    assert isinstance(result.exception, ConfigurationError)
    assert result.exception.message == (
        "setting 'serving.backend' must be one of builtin, ray, got 'k8s'"
    )
