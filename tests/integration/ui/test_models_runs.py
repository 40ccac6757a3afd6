"""The dashboard's models and runs pages (issue 21, items 1 and 5).

The data routes through Starlette's ``TestClient`` over ``create_app`` (no server):
each page's document, its paging, and bad input answered 404 or 422 naming what is
wrong. Then one browser session against a real server: the models page, a model, an
alias moved through the dialog, the runs page and a run with its metric chart.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

from modelyard.config import Settings, load_settings, override
from modelyard.routing.deployment import Event
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.ui.app import create_app
from modelyard.yard import Yard

from .conftest import FIELDS, TOKEN, build_dashboard_home

STEPS = 30


def build_models_runs_home(home: Path) -> dict[str, Any]:
    """``build_dashboard_home`` plus what these pages show: a retraining run with a dataset,
    an artifact, a tag and metric histories; version 3 of ``fraud`` registered from it
    (parent 2, metrics, a tag); a second model; a retrain of deployment ``quiet``."""
    build_dashboard_home(home)
    rng = np.random.default_rng(5)
    features = rng.normal(size=(400, 8)).astype(np.float32)
    labels = (features[:, 0] + features[:, 3] > 0).astype(int)
    with Yard(load_settings(home=home, environ={})) as yard:
        with yard.start_run("retrain-fraud", params={"C": 0.5, "solver": "lbfgs"}) as run:
            run.log_dataset("train", features)
            run.log_bytes("notes.txt", b"retrained on drift")
            run.set_tag("trigger", "drift")
            for step in range(STEPS):
                run.log_metrics({"loss": 1.0 / (step + 1), "auc": 0.8 + step / 200}, step=step)
        model = LogisticRegression(C=0.5).fit(features, labels)
        yard.registry.register(
            "fraud",
            model,
            features,
            feature_names=FIELDS,
            run=run,
            metrics={"auc": 0.945},
            parent_version=2,
            tags={"team": "risk"},
        )
        yard.registry.register("ads", model, features, feature_names=FIELDS)
        now = time.time()
        events = SqlDeploymentRepository(yard.db)
        for at, kind, reason, payload in [
            (now - 30, "retrain.started", "drift: f3 drifted", {"trigger": "drift"}),
            (now - 20, "retrain.trained", f"run {run.id[:8]}", {"run_id": run.id}),
            (now - 10, "retrain.registered", "v3 beat v1 on auc", {"version": 3}),
            (now - 5, "retrain.held", "rollouts of quiet are manual", {}),
        ]:
            events.record(Event(at, kind, "quiet", reason, {**payload, "retrain": 1}, "loop"))
    return {"run_id": run.id}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("models-runs") / "home"
    return {"home": home, **build_models_runs_home(home)}


@pytest.fixture(scope="module")
def settings(made: dict[str, Any]) -> Settings:
    return load_settings(home=made["home"], environ={})


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as found:
        yield found


def get(client: TestClient, path: str) -> Any:
    reply = client.get(f"/ui/api/{path}")
    assert reply.status_code == 200, reply.text
    return reply.json()


# -- models ------------------------------------------------------------------------------


def test_models_come_by_name_a_page_at_a_time(client: TestClient) -> None:
    first = get(client, "models?limit=1")
    assert [m["name"] for m in first["models"]] == ["ads"]
    assert first["next_page_token"] == "ads"
    second = get(client, "models?limit=1&page_token=ads")
    (fraud,) = second["models"]
    assert second["next_page_token"] is None
    assert (fraud["name"], fraud["latest_version"], fraud["aliases"]) == (
        "fraud",
        3,
        {"champion": 1},
    )
    assert fraud["deployments"] == ["fraud", "quiet"]


def test_a_model_pages_its_versions_newest_first_with_aliases_and_their_moves(
    client: TestClient,
) -> None:
    page = get(client, "models/fraud?limit=2")
    assert [v["version"] for v in page["versions"]] == [3, 2]
    newest = page["versions"][0]
    assert (newest["parent_version"], newest["metrics"], newest["tags"]) == (
        2,
        {"auc": 0.945},
        {"team": "risk"},
    )
    rest = get(client, f"models/fraud?limit=2&page_token={page['next_page_token']}")
    assert [(v["version"], v["aliases"]) for v in rest["versions"]] == [(1, ["champion"])]
    assert rest["next_page_token"] is None
    (move,) = page["alias_history"]
    assert (move["alias"], move["to_version"], move["actor"], move["reason"]) == (
        "champion",
        1,
        "alice",
        "first model",
    )
    assert {d["name"]: d["versions"] for d in page["deployments"]} == {
        "fraud": [1, 2],
        "quiet": [1],
    }


def test_a_version_shows_its_lineage_signature_metrics_and_profile(
    client: TestClient, made: dict[str, Any]
) -> None:
    page = get(client, "models/fraud/versions/3")
    lineage = page["lineage"]
    assert lineage["run"]["id"] == made["run_id"]
    assert (lineage["run"]["found"], lineage["run"]["name"]) == (True, "retrain-fraud")
    assert lineage["run_datasets"]["train"]["rows"] == 400
    assert (lineage["data"]["rows"], lineage["parent"]) == (400, 2)
    version = page["version"]
    assert (version["metrics"], version["flavour"]) == ({"auc": 0.945}, "onnx")
    assert len(version["artifact_digest"]) == 64
    assert [f["name"] for f in version["signature"]["inputs"]] == FIELDS
    profile = page["profile"]
    assert profile["rows"] == 400
    assert [c["name"] for c in profile["features"]] == FIELDS
    histogram = profile["features"][0]["histogram"]
    assert len(histogram["edges"]) == len(histogram["shares"]) + 1
    assert sum(histogram["shares"]) == pytest.approx(1.0)
    assert {c["name"] for c in profile["predictions"]} >= {"score"}


def test_a_models_retraining_history_tells_each_retrain_of_its_deployments(
    client: TestClient, made: dict[str, Any]
) -> None:
    found = {
        d["deployment"]: d["episodes"] for d in get(client, "models/fraud/retrains")["deployments"]
    }
    assert found["fraud"] == []
    (episode,) = found["quiet"]
    assert (episode["trigger"], episode["run_id"], episode["version"]) == (
        "drift",
        made["run_id"],
        3,
    )
    assert episode["outcome"] == "registered, rollout not started"
    assert "f3 drifted" in episode["story"]


# -- runs ------------------------------------------------------------------------------


def test_runs_come_newest_first_with_the_pages_most_common_columns(client: TestClient) -> None:
    page = get(client, "runs")
    assert [r["name"] for r in page["runs"]] == ["retrain-fraud", "train-fraud"]
    # auc: both runs; loss: one; params by how many runs logged them, then by name
    assert page["columns"][:2] == ["metrics.auc", "metrics.loss"]
    assert set(page["columns"][2:]) <= {
        "params.C",
        "params.max_depth",
        "params.n_estimators",
        "params.solver",
    }
    assert page["offered"]["metrics"] == ["auc", "loss"]
    newest = dict(zip(page["columns"], page["runs"][0]["values"], strict=True))
    assert newest["metrics.auc"] == pytest.approx(0.8 + (STEPS - 1) / 200)


def test_runs_are_filtered_paged_and_shown_in_the_chosen_columns(client: TestClient) -> None:
    condition = quote("metrics.auc >= 0.9 and params.max_depth = '6'")
    (run,) = get(client, f"runs?filter={condition}")["runs"]
    assert run["name"] == "train-fraud"
    chosen = get(client, "runs?columns=params.solver,metrics.loss&limit=1")
    assert chosen["columns"] == ["params.solver", "metrics.loss"]
    assert chosen["runs"][0]["values"] == ["lbfgs", pytest.approx(1.0 / STEPS)]
    token = quote(chosen["next_page_token"], safe="")
    older = get(client, f"runs?columns=params.solver,metrics.loss&limit=1&page_token={token}")
    assert [(r["name"], r["values"]) for r in older["runs"]] == [("train-fraud", [None, None])]
    assert older["next_page_token"] is None
    assert get(client, "runs?status=failed")["runs"] == []


def test_a_run_shows_what_it_logged_stored_and_ran_on(
    client: TestClient, made: dict[str, Any]
) -> None:
    page = get(client, f"runs/{made['run_id'][:10]}")  # a unique prefix will do
    run = page["run"]
    assert run["id"] == made["run_id"]
    assert (run["params"], run["tags"]) == ({"C": "0.5", "solver": "lbfgs"}, {"trigger": "drift"})
    assert list(run["artifacts"]) == ["notes.txt"]
    assert run["datasets"]["train"]["rows"] == 400
    assert run["environment"]["python"]
    charts = {c["key"]: c for c in page["charts"]}
    assert sorted(charts) == ["auc", "loss"]
    assert charts["loss"]["steps"] == list(range(STEPS))
    assert charts["loss"]["values"][-1] == pytest.approx(1.0 / STEPS)
    only = get(client, f"runs/{made['run_id']}?charts=loss")
    assert [c["key"] for c in only["charts"]] == ["loss"]
    history = get(client, f"runs/{made['run_id']}/metric?key=auc")
    assert (history["points"], history["values"][0]) == (STEPS, pytest.approx(0.8))


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("models/ghost", 404, "no registered model named 'ghost'"),
        ("models/ghost/retrains", 404, "no registered model named 'ghost'"),
        ("models/fraud/versions/99", 404, "has no version 99"),
        ("models/ghost/versions/1", 404, "no registered model named 'ghost'"),
        ("models/fraud?page_token=abc", 422, "page_token"),
        ("models/fraud?limit=0", 422, "limit"),
        ("models?page_token=%21%21", 422, "page_token"),
        ("models?limit=5000", 422, "limit"),
        ("runs/0123456789abcdef", 404, "no run with id"),
        ("runs/abc", 404, "too short"),
        ("runs/%25%25%25%25%25%25", 404, "no run with id"),
        ("runs?filter=metrics.auc%20%3E%3E%201", 422, "filter:"),
        ("runs?filter=bogus", 422, "filter:"),
        ("runs?page_token=not-a-token", 422, "page_token"),
        ("runs?status=lost", 422, "status:"),
        ("runs?columns=auc", 422, "columns:"),
        ("runs?columns=" + ",".join(f"metrics.m{i}" for i in range(9)), 422, "columns:"),
        ("runs?limit=ten", 422, "limit"),
        ("runs/{run}?charts=ghost", 422, "charts:"),
        ("runs/{run}/metric?key=ghost", 404, "logged no metric 'ghost'"),
        ("runs/{run}/metric", 422, "key:"),
    ],
)
def test_bad_input_is_a_clear_404_or_422_never_a_500(
    client: TestClient, made: dict[str, Any], path: str, status: int, says: str
) -> None:
    reply = client.get("/ui/api/" + path.replace("{run}", made["run_id"]))
    assert reply.status_code == status, reply.text
    assert says in reply.json()["error"]


def test_every_models_and_runs_route_refuses_a_caller_without_the_token(
    settings: Settings, made: dict[str, Any]
) -> None:
    guarded = override(settings, serving={"token": TOKEN})
    run = made["run_id"]
    with TestClient(create_app(guarded)) as anonymous:
        for path in [
            "models",
            "models/fraud",
            "models/fraud/versions/1",
            "models/fraud/retrains",
            "runs",
            f"runs/{run}",
            f"runs/{run}/metric?key=auc",
        ]:
            reply = anonymous.get(f"/ui/api/{path}")
            assert reply.status_code == 401, path
            allowed = anonymous.get(f"/ui/api/{path}", headers={"authorization": f"Bearer {TOKEN}"})
            assert allowed.status_code == 200, path


# -- in a browser ------------------------------------------------------------------------


@pytest.fixture
def served(
    made: dict[str, Any],
    tmp_path: Path,
    unused_port: Callable[[], int],
    wait_until: Callable[..., Any],
) -> Iterator[str]:
    """``modelyard ui`` (the dashboard's own server: these pages need no model served)
    over a copy of the home, as the test moves an alias."""
    home = Path(shutil.copytree(made["home"], tmp_path / "home"))
    port = unused_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["MODELYARD_HOME"] = str(home)
    args = [sys.executable, "-m", "modelyard", "ui", "--port", str(port)]
    process = subprocess.Popen(args, env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            assert process.stderr is not None
            raise RuntimeError(f"modelyard ui exited: {process.stderr.read().decode()}")
        try:
            return httpx.get(f"{url}/ui/api/session", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        assert wait_until(answers, 60), "modelyard ui did not answer in 60 s"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page as drawn (labels, contrast,
    names of controls), each as its rule and the first element it names."""
    axe = pytest.importorskip("axe_playwright_python.sync_playwright")
    page.wait_for_timeout(300)  # charts draw on the next animation frame
    found = axe.Axe().run(page).response["violations"]
    return [
        f"{v['id']}: {v['nodes'][0]['target']}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def test_models_and_runs_pages_in_a_browser(
    browser: Any, served: str, made: dict[str, Any], screenshot: Callable[[Any, str], Path]
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    failures: list[str] = []
    page.on("pageerror", lambda error: failures.append(str(error)))
    page.goto(f"{served}/ui/#/models")
    page.get_by_role("link", name="fraud", exact=True).first.click()
    page.get_by_role("heading", name="Model fraud").wait_for()
    assert serious_violations(page) == []
    screenshot(page, "models-model")

    page.get_by_role("button", name="Move alias champion").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Point champion at version").fill("3")
    dialog.get_by_label("Why (kept in the history)").fill("v3 won the retrain's gate")
    screenshot(page, "models-move-alias-dialog")
    dialog.get_by_role("button", name="Confirm").click()
    moved = page.get_by_role("cell", name="v3 won the retrain's gate")
    moved.wait_for()
    aliases = page.get_by_role("region", name="Aliases")
    assert aliases.get_by_role("row", name="champion v3").count() == 1
    screenshot(page, "models-alias-moved")

    page.get_by_role("link", name="v3", exact=True).first.click()
    page.get_by_role("heading", name="fraud v3").wait_for()
    page.locator("svg[aria-label^='f0']").wait_for()
    assert serious_violations(page) == []
    screenshot(page, "models-version")

    page.get_by_role("link", name="Runs", exact=True).click()
    page.get_by_role("textbox", name="Filter").fill("metrics.loss < 0.5")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("link", name="retrain-fraud").wait_for()
    assert serious_violations(page) == []
    page.get_by_role("link", name="retrain-fraud").click()
    page.get_by_role("heading", name="Run retrain-fraud").wait_for()
    summary = re.compile(r"^loss\. loss: latest 0\.03")  # what a screen reader is told
    chart = page.locator("figure.chart", has=page.get_by_role("img", name=summary))
    chart.locator("canvas").wait_for()  # uPlot drew the history
    assert serious_violations(page) == []
    screenshot(page, "runs-run")
    assert failures == []
    page.close()
