"""The dashboard's monitoring and requests pages: their data routes through Starlette's
TestClient over ``create_app`` (a home with logged requests, labels, a stored drift check,
an alert and a retrain's events, built without a server), bad input refused with a clear
404 or 422, and one browser test against a real server: search a request id and see its
payload, open the monitoring page and acknowledge an alert.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from modelyard.config import load_settings
from modelyard.monitoring import FeedbackItem, FeedbackStore
from modelyard.monitoring.drift_job import monitor_cycle
from modelyard.monitoring.feedback_join import joined_parts
from modelyard.monitoring.inference_log.storage import write_records
from modelyard.monitoring.rules import AlertRule
from modelyard.routing.deployment import Event
from modelyard.ui import create_app
from modelyard.ui.context import UiContext

from .conftest import FIELDS, build_dashboard_home, send_traffic

REQUESTS = 240  # logged requests of each version in the last hour


def fill_monitoring_home(home: Path, now: float) -> dict[str, Any]:
    """Logged requests of ``fraud`` v1 (f0 shifted: drift) and v2 over the hour before
    ``now``, labels for a third of them, a failed request, one monitoring pass (a drift
    check per version, a ``drift_share`` alert) and a retrain's events with their gate."""
    settings = load_settings(home=home, environ={})
    ui = UiContext(settings)
    try:
        rng = np.random.default_rng(7)
        records = []
        for version, arm in ((1, "champion"), (2, "canary")):
            for number in range(REQUESTS):
                features = rng.normal(size=len(FIELDS)).astype(np.float32)
                if version == 1:
                    features[0] += 2.5
                score = float(rng.uniform())
                records.append(
                    {
                        "request_id": f"v{version}-{number:04d}",
                        "ts": now - 3500.0 + number * 14.0 + version * 0.5,
                        "deployment": "fraud",
                        "model": "fraud",
                        "version": version,
                        "arm": arm,
                        "status": 200,
                        "latency_ms": 1.0 + number % 7,
                        "rows": 1,
                        "inputs": {name: features[i : i + 1] for i, name in enumerate(FIELDS)},
                        "outputs": {
                            "label": np.array([int(score > 0.5)]),
                            "probabilities": np.array([[1.0 - score, score]]),
                        },
                    }
                )
        failed = {"status": 500, "error": "model_failed: boom", "rows": 1}
        records.append({**records[-1], **failed, "request_id": "broken-1", "ts": now - 30.0})
        write_records(ui.inference_log, records)
        labels = [
            FeedbackItem(int(rng.uniform() > 0.4), request_id=r["request_id"]) for r in records[::3]
        ]
        FeedbackStore(ui.inference_log).post(labels, received_at=now)
        rule = AlertRule("fraud", "drift", "drift_share", 0.0, ">", cooldown_s=60.0)
        cycle = monitor_cycle(
            ui.monitoring,
            ui.yard.registry,
            "fraud",
            now - 3600.0,
            now,
            window_parts=lambda d, s, e: joined_parts(ui.inference_log, d, s, e),
            now=now,
            model_of=ui.model_of,
            rules=[rule],
        )
        gate = {"passed": True, "reason": "beat the champion on roc_auc by 0.04"}
        figures = {
            "gate": gate,
            "candidate": {"roc_auc": 0.91},
            "champion": {"roc_auc": 0.87},
            "holdout_rows": 400,
        }
        events = [
            Event(
                now + 1.0,
                "retrain.started",
                "fraud",
                "drift: drift in f0",
                {"trigger": "drift", "champion": 1, "retrain": 1},
                "retrainer",
            ),
            Event(
                now + 2.0,
                "retrain.registered",
                "fraud",
                "v3 beat v1",
                {**figures, "version": 3, "retrain": 1},
                "retrainer",
            ),
            Event(
                now + 3.0,
                "rollout.advance",
                "fraud",
                "canary within bounds",
                {
                    "verdict": "advance",
                    "canary": 2,
                    "champion": 1,
                    "figures": {"canary_error_rate": 0.0, "canary_p99_ms": 4.2},
                    "checks": [{"name": "error_rate", "passed": True}],
                },
                "controller",
            ),
        ]
        for event in events:
            ui.events.record(event)
        return {
            "checks": {v: r.id for v, r in cycle.drift.items()},
            "alerts": [a.id for a in cycle.alerts],
        }
    finally:
        ui.close()


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    home = build_dashboard_home(tmp_path_factory.mktemp("monitored"))
    return home, fill_monitoring_home(home, time.time())


