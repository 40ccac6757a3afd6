"""The fraud demo's live phase against a real server: the last two simulated hours
streamed at 720x to the champion trained on the days before them, with the pushes,
labels and figures checked against the server's own stores."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelyard.config import load_settings
from modelyard.demos.fraud import SimulatorConfig, TransactionSimulator
from modelyard.demos.fraud.features import REQUEST_INPUTS, request_columns
from modelyard.demos.fraud.live import AFTER, BEFORE, LiveStats, drive
from modelyard.demos.fraud.offline import DEPLOYMENT, EVENT_TIME, Champion, build_champion
from modelyard.monitoring import joined
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.pipelines import GatePolicy, RetrainPlan
from modelyard.runner.host import RunnerStores
from modelyard.runner.retraining import retraining_loop
from modelyard.yard import Yard

DAY = 86_400.0
HOUR = 3_600.0
LIVE_S = 2 * HOUR
END_HOUR = 16
SPEEDUP = 720.0  # the two hours in 10 s
# Labels known within the window (the simulator's are days away), so that most are posted
# while it runs; the rest are flushed at the end.
LEGIT_DELAY_S = 600.0
FRAUD_DELAY_S = (60.0, 1_800.0)
TOKEN = "live-secret"
PIPELINE = "modelyard.demos.fraud.retraining:pipeline"


@dataclass(frozen=True)
class Live:
    home: Path
    simulator: TransactionSimulator
    start: float  # of the live window; the history ends here
    end: float
    champion: Champion


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Live:
    # The live window is the last 14:00-16:00 UTC, a busy part of the simulated day, in
    # the past: the server reads the features at its own clock's time.
    end = math.floor((time.time() - END_HOUR * HOUR) / DAY) * DAY + END_HOUR * HOUR
    start = end - LIVE_S
    history = start - 3 * DAY
    simulator = TransactionSimulator(
        SimulatorConfig(cards=2_000, merchants=200, fraud_rate=0.02, start=history, seed=5)
    )
    home = tmp_path_factory.mktemp("fraud-live") / "home"
    with Yard(load_settings(home=home, environ={})) as yard:
        champion = build_champion(yard, simulator, history, start, seed=3)
    return Live(home, simulator, start, end, champion)


def wait_until_served(
    url: str, live: Live, wait_until: Callable[..., Any], token: str | None = None
) -> None:
    """The deployment reaches the worker within a poll or two of the server's start."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    ahead = live.simulator.generate(live.start, live.start + HOUR)
    inputs = request_columns(ahead)
    row = {
        "card_id": str(ahead["card_id"][0]),
        EVENT_TIME: float(ahead["event_time"][0]),
        **{n: float(inputs[n][0]) for n in REQUEST_INPUTS},
    }
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:

        def answered() -> bool:
            return bool(
                client.post(
                    f"/v1/models/{DEPLOYMENT}:predict", json={"instances": [row]}
                ).status_code
                == 200
            )

        assert wait_until(answered, 30)
        answer = client.post(f"/v1/models/{DEPLOYMENT}:predict", json={"instances": [row]})
    assert answer.status_code == 200, answer.text


