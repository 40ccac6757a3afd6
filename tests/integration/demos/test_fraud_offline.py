"""The fraud demo's offline phase on a small simulated world: history pushed to the
feature store, a point-in-time training set, a seeded LightGBM champion registered as
ONNX and deployed as ``fraud``, whose requests carry the card id and the transaction."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest

from modelyard.config import load_settings
from modelyard.demos.fraud import SimulatorConfig, TransactionSimulator
from modelyard.demos.fraud.features import MODEL_REFS, REQUEST_INPUTS, request_columns
from modelyard.demos.fraud.offline import (
    DEPLOYMENT,
    EVENT_TIME,
    LABEL_OFFSET_S,
    Champion,
    build_champion,
    push_history,
)
from modelyard.routing import DeploymentStore
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.yard import Yard

DAY = 86_400.0
SEED = 11
NAMES = [ref.split(":")[1] for ref in MODEL_REFS]


@dataclass(frozen=True)
class World:
    home: Path
    simulator: TransactionSimulator
    start: float
    end: float
    champion: Champion


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    # The history ends at the last full hour, so a server started now reads it online.
    end = math.floor(time.time() / 3600) * 3600
    start = end - 4 * DAY
    simulator = TransactionSimulator(
        SimulatorConfig(cards=800, merchants=200, fraud_rate=0.02, start=start, seed=7)
    )
    home = tmp_path_factory.mktemp("fraud") / "home"
    with Yard(load_settings(home=home, environ={})) as yard:
        champion = build_champion(yard, simulator, start, end, seed=SEED)
    return World(home, simulator, start, end, champion)


def open_yard(world: World) -> Yard:
    return Yard(load_settings(home=world.home, environ={}))


def test_the_champion_is_onnx_tracked_with_its_seed_and_separates_fraud(world: World) -> None:
    version = world.champion.version
    assert version.flavour == "onnx"
    assert [spec.name for spec in version.signature.inputs] == [*NAMES, *REQUEST_INPUTS]
    assert version.profile_digest is not None
    with open_yard(world) as yard:
        run = yard.tracking.get_run(world.champion.run_id)
    assert run.seed == SEED
    assert run.status == "FINISHED"
    assert set(run.datasets) == {"train", "holdout"}
    assert run.metrics["roc_auc"] == pytest.approx(world.champion.metrics["roc_auc"])
    # The world's days follow the clock (the history ends at the last full hour): over
    # 39 ends 37 hours apart, ROC AUC was 0.974-1.0 and average precision 0.64-0.98 on
    # tails of about 2,400 rows with 20-80 frauds.
    assert run.metrics["roc_auc"] > 0.95
    assert run.metrics["average_precision"] > 0.5
    assert run.metrics["holdout_rows"] > 1_000
    assert version.metrics["roc_auc"] == pytest.approx(run.metrics["roc_auc"])


def test_the_deployment_fetches_the_card_features(world: World) -> None:
    with open_yard(world) as yard:
        deployment = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry).get(
            DEPLOYMENT
        )
    config = deployment.config
    assert (config.model, config.champion) == ("fraud", world.champion.version.version)
    assert config.features is not None
    assert config.features.refs == MODEL_REFS


def test_a_pushed_history_is_not_pushed_twice(world: World) -> None:
    history = world.simulator.generate(world.start, world.start + DAY)
    with open_yard(world) as yard:
        assert push_history(yard, history) == 0


def test_online_features_match_the_training_set_point_in_time(world: World) -> None:
    """What a request for a transaction reads online (just before the transaction) is its
    training row, and the latest state online is what a training set reads at the end."""
    last_hour = world.simulator.generate(world.end - 3600, world.end)
    picked = [0, len(last_hour["card_id"]) // 2, len(last_hour["card_id"]) - 1]
    cards = [str(last_hour["card_id"][i]) for i in picked]
    times = [float(last_hour["event_time"][i]) - LABEL_OFFSET_S for i in picked]
    with open_yard(world) as yard:
        for card, at in zip(cards, times, strict=True):
            online = yard.features.get_online_features({"card_id": [card]}, MODEL_REFS, at=at)
            offline = training_rows(yard, [card], [at])
            assert_same(online.columns, offline, (card, at))
            # The label sits before its own transaction: at the transaction's time the
            # card has one event more.
            at_it = yard.features.get_online_features(
                {"card_id": [card]}, MODEL_REFS, at=at + LABEL_OFFSET_S
            )
            assert at_it.columns["count_10m"][0] == online.columns["count_10m"][0] + 1
        online = yard.features.get_online_features({"card_id": cards}, MODEL_REFS, at=world.end)
        assert_same(online.columns, training_rows(yard, cards, [world.end] * len(cards)), "end")
        assert all(count >= 1 for count in online.columns["count_1h"])


def assert_same(online: dict[str, list[Any]], offline: dict[str, list[Any]], where: Any) -> None:
    """The same nulls and counts; sums equal up to the order they were added in."""
    assert list(online) == list(offline), where
    for name in online:
        assert [v is None for v in online[name]] == [v is None for v in offline[name]], name
        numbers = [
            (a, b) for a, b in zip(online[name], offline[name], strict=True) if a is not None
        ]
        assert [a for a, _ in numbers] == pytest.approx([b for _, b in numbers], rel=1e-12), (
            name,
            where,
        )


def training_rows(yard: Yard, cards: list[str], times: list[float]) -> dict[str, list[Any]]:
    labels = pa.table({"card_id": cards, "event_timestamp": times})
    table = yard.features.get_training_set(labels, MODEL_REFS, leakage_guard=False)
    return {name: table.column(name).to_pylist() for name in NAMES}


def test_the_server_answers_a_request_with_the_card_and_the_transaction_only(
    world: World, launch_server: Any, wait_until: Any
) -> None:
    server = launch_server(world.home, ["fraud"])
    upcoming = world.simulator.generate(world.end, world.end + 6 * 3600)
    fraud = np.flatnonzero(upcoming["is_fraud"] == 1)
    rows = [int(fraud[0]) if len(fraud) else 0, int(np.flatnonzero(upcoming["is_fraud"] == 0)[0])]
    inputs = request_columns(upcoming)
    instances = [
        {
            "card_id": str(upcoming["card_id"][i]),
            EVENT_TIME: float(upcoming["event_time"][i]),  # ahead of the clock: read as of now
            **{n: float(inputs[n][i]) for n in REQUEST_INPUTS},
        }
        for i in rows
    ]
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def ask() -> httpx.Response:
            return client.post("/v1/models/fraud:predict", json={"instances": instances})

        # the deployment reaches the worker within a poll or two
        wait_until(lambda: ask().status_code == 200, 30)
        answer = ask()
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-model-version"] == str(world.champion.version.version)
    predictions = answer.json()["predictions"]
    assert len(predictions) == 2
    for prediction in predictions:
        assert prediction["label"] in (0, 1)
        assert sum(prediction["probabilities"]) == pytest.approx(1.0, abs=1e-5)
