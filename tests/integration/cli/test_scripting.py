"""The command line in scripts, from a fresh home: ``--json`` everywhere, tables never cut
when piped, ``--no-color``, one behaviour for an unknown name, and empty results that
say why. Each test holds one of the inconsistencies issue 20 found."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
import typer
from sklearn.ensemble import RandomForestClassifier

from modelyard.cli.main import app, main
from modelyard.config import Settings
from modelyard.monitoring import SqlInferenceLogRepository, write_records
from modelyard.yard import Yard

# Commands that print no data (they serve, run, remove or narrate): no --json to add.
WITHOUT_DATA = {
    "serve",
    "ui",
    "worker",
    "retraining remove",
    "monitor alerts remove",
    "demo quickstart",
}


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def ok_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    code, out, err = run_cli([*args, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def home(
    sqlite_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
) -> Settings:
    """A new user's home: one model (and its run), nothing deployed; a pipe, not a terminal."""
    monkeypatch.setenv("MODELYARD_HOME", str(sqlite_settings.home))
    for name in ("COLUMNS", "NO_COLOR", "FORCE_COLOR", "MODELYARD_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with Yard(sqlite_settings) as yard:
        with yard.start_run("train", seed=1, params={"depth": 6}) as run:
            run.log_metric("auc", 0.93)
        yard.register_model("fraud", forest, classification_data[0], run=run)
    return sqlite_settings


def log_traffic(
    settings: Settings,
    forest: RandomForestClassifier,
    features: np.ndarray,
    requests: int,
    *,
    shift: float = 0.0,
    deployment: str = "api",
) -> None:
    """``requests`` answered requests of two rows each in the last ten minutes, every
    feature shifted by ``shift``."""
    now = time.time()
    rng = np.random.default_rng(7)
    logged = []
    for i in range(requests):
        x = features[rng.integers(0, len(features), 2)] + shift
        probabilities = forest.predict_proba(x)
        logged.append(
            {"request_id": f"req{i}", "ts": now - 600 + i * 500 / requests,
             "deployment": deployment, "model": "fraud", "version": 1, "arm": "champion",
             "status": 200, "latency_ms": 5.0, "rows": 2,
             "inputs": {f"f{j}": x[:, j] for j in range(x.shape[1])},
             "outputs": {"label": probabilities.argmax(axis=1), "probabilities": probabilities}}
        )  # fmt: skip
    with Yard(settings) as yard:
        write_records(SqlInferenceLogRepository(yard.db), logged)


def _commands(command: click.Command, prefix: str = "") -> list[tuple[str, click.Command]]:
    group = getattr(command, "commands", None)
    if not group:
        return [(prefix, command)]
    found = []
    for name, child in sorted(group.items()):
        found += _commands(child, f"{prefix} {name}".strip())
    return found


def test_every_command_that_prints_data_takes_json() -> None:
    commands = _commands(typer.main.get_command(app))  # type: ignore[arg-type]
    assert len(commands) > 40
    lacking = [
        name
        for name, command in commands
        if name not in WITHOUT_DATA
        and not any("--json" in getattr(p, "opts", ()) for p in command.params)
    ]
    assert lacking == []


def test_json_documents_from_a_fresh_home(
    home: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ok_json(["init"], capsys)["schema_revision"]
    assert [m["name"] for m in ok_json(["models", "list"], capsys)] == ["fraud"]
    assert ok_json(["models", "show", "fraud"], capsys)["model"]["latest_version"] == 1
    move = ok_json(["alias", "set", "fraud", "champion", "1"], capsys)
    assert (move["alias"], move["to_version"]) == ("champion", 1)
    assert ok_json(["alias", "history", "fraud"], capsys)[0]["alias"] == "champion"
    made = ok_json(["deploy", "api", "--model", "fraud", "--alias", "champion"], capsys)
    assert made["before"] is None
    assert made["after"]["config"]["champion"] == 1
    assert ok_json(["deployments"], capsys)[0]["name"] == "api"
    assert ok_json(["deployments", "api"], capsys)["history"][0]["revision"] == 1
    assert ok_json(["monitor", "alerts", "list", "api"], capsys) == []
    rule = ok_json(
        ["monitor", "alerts", "add", "api", "slow", "--metric", "p99_ms", "--threshold", "50"],
        capsys,
    )
    assert rule["metric"] == "p99_ms"
    assert ok_json(["monitor", "alerts", "history", "api"], capsys) == []
    metrics = ok_json(["monitor", "metrics", "api"], capsys)
    assert (metrics["groups"], metrics["note"]) == ({}, "no traffic logged for 'api' yet")


def test_tables_are_not_cut_when_piped(home: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    alias = "champion-of-the-long-weekend-retrain-candidate"
    assert run_cli(["alias", "set", "fraud", alias, "1"], capsys)[0] == 0
    code, out, _ = run_cli(["models", "list"], capsys)
    assert code == 0
    assert f"{alias}->v1" in out
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", out)
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) > 80


def test_no_color_flag_and_no_color_environment(
    home: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # as if stderr were a terminal
    red = "\x1b[31m"
    assert red in run_cli(["versions", "ghost"], capsys)[2]
    code, _, err = run_cli(["--no-color", "versions", "ghost"], capsys)
    assert (code, red in err, "no registered model named 'ghost'" in err) == (2, False, True)
    monkeypatch.setenv("NO_COLOR", "1")
    assert red not in run_cli(["versions", "ghost"], capsys)[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["monitor", "metrics", "nosuch"], "no deployment named 'nosuch'"),
        (["monitor", "drift", "nosuch"], "no deployment named 'nosuch'"),
        (["monitor", "check", "nosuch"], "no deployment named 'nosuch'"),
        (["monitor", "report", "nosuch"], "no deployment named 'nosuch'"),
        (["monitor", "alerts", "history", "nosuch"], "no deployment named 'nosuch'"),
        (["monitor", "alerts", "list", "nosuch"], "no deployment named 'nosuch'"),
        (
            ["monitor", "alerts", "add", "nosuch", "x", "--metric", "p99_ms", "--threshold", "1"],
            "no deployment named 'nosuch'",
        ),
        (["logs", "--model", "fraud/2", "--stats"], "model 'fraud' has no version 2"),
        (["logs", "--model", "ghost"], "no registered model named 'ghost'"),
        (["deployments", "nosuch"], "no deployment named 'nosuch'"),
        (["rollout", "status", "nosuch"], "no deployment named 'nosuch'"),
        (["ab", "report", "nosuch"], "no deployment named 'nosuch'"),
        (["history", "nosuch"], "no deployment named 'nosuch'"),
        (["models", "show", "ghost"], "no registered model named 'ghost'"),
        (["alias", "history", "ghost"], "no registered model named 'ghost'"),
        (["export", "fraud/7"], "model 'fraud' has no version 7"),
        (["deploy", "api", "--model", "fraud", "--alias", "nope"], "has no alias 'nope'"),
    ],
)
def test_an_unknown_name_is_one_line_and_status_2_in_every_command(
    home: Settings, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    Path(home.resolved_log_path).parent.mkdir(parents=True, exist_ok=True)
    Path(home.resolved_log_path).write_text(
        '{"ts": 1790000000.0, "event": "request", "status": 200, "model": "fraud", '
        '"version": "1", "duration_ms": 1.0}\n'
    )
    code, out, err = run_cli(args, capsys)
    assert code == 2, (out, err)
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""


def test_empty_results_say_why(
    home: Settings,
    capsys: pytest.CaptureFixture[str],
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
) -> None:
    code, out, _ = run_cli(["deployments"], capsys)
    assert (code, out.startswith("no deployments yet: `modelyard deploy")) == (0, True)
    assert run_cli(["deploy", "api", "--model", "fraud", "--version", "1"], capsys)[0] == 0
    code, out, _ = run_cli(["monitor", "metrics", "api"], capsys)
    assert (code, out.strip()) == (0, "no traffic logged for 'api' yet")
    code, out, _ = run_cli(["monitor", "drift", "api"], capsys)
    assert code == 0
    assert "no drift checks of 'api' stored since" in out
    assert "modelyard monitor check api" in out
    code, out, _ = run_cli(["monitor", "check", "api"], capsys)
    assert code == 0
    assert "no traffic logged for 'api' yet: nothing to check" in out

    log_traffic(home, forest, classification_data[0], requests=5)
    code, out, _ = run_cli(["monitor", "check", "api"], capsys)
    assert code == 0
    assert "not checked" in out
    assert "10 row(s) in the window, drift needs at least 20" in out
    found = ok_json(["monitor", "check", "api"], capsys)["versions"]
    assert [(v["version"], v["rows"], v["checked"]) for v in found] == [(1, 10, False)]
    code, out, _ = run_cli(["monitor", "metrics", "api", "--since", "3h", "--until", "2h"], capsys)
    assert code == 0
    assert re.fullmatch(r"no traffic logged for 'api' from .+ to .+ UTC\n", out)


def test_check_and_drift_list_every_drifted_feature_strongest_first(
    home: Settings,
    capsys: pytest.CaptureFixture[str],
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
) -> None:
    assert run_cli(["deploy", "api", "--model", "fraud", "--version", "1"], capsys)[0] == 0
    log_traffic(home, forest, classification_data[0], requests=150, shift=3.0)
    checked = ok_json(["monitor", "check", "api", "--no-deliver"], capsys)["versions"][0]
    report = checked["drift"]["report"]
    order = report["drifted_features"]
    assert len(order) > 5  # the old table stopped at five
    assert [f["name"] for f in checked["drift"]["drifted_features"]] == order

    code, out, _ = run_cli(["monitor", "drift", "api"], capsys)
    assert code == 0
    line = next(row for row in out.splitlines() if "DRIFT" in row)
    assert [line.index(f"{name} (") for name in order] == sorted(
        line.index(f"{name} (") for name in order
    )
    code, out, _ = run_cli(["monitor", "check", "api", "--no-deliver", "--top", "2"], capsys)
    assert code == 0
    assert f"{order[0]} (" in out
    assert f"{order[1]} (" in out
    assert f"{order[2]} (" not in out
    assert f"+{len(order) - 2} more (--top)" in out
    drift = ok_json(["monitor", "drift", "api", "--top", "1"], capsys)["checks"]
    assert [len(c["drifted_features"]) for c in drift] == [1, 1]
