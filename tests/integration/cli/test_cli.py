"""The command line as a new user meets it: tables on success, one line on a mistake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from modelyard.cli.main import main
from modelyard.config import Settings
from modelyard.yard import Yard


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


@pytest.fixture
def home(
    sqlite_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
) -> Settings:
    monkeypatch.setenv("MODELYARD_HOME", str(sqlite_settings.home))
    with Yard(sqlite_settings) as yard:
        with yard.start_run("train", seed=1, params={"depth": 6}) as run:
            run.log_metric("auc", 0.93)
        yard.register_model("fraud", forest, classification_data[0], run=run)
    return sqlite_settings


def test_init_creates_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "new-home"))
    code, out, _ = run_cli(["init"], capsys)
    assert code == 0
    assert "schema revision" in out
    assert (tmp_path / "new-home" / "modelyard.db").exists()


def test_runs_models_versions_and_aliases(
    home: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["runs", "list"], capsys)
    assert code == 0
    assert "train" in out
    assert "FINISHED" in out
    run_id = Yard(home).tracking.search_runs()[0].id
    code, out, _ = run_cli(["runs", "show", run_id[:10]], capsys)
    assert code == 0
    assert "param depth" in out
    assert "0.93" in out
    code, out, _ = run_cli(["alias", "set", "fraud", "champion", "1", "--reason", "first"], capsys)
    assert code == 0
    assert "fraud@champion: (unset) -> v1" in out
    code, out, _ = run_cli(["models", "list"], capsys)
    assert code == 0
    assert "champion->v1" in out
    code, out, _ = run_cli(["versions", "fraud"], capsys)
    assert code == 0
    assert "onnx" in out
    code, out, _ = run_cli(["models", "show", "fraud"], capsys)
    assert code == 0
    assert "first" in out


def test_runs_and_versions_come_a_page_at_a_time_as_json(
    home: Settings,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Yard(home) as yard:
        for i in range(4):
            with yard.start_run(f"more-{i}") as run:
                run.log_metric("auc", 0.5 + i / 10)
        yard.register_model("fraud", forest, classification_data[0])
        yard.register_model("fraud", forest, classification_data[0])
    names: list[str] = []
    token: str | None = None
    while True:
        args = ["runs", "list", "--limit", "2", "--json"]
        code, out, _ = run_cli(args + (["--page-token", token] if token else []), capsys)
        assert code == 0
        page = json.loads(out)
        names += [r["name"] for r in page["runs"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert names == ["more-3", "more-2", "more-1", "more-0", "train"]
    code, out, _ = run_cli(["runs", "list", "--filter", "metrics.auc > 0.65", "--json"], capsys)
    assert [r["name"] for r in json.loads(out)["runs"]] == ["more-3", "more-2", "train"]
    code, out, _ = run_cli(["versions", "fraud", "--limit", "2"], capsys)
    assert "fraud: 2 version(s)" in out
    assert "more: --page-token 2" in out
    code, out, _ = run_cli(
        ["versions", "fraud", "--limit", "2", "--page-token", "2", "--json"], capsys
    )
    page = json.loads(out)
    assert ([v["version"] for v in page["versions"]], page["next_page_token"]) == ([1], None)


def test_export_writes_the_bundle(
    home: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["export", "fraud/1", "--out", str(tmp_path / "bundles")], capsys)
    assert code == 0
    assert (tmp_path / "bundles" / "fraud-v1.modelyard.tar.gz").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["versions", "ghost"], "no registered model named 'ghost'"),
        (["alias", "set", "fraud", "champion", "9"], "model 'fraud' has no version 9"),
        (["alias", "set", "fraud", "Champion!", "1"], "alias 'Champion!' is not allowed"),
        (["export", "fraud@missing"], "model 'fraud' has no alias 'missing'"),
        (["runs", "show", "deadbeef"], "no run with id 'deadbeef'"),
        (["runs", "list", "--page-token", "nope"], "page_token 'nope' is not one"),
        (["versions", "fraud", "--page-token", "v2"], "page_token 'v2' is not one"),
        (["export", "fraud/1", "--edge"], "fraud/1 is not an ONNX image model"),
        (["optimize", "quantize", "fraud/1"], "not trained by modelyard's image pipeline"),
    ],
)
def test_user_errors_print_one_line_and_exit_non_zero(
    home: Settings, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1