@pytest.fixture(scope="module")
def client(monitored: tuple[Path, dict[str, Any]]) -> Iterator[TestClient]:
    settings = load_settings(home=monitored[0], environ={})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


# -- monitoring ---------------------------------------------------------------------------


def test_the_monitoring_page_shows_drift_alerts_decisions_and_accuracy(
    client: TestClient, monitored: tuple[Path, dict[str, Any]]
) -> None:
    stored = monitored[1]
    reply = client.get("/ui/api/deployments/fraud/monitoring?span=7200")
    assert reply.status_code == 200, reply.text
    page = reply.json()
    assert page["versions"] == {"champion": 1, "canary": 2, "shadows": []}
    drift = page["drift"]["versions"]["1"]
    assert drift["ids"] == [stored["checks"][1]]
    assert drift["features"][0] == "f0"  # the shifted feature leads
    assert drift["drifted"]["f0"] == [True]
    assert drift["scores"]["f0"][0] > 1.0  # over the effect floor
    assert page["checks"][0]["id"] in stored["checks"].values()
    accuracy = client.get("/ui/api/deployments/fraud/accuracy?span=7200").json()
    assert accuracy["metric"] == "accuracy"
    assert accuracy["reference_metrics"].keys() == {"1", "2"}
    counts = [n for s in accuracy["versions"].values() for n in s["labelled"] if n is not None]
    assert sum(counts) > 0
    values = [v for s in accuracy["versions"].values() for v in s["value"] if v is not None]
    assert values
    assert all(0.0 <= v <= 1.0 for v in values)
    [alert] = [a for a in page["alerts"] if a["id"] in stored["alerts"] and a["version"] == 1]
    assert alert["metric"] == "drift_share"
    assert alert["evidence"]["id"] == stored["checks"][1]
    assert alert["evidence"]["exact"] is True
    decisions = {d["kind"]: d for d in page["decisions"]}
    assert decisions["retrain.started"]["evidence"]["id"] == stored["checks"][1]
    gate = decisions["retrain.registered"]["evidence"]
    assert gate["type"] == "gate"
    assert gate["candidate"] == {"roc_auc": 0.91}
    analysis = decisions["rollout.advance"]["evidence"]
    assert analysis["figures"]["canary_p99_ms"] == 4.2
    assert "alert" not in decisions


def test_a_drift_check_shows_reference_and_live_histograms(
    client: TestClient, monitored: tuple[Path, dict[str, Any]]
) -> None:
    check = monitored[1]["checks"][1]
    reply = client.get(f"/ui/api/deployments/fraud/drift/{check}?top=3")
    assert reply.status_code == 200, reply.text
    page = reply.json()
    assert page["check"]["id"] == check
    assert page["check"]["drifted_features"][0] == "f0"
    names = [h["feature"] for h in page["histograms"]]
    assert names[:3] == [f["name"] for f in page["check"]["features"][:3]]
    first = page["histograms"][0]
    assert first["kind"] == "numeric"
    assert len(first["edges"]) == len(first["live"]) + 1 == len(first["reference"]) + 1
    assert sum(first["live"]) == pytest.approx(1.0)
    assert sum(first["reference"]) == pytest.approx(1.0)
    assert first["live_rows"] == page["sample"]["rows"] == REQUESTS
    # f0 moved 2.5 reference sds: the live mass sits well right of the reference's
    centres = (np.array(first["edges"][:-1]) + np.array(first["edges"][1:])) / 2
    assert centres @ np.array(first["live"]) > centres @ np.array(first["reference"]) + 1.5


