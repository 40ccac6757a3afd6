"""``modelyard requests``: the inference log from the outside, on a real SQLite home."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from modelyard.config import Settings
from modelyard.monitoring import FeedbackItem, FeedbackStore
from modelyard.monitoring.inference_log.storage import write_records
from modelyard.yard import Yard

from .test_cli import run_cli

NOW = 1_800_000_000.0


def record(request_id: str, ts: float, **fields: Any) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "ts": ts,
        "deployment": "bc",
        "model": "bc",
        "version": 1,
        "status": 200,
        "latency_ms": 3.25,
        "rows": 2,
        "inputs": {"age": np.array([0.1, 0.2]), "bmi": np.array([1.5, 2.5])},
        "outputs": {"predict": np.array([150.0, 90.0])},
        **fields,
    }


@pytest.fixture
def home(sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MODELYARD_HOME", str(sqlite_settings.home))
    with Yard(sqlite_settings) as yard:
        write_records(
            yard.inference_log,
            [
                record("req-a", NOW - 30),
                record("req-b", NOW - 20, version=2),
                record("req-c", NOW - 10, status=422, error="invalid_input", inputs=None),
            ],
        )
        FeedbackStore(yard.inference_log).post([FeedbackItem(1, request_id="req-a", row=1)])
    return sqlite_settings


def test_requests_are_listed_newest_first_with_filters(
    home: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["requests", "bc"], capsys)
    assert code == 0
    assert out.index("req-c") < out.index("req-b") < out.index("req-a")
    assert "invalid_input" in out
    code, out, _ = run_cli(["requests", "bc", "--json", "--labelled"], capsys)
    assert code == 0
    [only] = json.loads(out)
    assert (only["request_id"], only["labels"]) == ("req-a", {"1": 1})
    code, out, _ = run_cli(["requests", "bc", "--json", "--status", "error"], capsys)
    assert [r["request_id"] for r in json.loads(out)] == ["req-c"]
    code, out, _ = run_cli(
        ["requests", "bc", "--json", "--version", "2", "--since", str(NOW - 25)], capsys
    )
    assert [r["request_id"] for r in json.loads(out)] == ["req-b"]
    code, out, _ = run_cli(["requests", "bc", "--json", "--unlabelled", "--limit", "1"], capsys)
    assert [r["request_id"] for r in json.loads(out)] == ["req-c"]
    code, out, _ = run_cli(["requests", "bc", "--request-id", "nothing-"], capsys)
    assert code == 0
    assert "no logged requests of 'bc' match" in out


def test_one_request_is_shown_with_inputs_outputs_and_labels(
    home: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["requests", "bc", "--show", "req-a"], capsys)
    assert code == 0
    for text in ("req-a", "3.25", "age", "bmi", "predict", "150.0", "1: 1"):
        assert text in out
    code, out, _ = run_cli(["requests", "bc", "--show", "req-a", "--json"], capsys)
    [detail] = json.loads(out)
    assert detail["inputs"] == {"age": [0.1, 0.2], "bmi": [1.5, 2.5]}
    assert detail["outputs"] == {"predict": [150.0, 90.0]}
    assert detail["labels"] == {"1": 1}


def test_an_unknown_deployment_or_request_is_one_line_and_exit_2(
    home: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["requests", "nosuch"], capsys)
    assert code == 2
    assert out == ""
    assert err.strip().count("\n") == 0
    assert "no deployment named 'nosuch'" in err
    code, _, err = run_cli(["requests", "bc", "--show", "req-zzz"], capsys)
    assert code == 2
    assert "no request 'req-zzz'" in err
    code, _, err = run_cli(["requests", "bc", "--status", "bad"], capsys)
    assert code == 2
    assert "--status must be" in err
