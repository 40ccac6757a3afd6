"""The dashboard in a real server: who may see and change what, and a rollout clicked
through in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from modelyard.config import load_settings
from modelyard.ui import create_app

from .conftest import TOKEN, send_traffic

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(
    dashboard_home: Path,
    tmp_path_factory: pytest.TempPathFactory,
    server_starter: Callable[..., Any],
) -> Iterator[Any]:
    """One server for the module (only the last test changes anything: it promotes)."""
    home = Path(shutil.copytree(dashboard_home, tmp_path_factory.mktemp("ui") / "home"))
    started = server_starter(home, [], settings={"token": TOKEN})
    send_traffic(started.url, 30, headers={"authorization": f"Bearer {TOKEN}"})
    yield started
    started.stop()


def _guarded_routes(home: Path) -> list[tuple[str, str]]:
    """Every route of the dashboard but its static files and sign-in, with its path
    parameters filled in: the test follows the app's own route table, so a route added
    later is checked too."""
    app = create_app(load_settings(home=home, environ={}))
    found = []
    for route in app.app.routes:
        if not isinstance(route, Route) or route.path in ("/ui", "/ui/api/session"):
            continue
        if route.path in ("/ui/api/login",):
            continue
        path = re.sub(r"\{(\w+)(:int)?\}", lambda m: "1" if m.group(2) else "fraud", route.path)
        for method in sorted(route.methods or {"GET"}):
            if method != "HEAD":
                found.append((method, path))
    return found


def test_with_a_token_every_page_and_data_route_refuses_strangers(server: Any) -> None:
    routes = _guarded_routes(server.home)
    assert ("GET", "/ui/api/overview") in routes
    assert ("GET", "/ui/") in routes
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for method, path in routes:
            refused = client.request(method, path, json={} if method == "POST" else None)
            assert refused.status_code == 401, (method, path, refused.text)
            assert "fraud" not in refused.text, (method, path)
        shell = client.get("/ui/")  # the page's shell, which asks to sign in: no data
        assert shell.status_code == 401
        assert "fraud" not in shell.text
        # the API's bearer token opens the data routes too (scripts)
        bearer = client.get("/ui/api/overview", headers={"authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200
        assert [d["name"] for d in bearer.json()["deployments"]] == ["fraud", "quiet"]

        wrong = client.post("/ui/api/login", json={"token": "guess", "name": "eve"})
        assert wrong.status_code == 401
        assert "token" in wrong.json()["error"]
        nameless = client.post("/ui/api/login", json={"token": TOKEN, "name": ""})
        assert nameless.status_code == 422
        assert "name" in nameless.json()["error"]
        signed = client.post("/ui/api/login", json={"token": TOKEN, "name": "ada"})
        assert signed.status_code == 200
        cookie = signed.headers["set-cookie"]
        assert "httponly" in cookie.lower()
        assert "samesite=strict" in cookie.lower()
        assert TOKEN not in cookie
        assert client.get("/ui/api/overview").status_code == 200
        assert client.get("/ui/api/session").json() == {"token_required": True, "name": "ada"}

        # a page elsewhere cannot ride the cookie to change anything
        forged = client.post(
            "/ui/api/deployments/fraud/rollout/pause",
            json={"reason": "x"},
            headers={"origin": "http://evil.example"},
        )
        assert forged.status_code == 403
        rollout = client.get("/ui/api/deployments/fraud").json()["summary"]["rollout"]
        assert rollout["phase"] != "paused"
        client.post("/ui/api/logout", json={})
        assert client.get("/ui/api/overview").status_code == 401


def test_bad_input_is_a_clear_4xx(server: Any) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, timeout=30, headers=headers) as client:
        missing = client.get("/ui/api/deployments/nope")
        assert missing.status_code == 404
        assert "nope" in missing.json()["error"]
        span = client.get("/ui/api/deployments/fraud?span=soon")
        assert span.status_code == 422
        assert "span" in span.json()["error"]
        no_reason = client.post("/ui/api/deployments/fraud/rollout/pause", json={})
        assert no_reason.status_code == 422
        assert "reason" in no_reason.json()["error"]
        action = client.post("/ui/api/deployments/fraud/rollout/explode", json={"reason": "x"})
        assert action.status_code == 422
        assert "action" in action.json()["error"]
        idle = client.post("/ui/api/deployments/quiet/rollout/pause", json={"reason": "x"})
        assert idle.status_code == 409
        assert "no rollout" in idle.json()["error"]
        not_json = client.post(
            "/ui/api/deployments/fraud/rollout/pause",
            content=b"reason=x",
            headers={"content-type": "text/plain"},
        )
        assert not_json.status_code in (415, 422)
        version = client.post("/ui/api/models/fraud/aliases/champion", json={"reason": "x"})
        assert version.status_code == 422
        assert "version" in version.json()["error"]
        assert client.get("/ui/api/nothing-here").status_code == 404


def test_the_pages_pass_automated_accessibility_checks(server: Any, browser: Any) -> None:
    axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")
    context = browser.new_context()
    context.request.post(f"{server.url}/ui/api/login", data={"token": TOKEN, "name": "ada"})
    page = context.new_page()
    for fragment, heading in [("#/", "Overview"), ("#/deployments/fraud", "Deployment fraud")]:
        page.goto(f"{server.url}/ui/{fragment}")
        page.get_by_role("heading", name=heading).wait_for()
        page.wait_for_timeout(300)  # charts draw on the next animation frame
        results = axe_module.Axe().run(page)
        serious = [
            v for v in results.response["violations"] if v["impact"] in ("serious", "critical")
        ]
        assert serious == [], results.generate_report()

    # the keyboard alone: the skip link, then a rollout control, its dialog, Escape
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_role("button", name="Pause").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert page.evaluate("document.activeElement.name") == "reason"
    page.keyboard.type("only looking")
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    headers = {"authorization": f"Bearer {TOKEN}"}
    data = httpx.get(f"{server.url}/ui/api/deployments/fraud", headers=headers, timeout=30).json()
    assert data["summary"]["rollout"]["phase"] == "progressing"  # cancelled: nothing done
    context.close()


def test_a_rollout_promoted_in_the_browser(
    server: Any, browser: Any, screenshot: Callable[[Any, str], Path]
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/ui/")
    page.get_by_label("Your name").fill("ada")
    page.get_by_label("The server's token").fill(TOKEN)
    screenshot(page, "sign-in")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview").wait_for()
    page.get_by_role("link", name="fraud").first.click()
    page.get_by_role("heading", name="Deployment fraud").wait_for()
    split = page.get_by_role("img", name=re.compile("Traffic split"))
    assert "canary v2 10%" in (split.get_attribute("aria-label") or "")
    screenshot(page, "deployment-canary")

    page.get_by_role("button", name="Promote now").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Why").fill("looks good in the browser")
    dialog.get_by_role("button", name="Confirm").click()
    page.get_by_text("Rollout promote: done.").wait_for()
    page.get_by_role("img", name=re.compile(r"champion v2 100%")).wait_for()
    screenshot(page, "deployment-promoted")
    assert errors == []

    headers = {"authorization": f"Bearer {TOKEN}"}
    data = httpx.get(f"{server.url}/ui/api/deployments/fraud", headers=headers, timeout=30).json()
    promoted = [e for e in data["events"] if e["kind"] == "rollout.promote"]
    assert promoted
    assert promoted[0]["actor"] == "ada"
    assert "looks good in the browser" in promoted[0]["reason"]


def test_modelyard_ui_runs_the_dashboard_alone(
    dashboard_home: Path,
    tmp_path: Path,
    wait_until: Callable[..., Any],
    unused_port: Callable[[], int],
) -> None:
    home = Path(shutil.copytree(dashboard_home, tmp_path / "home"))
    port = unused_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["MODELYARD_HOME"] = str(home)
    process = subprocess.Popen(
        [sys.executable, "-m", "modelyard", "ui", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/ui/api/overview"

        def answers() -> bool:
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        assert wait_until(answers, 60)
        assert [d["name"] for d in httpx.get(url).json()["deployments"]] == ["fraud", "quiet"]
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.stderr is not None
    assert f"http://127.0.0.1:{port}/ui/" in process.stderr.read().decode()


def test_modelyard_ui_refuses_to_listen_beyond_loopback_without_a_token(
    dashboard_home: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["MODELYARD_HOME"] = str(dashboard_home)
    done = subprocess.run(
        [sys.executable, "-m", "modelyard", "ui", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "without a token" in done.stderr
    assert "Traceback" not in done.stderr