def test_acknowledging_an_alert_records_who_and_why(
    client: TestClient, monitored: tuple[Path, dict[str, Any]]
) -> None:
    alert = monitored[1]["alerts"][-1]
    reply = client.post(
        f"/ui/api/deployments/fraud/alerts/{alert}/ack",
        json={"reason": "looking into f0"},
        headers={"origin": "http://testserver"},
    )
    assert reply.status_code == 200, reply.text
    page = client.get("/ui/api/deployments/fraud/monitoring").json()
    [shown] = [a for a in page["alerts"] if a["id"] == alert]
    assert shown["acknowledged"]["reason"] == "looking into f0"
    assert shown["acknowledged"]["actor"] == "dashboard"


# -- requests -----------------------------------------------------------------------------


def test_requests_are_listed_newest_first_a_page_at_a_time(client: TestClient) -> None:
    first = client.get("/ui/api/requests?deployment=fraud&limit=100").json()
    assert first["deployments"] == ["fraud", "quiet"]
    rows = first["requests"]
    assert len(rows) == 100
    assert rows[0]["request_id"] == "broken-1"
    assert [r["ts"] for r in rows] == sorted((r["ts"] for r in rows), reverse=True)
    seen = [r["request_id"] for r in rows]
    cursor = first["next"]
    while cursor:
        page = client.get(f"/ui/api/requests?deployment=fraud&limit=100&cursor={cursor}").json()
        seen += [r["request_id"] for r in page["requests"]]
        cursor = page["next"]
    assert len(seen) == len(set(seen)) == 2 * REQUESTS + 1


def test_each_filter_narrows_the_search(client: TestClient) -> None:
    def ids(query: str) -> list[str]:
        reply = client.get(f"/ui/api/requests?deployment=fraud&limit=200&{query}")
        assert reply.status_code == 200, reply.text
        return [r["request_id"] for r in reply.json()["requests"]]

    assert ids("status=error") == ["broken-1"]
    assert ids("status=500") == ["broken-1"]
    assert len(ids("status=ok")) == 200
    assert all(i.startswith("v2-") or i == "broken-1" for i in ids("version=2"))
    assert all(i.startswith("v1-") for i in ids("arm=champion"))
    labelled = client.get("/ui/api/requests?deployment=fraud&labelled=true&limit=5").json()
    assert all(r["labels"] for r in labelled["requests"])
    newest = client.get("/ui/api/requests?deployment=fraud&limit=1").json()["requests"][0]
    until = newest["ts"]
    assert "broken-1" not in ids(f"until={until}")
    assert ids(f"since={until}") == ["broken-1"]
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until + 3600))
    assert ids(f"since={iso}") == []


