"""``modelyard demo fraud --fast`` as a user runs it: the whole story, measured, and a
clean stop on Ctrl-C. The command runs in its own process group, as in a terminal."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelyard.config import load_settings
from modelyard.monitoring import SqlInferenceLogRepository, read_window
from modelyard.yard import Yard

DEMO_TIMEOUT_S = 240  # the fast scenario takes about 80 s here


def modelyard(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    if home is not None:
        env["MODELYARD_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("fraud-demo") / "fd"
    return out, modelyard("demo", "fraud", "--fast", "--out", str(out), "--price-per-hour", "0.2")


def test_the_fast_demo_tells_the_whole_story_with_its_figures(
    demo: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, run = demo
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "portfolio" in run.stdout
    assert "report:" in run.stdout
    record = json.loads((out / "report" / "record.json").read_text())
    assert record["acts"] == {
        "drift_alert": True,
        "retrain": True,
        "promotion": True,
        "rollback": True,
    }
    assert not record["interrupted"]
    story = record["story"]
    kinds = [row["kind"] for row in story]
    # In order: the alert, the retrain registered past the gate, its promotion, then the
    # broken candidate's rollback.
    order = [
        kinds.index("alert"),
        kinds.index("retrain.registered"),
        kinds.index("rollout.promote"),
        kinds.index("rollout.rollback"),
    ]
    assert order == sorted(order)
    alert = story[kinds.index("alert")]
    assert 0 < alert["figures"]["drift_share"] <= 1
    assert alert["figures"]["requests"] > 0
    registered = story[kinds.index("retrain.registered")]
    assert "beat v1 on roc_auc" in registered["text"]
    assert registered["figures"]["holdout_rows"] >= 100
    promoted = story[kinds.index("rollout.promote")]
    assert promoted["figures"]["canary.requests"] > 0
    rollback = story[kinds.index("rollout.rollback")]
    assert "decisions differ" in rollback["text"]

    versions = {v["version"]: v for v in record["versions"]}
    assert versions[1]["outcome"] == "first champion, replaced"
    assert versions[2]["outcome"] == "promoted, serving"
    assert versions[3]["outcome"] == "rolled back"
    # The inverted labels flag nearly everything; the retrained model catches more of the
    # new fraud than the first champion did.
    broken = versions[3]["after_drift"]
    assert broken["flagged"] > 0.5 * broken["answered"]
    first, retrained = versions[1]["after_drift"], versions[2]["after_drift"]
    assert first["fraud_seen"] > 0
    assert retrained["fraud_seen"] > 0
    assert all(v["answered"] > 0 for v in versions.values())

    # Measured, not constants: traffic, latency, throughput and cost agree with each
    # other, with /metrics and with the inference log left in the home.
    serving, cost = record["serving"], record["cost"]
    assert serving["live_answered"] > 1_000
    assert serving["live_failed"] == 0
    assert 0 < serving["live_p50_ms"] <= serving["live_p99_ms"]
    assert 0 < serving["server_p50_ms"] <= serving["server_p99_ms"]
    assert serving["load_throughput_per_s"] > 0
    assert serving["load_errors"] == 0
    assert serving["requests_in_metrics"] == serving["requests_logged"]
    assert serving["requests_logged"] >= serving["live_answered"] + serving["load_requests"] - 10
    assert cost["price_per_hour"] == 0.2
    assert cost["per_1000_predictions"] == pytest.approx(
        0.2 / (serving["load_throughput_per_s"] * 3600) * 1000
    )
    assert sum(v["answered"] for v in versions.values()) == serving["live_answered"]
    with Yard(load_settings(home=out / "home", environ={})) as yard:
        logged = read_window(SqlInferenceLogRepository(yard.db), "fraud", 0, math.inf)
        assert logged.requests == serving["requests_logged"]

    # The report: Markdown and one self-contained HTML page with its plots.
    markdown = (out / "report" / "report.md").read_text()
    assert "| model v2 | promoted, serving" in markdown
    assert f"{serving['requests_logged']:,} requests in the inference log" in markdown
    page = (out / "report" / "report.html").read_text()
    assert page.count("<svg") >= 3
    assert "<script" not in page
    assert "http://" not in page
    assert "https://" not in page


def test_the_home_the_demo_leaves_is_readable_by_the_cli(
    demo: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = demo
    history = modelyard("history", "fraud", "--json", home=out / "home")
    assert history.returncode == 0, history.stderr
    stories = json.loads(history.stdout)
    assert [s["outcome"] for s in stories] == ["promoted"]
    versions = modelyard("versions", "fraud", home=out / "home")
    assert versions.returncode == 0, versions.stderr


def test_a_second_run_replaces_only_a_folder_the_demo_made(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    refused = modelyard("demo", "fraud", "--fast", "--out", str(mine))
    assert refused.returncode == 2
    assert "was not made by the fraud demo" in refused.stderr
    assert (mine / "notes.txt").read_text() == "keep me"


def running_in_group(pgid: int) -> list[str]:
    """The processes of group ``pgid`` that have not exited (zombies left out)."""
    running = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            running.append(status.parent.name)
    return running


def test_ctrl_c_stops_the_server_the_worker_and_the_traffic_cleanly(
    tmp_path: Path, wait_until: Callable[..., Any]
) -> None:
    out = tmp_path / "fd"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "modelyard", "demo", "fraud", "--fast", "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    lines: list[str] = []
    assert process.stdout is not None

    def live() -> bool:
        line = process.stdout.readline() if process.poll() is None else ""  # type: ignore[union-attr]
        lines.append(line)
        return "live: before the drift" in line

    try:
        assert wait_until(live, 60), "".join(lines)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, "".join(lines) + rest
    assert "stopped" in rest
    # Nothing of the group is left running: not the server, not the worker. (A process
    # that has exited but not yet been reaped by init, a zombie, holds nothing.)
    assert running_in_group(process.pid) == []
    history = modelyard("history", "fraud", "--events", home=out / "home")
    assert history.returncode == 0, history.stderr
    deployment = modelyard("rollout", "status", "fraud", home=out / "home")
    assert deployment.returncode == 0, deployment.stderr
