"""``modelyard monitor`` end to end: rules, a check, tables, and the HTML report."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import typer
from sklearn.ensemble import RandomForestClassifier
from sqlalchemy import insert
from typer.testing import CliRunner

from modelyard.cli.context import CliContext
from modelyard.cli.monitor import make_monitor_app, parse_duration
from modelyard.errors import ValidationError
from modelyard.monitoring import SqlInferenceLogRepository, write_records
from modelyard.monitoring.window import Window
from modelyard.store.schema import feedback
from modelyard.yard import Yard

NOW = 1_790_000_000.0


def live_traffic(
    forest: RandomForestClassifier, data: tuple[np.ndarray, np.ndarray], hours: int = 6
) -> Window:
    """Two versions over the last ``hours``; features f0 and f1 shifted in v2's traffic."""
    features, labels = data
    rng = np.random.default_rng(0)
    n = 150 * hours
    pick = rng.integers(0, len(features), n)
    version = np.where(rng.uniform(size=n) < 0.7, 1, 2)
    x = features[pick].copy()
    x[version == 2, :2] += 2.5
    probabilities = forest.predict_proba(x)
    return Window(
        deployment="fraud-api",
        start=NOW - hours * 3600,
        end=NOW,
        request_ids=np.array([f"r{i}" for i in range(n)], dtype=object),
        ts=np.sort(rng.uniform(NOW - hours * 3600, NOW, n)),
        version=version,
        arm=np.where(version == 1, "champion", "canary").astype(object),
        status=np.where(rng.uniform(size=n) < 0.02, 503, 200),
        latency_ms=rng.gamma(2.0, 6.0, n),
        row_request=np.arange(n),
        inputs={f"f{i}": x[:, i] for i in range(x.shape[1])},
        outputs={"label": probabilities.argmax(axis=1), "score": probabilities[:, 1]},
        labels=np.where(rng.uniform(size=n) < 0.5, labels[pick].astype(float), np.nan),
    )


@pytest.fixture
def app(
    yard: Yard,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> typer.Typer:
    monkeypatch.setenv("COLUMNS", "250")
    yard.register_model("fraud", forest, classification_data[0], metrics={"accuracy": 0.97})
    yard.register_model("fraud", forest, classification_data[0], metrics={"accuracy": 0.97})
    # A deployment the alert rules can name before any traffic is logged.
    yard.deployments.create("fraud-api", "fraud", 1)
    traffic = live_traffic(forest, classification_data)

    def read_window(log: object, deployment: str, start: float, end: float) -> Window:
        part = traffic.select((traffic.ts >= start) & (traffic.ts < end))
        return Window(**{**part.__dict__, "deployment": deployment, "start": start, "end": end})

    context = CliContext(yard.settings, yard)
    return make_monitor_app(read_window, open_context=lambda ctx: context, clock=lambda: NOW)


def invoke(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_rules_check_drift_metrics_and_report(app: typer.Typer, tmp_path: Path) -> None:
    code, out = invoke(
        app, "alerts", "add", "fraud-api", "drift", "--metric", "drift_share",
        "--threshold", "0.1", "--cooldown", "30m", "--version", "2",
    )  # fmt: skip
    assert code == 0, out
    assert "rule 'drift' on fraud-api: drift_share > 0.1 (v2)" in out
    code, out = invoke(app, "alerts", "list")
    assert "fraud-api" in out
    assert "1800" in out

    code, out = invoke(app, "check", "fraud-api", "--since", "1h", "--model", "fraud")
    assert code == 0, out
    assert re.search(r"│ 2 +│ \d+ +│ DRIFT", out)
    assert "alert drift: drift_share = " in out

    code, out = invoke(app, "drift", "fraud-api")
    assert code == 0, out
    assert "2 drift check(s)" in out
    assert "f0" in out

    code, out = invoke(app, "metrics", "fraud-api", "--since", "6h")
    assert code == 0, out
    assert re.search(r"│ 1 +│ \d{3}", out)
    assert "accuracy" in out
    code, out = invoke(app, "metrics", "fraud-api", "--by", "arm")
    assert "canary" in out

    target = tmp_path / "reports" / "fraud.html"
    code, out = invoke(app, "report", "fraud-api", "--out", str(target), "--since", "6h",
                       "--model", "fraud")  # fmt: skip
    assert code == 0, out
    assert f"wrote {target}" in out
    assert "DRIFT" in out
    page = target.read_text()
    assert "Monitoring report: fraud-api" in page
    assert page.index("<h3>f0</h3>") < page.index("<h3>f5</h3>")
    assert "http://" not in page

    code, out = invoke(app, "alerts", "history", "fraud-api")
    assert "1 alert(s)" in out
    code, out = invoke(app, "alerts", "remove", "fraud-api", "drift")
    assert code == 0
    assert "removed rule 'drift'" in out


def test_mistakes_print_one_line_and_exit_2(app: typer.Typer) -> None:
    code, out = invoke(app, "alerts", "add", "fraud-api", "x", "--metric", "vibes",
                       "--threshold", "1")  # fmt: skip
    assert code == 2
    assert "unknown alert metric 'vibes'" in out
    assert "Traceback" not in out
    code, out = invoke(app, "alerts", "remove", "fraud-api", "nope")
    assert (code, "no alert rule 'nope'" in out) == (2, True)
    code, out = invoke(app, "report", "unknown-api")
    assert code == 2
    assert "no deployment named 'unknown-api'" in out
    code, out = invoke(app, "metrics", "fraud-api", "--since", "yesterday-ish")
    assert code == 2
    assert "cannot read time 'yesterday-ish'" in out


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "15m", "2h", "1.5d")] == [
        90.0, 90.0, 900.0, 7200.0, 129_600.0,
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="cannot read duration 'soon'"):
        parse_duration("soon")


def test_the_default_reader_reads_the_inference_log_with_feedback(
    yard: Yard,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    features, labels = classification_data
    yard.register_model("fraud", forest, features, metrics={"accuracy": 0.97})
    rng = np.random.default_rng(3)
    logged, joined = [], []
    for i in range(120):
        pick = rng.integers(0, len(features), 2)
        x = features[pick] + (2.0 if i >= 60 else 0.0)
        probabilities = forest.predict_proba(x)
        logged.append(
            {"request_id": f"req{i}", "ts": NOW - 3000 + 20 * i,
             "deployment": "fraud-api", "model": "fraud", "version": 1, "arm": "primary",
             "status": 503 if i % 40 == 0 else 200, "latency_ms": 5.0 + i % 7, "rows": 2,
             "inputs": {f"f{j}": x[:, j] for j in range(8)},
             "outputs": {"label": probabilities.argmax(axis=1), "probabilities": probabilities}}
        )  # fmt: skip
        joined.append(
            {"request_id": f"req{i}", "row": 0, "label": str(int(labels[pick[0]])),
             "received_at": NOW, "dedupe_key": f"k{i}"}
        )  # fmt: skip
    write_records(SqlInferenceLogRepository(yard.db), logged)
    with yard.db.write() as conn:
        conn.execute(insert(feedback), joined)
    context = CliContext(yard.settings, yard)
    app = make_monitor_app(open_context=lambda ctx: context, clock=lambda: NOW)
    code, out = invoke(app, "metrics", "fraud-api")
    assert code == 0, out
    assert re.search(r"│ 1 +│ 120 +│ 240 ", out)
    assert "120 (50%)" in out
    assert "roc_auc" in out
    code, out = invoke(app, "report", "fraud-api", "--out", str(tmp_path / "r.html"))
    assert code == 0, out
    assert "DRIFT" in out
    assert "(ref 0.97)" in out