def test_one_request_id_is_found_with_its_whole_payload(client: TestClient) -> None:
    found = client.get("/ui/api/requests?id=v1-0003").json()  # any deployment
    assert [(r["deployment"], r["request_id"]) for r in found["requests"]] == [("fraud", "v1-0003")]
    reply = client.get("/ui/api/deployments/fraud/requests/v1-0003")
    assert reply.status_code == 200, reply.text
    [record] = reply.json()["records"]
    assert sorted(record["inputs"]) == FIELDS
    assert all(len(record["inputs"][name]) == 1 for name in FIELDS)
    assert record["outputs"]["label"][0] in (0, 1)
    assert sum(record["outputs"]["probabilities"][0]) == pytest.approx(1.0)
    assert (record["version"], record["arm"], record["status"]) == (1, "champion", 200)
    assert record["latency_ms"] == 4.0  # 1 + 3 % 7
    assert list(record["labels"]) == ["0"]  # every third request was labelled: this one
    broken = client.get("/ui/api/deployments/fraud/requests/broken-1").json()["records"][0]
    assert (broken["status"], broken["error"]) == (500, "model_failed: boom")


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/ui/api/deployments/nope/monitoring", 404, "no deployment named 'nope'"),
        ("/ui/api/deployments/nope/drift/1", 404, "no deployment named 'nope'"),
        ("/ui/api/deployments/nope/accuracy", 404, "no deployment named 'nope'"),
        ("/ui/api/deployments/fraud/accuracy?span=10", 422, "span: between 60 and"),
        ("/ui/api/deployments/fraud/drift/999999", 404, "has no drift check 999999"),
        ("/ui/api/deployments/fraud/monitoring?span=soon", 422, "span: a number"),
        ("/ui/api/deployments/fraud/monitoring?span=nan", 422, "span: between"),
        ("/ui/api/deployments/fraud/drift/1?top=0", 422, "top: between 1 and 30"),
        ("/ui/api/requests?deployment=nope", 404, "deployment: no deployment named 'nope'"),
        ("/ui/api/requests?id=x&deployment=nope", 404, "no deployment named 'nope'"),
        ("/ui/api/deployments/nope/requests/v1-0001", 404, "no deployment named 'nope'"),
        ("/ui/api/deployments/fraud/requests/missing", 404, "no request 'missing'"),
        ("/ui/api/requests?deployment=fraud&status=teapot", 422, "status: ok, error or"),
        ("/ui/api/requests?deployment=fraud&status=999", 422, "status: ok, error or"),
        ("/ui/api/requests?deployment=fraud&since=yesterday", 422, "since: epoch seconds"),
        ("/ui/api/requests?deployment=fraud&until=inf", 422, "until: a finite number"),
        ("/ui/api/requests?deployment=fraud&since=20&until=10", 422, "the range is empty"),
        ("/ui/api/requests?deployment=fraud&version=two", 422, "version: a whole number"),
        ("/ui/api/requests?deployment=fraud&limit=0", 422, "limit: a whole number"),
        ("/ui/api/requests?deployment=fraud&labelled=maybe", 422, "labelled: true or false"),
        ("/ui/api/requests?deployment=fraud&cursor=%%%", 422, "cursor: not a cursor"),
        ("/ui/api/requests?deployment=fraud&cursor=WzEsMl0", 422, "cursor: not a cursor"),
    ],
)
def test_bad_input_is_refused_with_the_field_named(
    client: TestClient, path: str, status: int, message: str
) -> None:
    reply = client.get(path)
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]


# -- in a browser -------------------------------------------------------------------------


def no_serious_violations(page: Any) -> None:
    """The page passes axe's automated accessibility checks (labels, contrast, roles)."""
    axe = pytest.importorskip("axe_playwright_python.sync_playwright").Axe()
    results = axe.run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], results.generate_report()


@pytest.mark.slow
def test_a_person_finds_a_request_and_opens_the_monitoring_page(
    monitored: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    launch_server: Callable[..., Any],
    browser: Any,
    screenshot: Callable[[Any, str], Path],
    wait_until: Callable[..., Any],
) -> None:
    home = Path(shutil.copytree(monitored[0], tmp_path / "home"))
    server = launch_server(home, [])
    send_traffic(server.url, requests=5)

    def logged() -> bool:
        reply = httpx.get(f"{server.url}/ui/api/requests?id=req-3", timeout=10)
        return bool(reply.json()["requests"])

    assert wait_until(logged, 30.0), "req-3 never reached the inference log"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"{server.url}/ui/#/requests?deployment=fraud")
        page.get_by_label("Request id", exact=True).fill("req-3")
        page.get_by_role("button", name="Search").click()
        card = page.get_by_role("region", name="Request req-3, champion").or_(
            page.get_by_role("region", name="Request req-3, canary")
        )
        card.wait_for()
        assert "Inputs (as sent)" in card.inner_text()
        assert card.get_by_role("columnheader", name="f7").count() == 1
        assert "probabilities" in card.inner_text()
        no_serious_violations(page)
        screenshot(page, "requests-one-request")

        page.goto(f"{server.url}/ui/#/deployments/fraud/monitoring?span=7200")
        page.get_by_role("heading", name="Reference vs live, most drifted first").wait_for()
        assert page.get_by_role("img", name=re.compile(r"^f0\b.*reference")).count() == 1
        page.wait_for_timeout(300)  # charts draw on the next animation frame
        no_serious_violations(page)
        button = page.get_by_role("button", name="Acknowledge").first
        button.click()
        page.get_by_label("Why (kept in the history)").fill("on it")
        page.get_by_role("button", name="Confirm").click()
        page.get_by_text("acknowledged by dashboard").first.wait_for()
        screenshot(page, "monitoring")
    finally:
        page.close()
