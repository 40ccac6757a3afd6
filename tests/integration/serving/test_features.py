"""Features on the real server: events pushed to ``/v1/features/push``, a request that
carries only its card's key and the amount, answered with the card's windowed
aggregates, and the full vector the model saw in the inference log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sklearn.linear_model import LogisticRegression

from modelyard.config import load_settings
from modelyard.features import Aggregation, Entity, Feature, FeatureView, StreamSource
from modelyard.features.definition_set import Definitions
from modelyard.features.registry import FeatureRegistry
from modelyard.features.sql import SqlDefinitionRepository
from modelyard.monitoring import SqlInferenceLogRepository, read_window
from modelyard.routing import DeploymentStore, FeatureInputs
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.yard import Yard

INPUTS = ["amount", "count_1h", "amount_sum_1h"]
CARD = Entity("card", key="card_id")
STATS = FeatureView(
    "card_stats",
    CARD,
    StreamSource("transactions", fields=(Feature("amount", "float64"),)),
    aggregations=(Aggregation("count", "1h"), Aggregation("sum", "1h", "amount")),
)


def scoring_home(home: Path) -> Path:
    """A model of the amount and the card's last hour, its features, and a deployment that
    fetches them."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, size=(400, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 2] > 100).astype(int)
    with Yard(load_settings(home=home, environ={})) as yard:
        yard.registry.register("risk", LogisticRegression().fit(x, y), x, feature_names=INPUTS)
        FeatureRegistry(SqlDefinitionRepository(yard.db)).apply(Definitions(views=(STATS,)))
        deployments = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
        refs = FeatureInputs(("card_stats:count_1h", "card_stats:amount_sum_1h"))
        deployments.create("scoring", "risk", 1, features=refs)
    return home


def test_a_request_that_carries_only_its_entity_key_is_answered_from_pushed_events(
    tmp_path: Path, launch_server: Any
) -> None:
    home = scoring_home(tmp_path / "home")
    server = launch_server(home, ["risk"], workers=2)
    now = time.time()
    events = [  # in time order: an event older than the allowed lateness is refused
        {"card_id": "c1", "event_time": now - 7200, "amount": 99.0, "event_id": "old"},
        {"card_id": "c1", "event_time": now - 120, "amount": 30.0, "event_id": "e1"},
        {"card_id": "c1", "event_time": now - 60, "amount": 12.5, "event_id": "e2"},
    ]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        pushed = client.post("/v1/features/push", json={"stream": "transactions", "events": events})
        assert pushed.status_code == 200, pushed.text
        assert pushed.json()["accepted"] == 3
        again = client.post("/v1/features/push", json={"stream": "transactions", "events": events})
        assert sorted(again.json()["duplicates"]) == ["e1", "e2", "old"]
        late = [{"card_id": "c1", "event_time": now - 3600, "amount": 1.0, "event_id": "late"}]
        refused = client.post("/v1/features/push", json={"stream": "transactions", "events": late})
        assert [e["event_id"] for e in refused.json()["too_late"]] == ["late"]
        deadline = time.monotonic() + 30
        while True:  # the deployment reaches both workers within a poll or two
            answer = client.post(
                "/v1/models/scoring:predict",
                json={"instances": [{"card_id": "c1", "amount": 5.0}]},
                headers={"x-request-id": "scored-1"},
            )
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-model-version"] == "1"
        unknown = client.post(
            "/v1/models/scoring:predict", json={"instances": [{"card_id": "c9", "amount": 1.0}]}
        )
        assert unknown.status_code == 422
        assert "no features for card_id 'c9' (row 0)" in unknown.json()["error"]
        bad = client.post("/v1/features/push", json={"stream": "nope", "events": []})
        assert bad.status_code == 404
    with Yard(load_settings(home=home, environ={})) as yard:
        log = SqlInferenceLogRepository(yard.db)
        deadline = time.monotonic() + 30
        window = read_window(log, "scoring", now - 60, time.time() + 60)
        while "scored-1" not in window.request_ids.tolist() and time.monotonic() < deadline:
            time.sleep(0.2)
            window = read_window(log, "scoring", now - 60, time.time() + 60)
    assert "scored-1" in window.request_ids.tolist()
    row = window.request_ids.tolist().index("scored-1")
    logged = {name: float(window.inputs[name][row]) for name in INPUTS}
    assert logged == {"amount": 5.0, "count_1h": 2.0, "amount_sum_1h": 42.5}


def test_rows_carrying_event_times_are_answered_with_the_features_as_of_each_event(
    tmp_path: Path, launch_server: Any, wait_until: Any
) -> None:
    home = tmp_path / "home"
    scoring_home(home)
    refs = ("card_stats:count_1h", "card_stats:amount_sum_1h")
    with Yard(load_settings(home=home, environ={})) as yard:
        deployments = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
        timed = FeatureInputs(refs, event_time="ts")
        deployments.create("replay", "risk", 1, features=timed)
    server = launch_server(home, ["risk"])
    now = time.time()
    events = [  # in time order, each within the allowed lateness of the one before
        {"card_id": "c1", "event_time": now - ago, "amount": amount, "event_id": f"e{ago}"}
        for ago, amount in ((3000, 10.0), (2400, 20.0), (1800, 30.0), (600, 40.0), (60, 50.0))
    ]
    times = [now - 2000, now - 1000, now - 30, now + 3600, now - 2000]
    rows = [{"card_id": "c1", "amount": 1.0, "ts": t} for t in times]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        pushed = client.post("/v1/features/push", json={"stream": "transactions", "events": events})
        assert pushed.json()["accepted"] == 5, pushed.text

        def predict() -> httpx.Response | None:
            answer = client.post(
                "/v1/models/replay:predict",
                json={"instances": rows},
                headers={"x-request-id": "replayed"},
            )
            return answer if answer.status_code != 404 else None  # not deployed yet

        answer = wait_until(predict, 30)
        assert answer.status_code == 200, answer.text
        asked = time.time()
        without = client.post(
            "/v1/models/replay:predict",
            json={"instances": [{"card_id": "c1", "amount": 1.0}]},
        )
        assert without.status_code == 422
        assert "missing field(s) 'ts' (row 0)" in without.json()["error"]
        for bad in (-5.0, "yesterday"):
            refused = client.post(
                "/v1/models/replay:predict",
                json={"instances": [{"card_id": "c1", "amount": 1.0, "ts": bad}]},
            )
            assert refused.status_code == 422, refused.text
            assert "'ts'" in refused.json()["error"]
    with Yard(load_settings(home=home, environ={})) as yard:
        log = SqlInferenceLogRepository(yard.db)

        def logged() -> Any:
            window = read_window(log, "replay", now - 60, time.time() + 60)
            return window if "replayed" in window.request_ids.tolist() else None

        window = wait_until(logged, 30)
        assert window is not None
        request = window.request_ids.tolist().index("replayed")
        served = np.flatnonzero(window.row_request == request)
        expected = [
            yard.features.get_online_features(["c1"], list(refs), at=min(t, asked)) for t in times
        ]
    for row, point_in_time in zip(served, expected, strict=True):
        assert float(window.inputs["count_1h"][row]) == point_in_time.columns["count_1h"][0]
        assert (
            float(window.inputs["amount_sum_1h"][row]) == point_in_time.columns["amount_sum_1h"][0]
        )
    assert [float(window.inputs["count_1h"][row]) for row in served] == [2, 3, 5, 5, 2]
    assert [float(window.inputs["amount_sum_1h"][row]) for row in served] == [30, 60, 150, 150, 30]
