"""Trust is a property of a version: a server started with ``--trusted`` loads a
pickle-based version only if it was marked trusted when registered, so moving an alias
to an unmarked one leaves the old version serving."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelyard.config import load_settings
from modelyard.serving.telemetry.logsearch import LogQuery, search
from modelyard.yard import Yard

PICKLED = Path(__file__).parent / "pickled"
FIELDS = ["f0", "f1", "f2", "f3"]
WEIGHTS = [0.8, -0.5, 0.3, 0.1]


@pytest.fixture
def pickled_models(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``yardtest_models``, importable here and in the server processes."""
    monkeypatch.syspath_prepend(str(PICKLED))
    monkeypatch.setenv("PYTHONPATH", str(PICKLED))
    return importlib.import_module("yardtest_models")


def test_an_alias_moved_to_an_unmarked_pickle_is_refused_and_a_marked_one_loads(
    model_home: Path, tmp_path: Path, launch_server: Any, pickled_models: Any, wait_until: Any
) -> None:
    home = Path(shutil.copytree(model_home, tmp_path / "home"))
    features = np.random.default_rng(7).normal(size=(200, 4)).astype(np.float32)
    model = pickled_models.Linear(WEIGHTS)
    with Yard(load_settings(home=home, environ={})) as yard:
        first = yard.registry.register(
            "risky", model, features, feature_names=FIELDS, flavour="pickle", trusted=True,
            trusted_reason="built by the test",
        )  # fmt: skip
        assert first.trust is not None
        assert first.trust["reason"] == "built by the test"
        yard.registry.set_alias("risky", "champion", 1)
        # A pickle version nobody marked (registered before marks, or written around them)
        unmarked = yard.registry.prepare(
            model, features, feature_names=FIELDS, flavour="pickle", trusted=True
        )
        assert yard.registry.register_prepared("risky", unmarked).trust is None
    server = launch_server(
        home, ["risky@champion"], trusted=True, settings={"poll_interval_s": "0.1"}
    )
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [0.1] * 4}]}

    def answered_by() -> str:
        answer = httpx.post(f"{server.url}/v2/models/risky/infer", json=body)
        assert answer.status_code == 200, answer.text
        return answer.headers["x-model-version"]

    assert answered_by() == "1"
    with Yard(load_settings(home=home, environ={})) as yard:
        yard.registry.set_alias("risky", "champion", 2, reason="test: an unmarked pickle")

    def refused() -> list[dict[str, Any]]:
        lines = server.log_path.read_bytes().splitlines()
        return search(lines, LogQuery(event="model_load_failed"), None)

    (failure,) = wait_until(refused, 20)[:1]
    assert (failure["version"], failure["code"]) == (2, "untrusted_format")
    assert "not marked trusted" in failure["error"]
    assert answered_by() == "1", "the old version keeps serving"

    with Yard(load_settings(home=home, environ={})) as yard:
        yard.registry.register(
            "risky", model, features, feature_names=FIELDS, flavour="pickle", trusted=True,
            trusted_reason="rebuilt and reviewed",
        )  # fmt: skip
        yard.registry.set_alias("risky", "champion", 3, reason="test: a marked pickle")
    assert wait_until(lambda: answered_by() == "3", 20)