def test_a_live_window_is_scored_pushed_and_labelled(
    live: Live, launch_server: Any, wait_until: Callable[..., Any]
) -> None:
    server = launch_server(live.home, ["fraud"])
    wait_until_served(server.url, live, wait_until)
    snapshots: list[LiveStats] = []
    began = time.time()
    stats = drive(
        server.url,
        live.simulator,
        live.start,
        live.end,
        speedup=SPEEDUP,
        threads=4,
        legit_delay_s=LEGIT_DELAY_S,
        fraud_delay_s=FRAUD_DELAY_S,
        event_time=EVENT_TIME,
        split_at=live.start + HOUR,
        flush_labels=True,
        progress=snapshots.append,
    )
    ended = time.time()
    window = live.simulator.generate(live.start, live.end)
    transactions = len(window["card_id"])
    assert transactions > 300

    # Every request answered, by the champion, in about the window's wall time.
    assert (stats.transactions, stats.requests_sent, stats.answered) == (transactions,) * 3
    assert (stats.failed, dict(stats.failures), stats.stopped) == (0, {}, False)
    assert dict(stats.versions) == {str(live.champion.version.version): transactions}
    assert 0 < stats.latency_p50_ms <= stats.latency_p99_ms
    assert LIVE_S / SPEEDUP <= stats.elapsed_s < LIVE_S / SPEEDUP + 10
    assert stats.requests_per_s == pytest.approx(transactions / stats.elapsed_s)
    assert stats.simulated_time == live.end
    frauds = int(window["is_fraud"].sum())
    assert stats.fraud_seen == frauds
    assert 0 <= stats.fraud_caught <= min(frauds, stats.flagged)
    # The same decisions, by version and side of the split (the window's second hour).
    version = str(live.champion.version.version)
    assert set(stats.decisions) == {(version, BEFORE), (version, AFTER)}
    second_hour = int(np.sum(window["event_time"] >= live.start + HOUR))
    assert stats.decisions[version, AFTER].answered == second_hour
    assert sum(d.answered for d in stats.decisions.values()) == transactions
    assert sum(d.fraud_seen for d in stats.decisions.values()) == frauds
    assert sum(d.flagged for d in stats.decisions.values()) == stats.flagged

    # Progress came along the way, each snapshot no further than the next.
    assert len(snapshots) >= 10
    sent = [s.requests_sent for s in snapshots]
    assert sent == sorted(sent)
    assert 0 < sent[len(sent) // 2] < transactions
    assert snapshots[-1] == stats

    # Every event pushed, in batches, none refused: each card's count over the last 24
    # hours is its history's plus its live transactions'.
    assert stats.events_pushed == transactions
    assert stats.push_failures == 0
    assert transactions / 64 <= stats.pushes_sent < transactions
    day = live.simulator.generate(live.end - DAY, live.end)
    expected = Counter(str(card) for card in day["card_id"])
    cards = sorted({str(card) for card in window["card_id"]})
    with Yard(load_settings(home=live.home, environ={})) as yard:
        online = yard.features.get_online_features(
            {"card_id": cards}, ["card_activity:count_24h"], at=live.end
        )
        assert online.columns["count_24h"] == [expected[card] for card in cards]

        # Every label posted; the server joins them to the predictions it logged.
        assert (stats.labels_sent, stats.labels_pending, stats.label_failures) == (
            transactions,
            0,
            0,
        )
        log = SqlInferenceLogRepository(yard.db)

        def labelled_rows() -> tuple[Any, list[Any]]:
            window = joined(log, DEPLOYMENT, began, ended + 1)
            assert window.labels is not None
            return window, [label for label in window.labels.tolist() if label is not None]

        # the supervisor stores the workers' logs asynchronously
        wait_until(lambda: len(labelled_rows()[1]) >= transactions, 30)
        labelled, known = labelled_rows()
    assert labelled.requests == transactions
    assert len(known) == transactions
    assert sum(float(label) for label in known) == frauds

    # The retraining loop runs the demo's pipeline on this labelled log: a candidate
    # trained on the logged vectors, judged against the champion with its figures.
    stores = RunnerStores(load_settings(home=live.home, environ={}))
    try:
        loop = retraining_loop(stores)
        # log loss: defined however few frauds the newest quarter holds (ROC AUC is not)
        gate = GatePolicy(metric="log_loss")
        loop.configure(RetrainPlan(DEPLOYMENT, PIPELINE, window_days=1.0, gate=gate))
        record = loop.retrain(DEPLOYMENT)
        assert record.status in ("gate_failed", "rolled_out"), record
        assert record.gate is not None
        checks = {c["name"]: c for c in record.gate["checks"]}
        assert checks["holdout_rows"]["value"] == transactions - int(transactions * 0.75)
        assert checks["signature"]["passed"]
        assert 0 < checks["metric"]["value"] < 1
        run = stores.tracker.get_run(record.run_id or "")
        assert (run.status, run.tags["step.labelled_table"]) == ("FINISHED", "computed")
    finally:
        stores.close()


def test_the_stop_signal_ends_a_run_early_and_cleanly(
    live: Live, launch_server: Any, wait_until: Callable[..., Any]
) -> None:
    server = launch_server(live.home, ["fraud"], settings={"token": TOKEN})
    # Without the token, the server refuses what the driver sends.
    refused = httpx.post(f"{server.url}/v1/feedback", json={"labels": []}, timeout=10)
    assert refused.status_code == 401, refused.text
    wait_until_served(server.url, live, wait_until, TOKEN)
    stop = threading.Event()
    timer = threading.Timer(1.5, stop.set)
    timer.start()
    began = time.monotonic()
    try:
        # At 60x the window would take two minutes.
        stats = drive(
            server.url,
            live.simulator,
            live.start,
            live.end,
            speedup=60.0,
            token=TOKEN,
            event_time=EVENT_TIME,
            stop=stop,
        )
    finally:
        timer.cancel()
    took = time.monotonic() - began
    assert stats.stopped
    assert took < 10
    assert 0 < stats.requests_sent < stats.transactions
    assert stats.answered == stats.requests_sent
    assert stats.failed == 0
    assert live.start < stats.simulated_time < live.end
    # The events of the requests sent were pushed (duplicates when the other test ran
    # first).
    assert stats.push_failures == 0
    assert stats.pushes_sent >= 1
    # The simulator's labels are a week away: none was due.
    assert (stats.labels_sent, stats.labels_pending) == (0, stats.answered)
    assert np.isfinite(stats.latency_p99_ms)
