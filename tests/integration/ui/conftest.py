"""A home with something to look at, a server over it, and a headless Chromium.

``dashboard_home``: model ``fraud`` (versions 1 and 2, a reference profile each), a
deployment serving version 1 with a rollout of version 2 at its first step, and an
experiment-free second deployment ``quiet``. The server fixtures send it real traffic,
so the charts and the request log have rows.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from modelyard.config import load_settings
from modelyard.routing import RolloutController, RolloutPolicy
from modelyard.yard import Yard

FIELDS = [f"f{i}" for i in range(8)]
TOKEN = "ui-test-token"


def build_dashboard_home(home: Path) -> Path:
    features, labels = make_classification(n_samples=1000, n_features=8, random_state=3)
    features = features.astype(np.float32)
    with Yard(load_settings(home=home, environ={})) as yard:
        with yard.start_run("train-fraud") as run:
            run.log_params({"n_estimators": 20, "max_depth": 6})
            for step, value in enumerate([0.81, 0.86, 0.9]):
                run.log_metric("auc", value, step=step)
        for seed in (0, 1):
            forest = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=seed)
            yard.registry.register(
                "fraud", forest.fit(features, labels), features, feature_names=FIELDS
            )
        yard.registry.set_alias("fraud", "champion", 1, actor="alice", reason="first model")
        yard.deployments.create("fraud", "fraud", 1, actor="alice")
        yard.deployments.create("quiet", "fraud", 1, actor="alice")
        policy = RolloutPolicy(step_weights=(10.0, 50.0, 100.0), interval_s=3600.0)
        RolloutController(yard.deployments).start("fraud", 2, policy, actor="alice")
    return home


def send_traffic(url: str, requests: int = 40, headers: dict[str, str] | None = None) -> None:
    rng = np.random.default_rng(0)
    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        for i in range(requests):
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, 8],
                        "datatype": "FP32",
                        "data": rng.normal(size=8).tolist(),
                    }
                ]
            }
            reply = client.post(
                "/v2/models/fraud/infer", json=body, headers={"x-request-id": f"req-{i}"}
            )
            assert reply.status_code == 200, reply.text


@pytest.fixture(scope="session")
def dashboard_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dashboard_home(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture
def home_copy(dashboard_home: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(dashboard_home, tmp_path / "home"))


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright (its own browsers are not
    downloadable here). One per test: Playwright's sync API runs an event loop in the
    main thread while it is open, and a later test's ``asyncio.run`` would find it."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("the dashboard's browser tests need Debian's chromium at /usr/bin/chromium")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        yield browser
        browser.close()


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """Save a page's screenshot where CI keeps them (``test-artifacts/ui``)."""
    folder = Path(__file__).resolve().parents[3] / "test-artifacts" / "ui"
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
