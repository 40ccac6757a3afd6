"""The inference log behind the real server: every answered prediction lands in the
store exactly once, even when the whole server is killed with SIGKILL mid-load;
feedback posted later joins it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from sqlalchemy import select

from modelyard.config import load_settings
from modelyard.loadtest.generator import LoadPlan
from modelyard.monitoring.feedback_join import joined
from modelyard.monitoring.inference_log.payload import Payload
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.store.database import Database
from modelyard.store.schema import inference_batches

from .conftest import Load, fraud_features, load_in_background, workers


def logged_request_ids(home: Path) -> Counter[str]:
    db = Database(load_settings(home=home, environ={}).resolved_database_url)
    try:
        with db.read() as conn:
            payloads = conn.execute(select(inference_batches.c.payload)).scalars().all()
    finally:
        db.dispose()
    return Counter(r.request_id for data in payloads for r in Payload(data).records)


def test_predictions_are_logged_and_feedback_joins(
    fresh_home: Path, launch_server: Callable[..., object], wait_until: Callable[..., Any]
) -> None:
    server = launch_server(fresh_home, ["fraud@champion"])
    rows = fraud_features()[:3]
    body = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [3, 30],
                    "datatype": "FP32",
                    "data": rows.ravel().tolist(),
                }
            ]
        }
    )
    started = time.time()
    with httpx.Client(base_url=server.url, timeout=30) as client:  # type: ignore[attr-defined]
        ids = []
        for n in range(5):
            reply = client.post(
                "/v2/models/fraud/infer",
                content=body,
                headers={"content-type": "application/json", "x-request-id": f"req-{n}"},
            )
            assert reply.status_code == 200
            ids.append(reply.headers["x-request-id"])
        labels = {
            "labels": [{"request_id": i, "row": r, "label": r % 2} for i in ids for r in range(3)]
        }
        for _ in range(3):
            posted = client.post("/v1/feedback", json=labels)
            assert posted.status_code == 200, posted.text
        answer = posted.json()
        assert {k: answer[k] for k in ("received", "stored", "replaced", "unchanged")} == {
            "received": 15,
            "stored": 0,
            "replaced": 0,
            "unchanged": 15,
        }
        assert len(answer["labels"]) == 15
        bad = client.post(
            "/v1/feedback", json={"labels": [{"request_id": "x", "row": -1, "label": 1}]}
        )
        assert bad.status_code == 422
        assert "labels[0].row" in bad.json()["error"]
        metrics = client.get("/metrics").text
    assert 'modelyard_inference_log_records_total{deployment="fraud",outcome="logged"} 5.0' in (
        metrics
    )
    assert "modelyard_inference_log_backlog_bytes" in metrics
    assert wait_until(lambda: set(ids) <= set(logged_request_ids(fresh_home)), 20)
    db = Database(load_settings(home=fresh_home, environ={}).resolved_database_url)
    window = joined(SqlInferenceLogRepository(db), "fraud", started - 1, time.time() + 1)
    db.dispose()
    assert window.requests == 5
    assert window.rows == 15
    assert window.labels is not None
    np.testing.assert_array_equal(window.labels.astype(float), [0, 1, 0] * 5)
    assert set(window.outputs) >= {"label"}


def _infer(client: httpx.Client, request_id: str, rows: int = 2) -> None:
    data = fraud_features()[:rows]
    body = {
        "inputs": [
            {
                "name": "input",
                "shape": [rows, 30],
                "datatype": "FP32",
                "data": data.ravel().tolist(),
            }
        ]
    }
    reply = client.post("/v2/models/fraud/infer", json=body, headers={"x-request-id": request_id})
    assert reply.status_code == 200, reply.text


def _feedback_counts(client: httpx.Client) -> dict[str, float]:
    counts = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("modelyard_feedback_labels_total{"):
            outcome = line.split('outcome="')[1].split('"')[0]
            counts[outcome] = float(line.rsplit(" ", 1)[1])
    return counts


def test_feedback_says_what_each_label_matched_and_pending_labels_expire(
    fresh_home: Path, launch_server: Callable[..., object], wait_until: Callable[..., Any]
) -> None:
    server = launch_server(
        fresh_home,
        ["fraud@champion"],
        environ={"MODELYARD_MONITORING__FEEDBACK_PENDING_S": "3"},
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:  # type: ignore[attr-defined]
        _infer(client, "known-1")
        assert wait_until(lambda: "known-1" in logged_request_ids(fresh_home), 20)
        posted = client.post(
            "/v1/feedback",
            json={
                "labels": [
                    {"request_id": "known-1", "row": 1, "label": 1},
                    {"request_id": "known-1", "row": 2, "label": 1},
                    {"request_id": "typo-1", "label": 0},
                    {"entity_key": "u1", "event_time": 1.0, "label": 1},
                ]
            },
        )
        assert posted.status_code == 200, posted.text
        answer = posted.json()
        assert [label["outcome"] for label in answer["labels"]] == [
            "joined",
            "refused",
            "pending",
            "deferred",
        ]
        assert "row 2 is out of range" in answer["labels"][1]["reason"]
        assert answer["labels"][2]["expires_at"] > time.time()
        assert (answer["stored"], answer["refused"]) == (3, 1)

        # A label may come before its prediction is stored: it waits, then joins late.
        _infer(client, "early-1")
        early = client.post("/v1/feedback", json={"request_id": "early-1", "label": 1})
        assert early.json()["labels"][0]["outcome"] in ("pending", "joined")

        def all_pending_settled() -> bool:
            counts = _feedback_counts(client)
            return counts.get("pending", 0) == counts.get("joined_late", 0) + counts.get(
                "expired", 0
            )

        # early-1 was posted after typo-1, so its wait ends later: wait for both.
        assert wait_until(all_pending_settled, 20)
        counts = _feedback_counts(client)
        assert counts["expired"] == 1.0
        assert counts["refused"] == 1.0
        assert counts["deferred"] == 1.0
        assert counts["joined"] + counts["joined_late"] == 2.0

        required = client.post(
            "/v1/feedback",
            json={"labels": [{"request_id": "typo-2", "label": 1}], "require_known": True},
        )
        assert required.status_code == 404
        assert "'typo-2'" in required.json()["error"]
        assert "labels[0].request_id" in required.json()["error"]
        ok = client.post(
            "/v1/feedback",
            json={"labels": [{"request_id": "known-1", "label": 0}], "require_known": True},
        )
        assert ok.status_code == 200
        assert ok.json()["joined"] == 1
        bad = client.post("/v1/feedback", json={"request_id": "x", "label": 1, "require_known": 1})
        assert bad.status_code == 422
        assert "require_known must be true or false" in bad.json()["error"]


def _kill_tree(pid: int) -> None:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    for child in [pid, *map(int, children.split())]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_kill_9_under_load_loses_no_acknowledged_prediction(
    fresh_home: Path,
    launch_server: Callable[..., object],
    fraud_body: bytes,
    wait_until: Callable[..., Any],
) -> None:
    server = launch_server(fresh_home, ["fraud@champion"], workers=2)
    load = Load(server.url, "/v2/models/fraud/infer", fraud_body, connections=8).start()  # type: ignore[attr-defined]
    assert load.wait_for(lambda outcomes: sum(o.status == 200 for o in outcomes) >= 300, 60)
    _kill_tree(server.process.pid)  # type: ignore[attr-defined]
    server.process.wait(10)  # type: ignore[attr-defined]
    server.stopped = True  # type: ignore[attr-defined]
    outcomes = load.stop()
    acknowledged = {o.request_id for o in outcomes if o.status == 200}
    assert len(acknowledged) >= 300

    launch_server(fresh_home, ["fraud@champion"])  # a restart replays what the store missed
    assert wait_until(lambda: acknowledged <= set(logged_request_ids(fresh_home)), 30)
    logged = logged_request_ids(fresh_home)
    assert all(logged[request_id] == 1 for request_id in acknowledged)


KILL_RATE = 1000.0  # requests/s, open loop
KILL_RUN_S = 5.0


def test_sigkill_of_one_worker_under_load_fails_under_0_1_percent_and_loses_nothing(
    fresh_home: Path, launch_server: Callable[..., Any], fraud_body: bytes, wait_until: Any
) -> None:
    server = launch_server(fresh_home, ["fraud@champion"], workers=2)

    def ready_workers() -> int:
        lines = [orjson.loads(line) for line in server.log_path.read_bytes().splitlines()]
        return len({line["worker"] for line in lines if line["event"] == "worker_ready"})

    assert wait_until(lambda: ready_workers() == 2, 60)  # a worker listens once ready
    before = workers(server.process.pid)
    assert len(before) == 2
    # Few connections: each request in flight on the killed worker (at most one per
    # connection, and one stale keep-alive connection each) fails, and < 0.1% of 5,000
    # requests leaves room for 4 of them: all 4 connections may hash to the victim.
    plan = LoadPlan(
        server.url,
        "/v2/models/fraud/infer",
        fraud_body,
        connections=4,
        rate=KILL_RATE,
        duration_s=KILL_RUN_S,
        keep_header="x-request-id",
    )
    started = time.monotonic()
    running = load_in_background(plan)
    assert wait_until(lambda: time.monotonic() - started > 1.5, 5)
    os.kill(max(before), signal.SIGKILL)
    result = running.result(timeout=KILL_RUN_S + 30)
    acknowledged = {r.header for r in result.responses if 200 <= r.status < 300}
    failed = result.requests - len(acknowledged)
    print(
        f"{result.requests} requests at {result.requests / result.duration_s:.0f}/s, "
        f"{failed} failed ({result.errors}), p99 {result.latency.p99_s * 1e3:.1f} ms"
    )

    assert None not in acknowledged
    assert len(acknowledged) == result.ok  # one distinct id per acknowledged request
    assert result.requests >= 0.9 * KILL_RATE * KILL_RUN_S
    assert failed < 0.001 * result.requests, f"{failed} of {result.requests}: {result.errors}"
    assert wait_until(lambda: len(workers(server.process.pid) - before) == 1, 60), (
        "the killed worker was not replaced"
    )
    # The killed worker's acknowledged records are in its write-ahead log; the
    # supervisor's ingester carries them into the store.
    assert wait_until(lambda: acknowledged <= set(logged_request_ids(fresh_home)), 30), (
        f"{len(acknowledged - set(logged_request_ids(fresh_home)))} acknowledged records lost"
    )
    logged = logged_request_ids(fresh_home)
    assert all(logged[request_id] == 1 for request_id in acknowledged)
