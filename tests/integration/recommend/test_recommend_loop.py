"""The retrain loop's A/B test of a recommender on a real server: simulated users ask
``:recommend`` and post their clicks, the loop's CTR judge reads the inference log, and
a candidate is promoted only when it wins. Clicks on one list posted one by one all
count."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from modelyard.config import load_settings
from modelyard.demos.recommender.traffic import visit_day
from modelyard.pipelines import RetrainingLoop, RetrainPlan
from modelyard.pipelines.ab import CANDIDATE_ARM, CHAMPION_ARM
from modelyard.pipelines.loop import RETRAIN_TAG
from modelyard.pipelines.plan import AbPolicy
from modelyard.recommend import World, example_requests, logged_lists, train_mf, train_popularity
from modelyard.routing import Sequential
from modelyard.runner.host import RunnerStores
from modelyard.runner.retraining import retraining_loop
from modelyard.yard import Yard

AB = AbPolicy(metric="ctr", min_samples_per_arm=100, max_days=1.0)
DESIGN = Sequential(tau=AB.tau, min_samples_per_arm=AB.min_samples_per_arm)


def build(home: Path, world: World) -> None:
    """``rec``: popularity v1 (the champion of ``shop``), MF v2 and popularity v3, both
    tagged as a retrain's candidates."""
    log = world.history(8, np.random.default_rng(5))
    popularity = train_popularity(log, items=world.catalogue(), epsilon=0.0)
    mf = train_mf(log, items=world.catalogue(), factors=8, iterations=10, epsilon=0.0)
    with Yard(load_settings(home=home, environ={})) as yard:
        yard.register_model("rec", popularity, example_requests(popularity))
        yard.register_model("rec", mf, example_requests(mf), tags={RETRAIN_TAG: "1"})
        yard.register_model(
            "rec", popularity, example_requests(popularity), tags={RETRAIN_TAG: "2"}
        )
        yard.deployments.create("shop", "rec", 1, routing_key="field:user")


def start_test(yard_home: Path, champion: int, candidate: int) -> None:
    """The experiment as the loop's ``ab`` rollout starts it."""
    with Yard(load_settings(home=yard_home, environ={})) as yard:
        yard.deployments.start_experiment(
            "shop", [(CHAMPION_ARM, champion, 50.0), (CANDIDATE_ARM, candidate, 50.0)],
            DESIGN, metric="clicked",
        )  # fmt: skip


def run_until_decided(
    loop: RetrainingLoop, plan: RetrainPlan, client: httpx.Client, world: World,
    stores: RunnerStores, wait_until: Any, deadline_s: float = 60.0,
) -> str:  # fmt: skip
    """Visits in rounds, the loop looking after each once the log holds the round."""
    rng = np.random.default_rng(11)
    served = 0
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        visitors = rng.choice(world.n_users, 150, replace=False)
        day = visit_day(client, "shop", world, visitors, 3, rng, time.time())
        started = min(s.at for s in day.served) - 1
        served += len(day.served)

        def logged(since: float = started, count: int = len(day.served)) -> bool:
            lists, _ = logged_lists(stores.inference_log, "shop", since, time.time() + 1)
            return len(lists) >= count

        assert wait_until(logged, 30)
        action = loop.judge_experiment(plan)
        assert action is not None
        if action != "continue":
            return action
    raise AssertionError(f"no decision after {served} lists")


def test_a_winning_recommender_is_promoted_and_a_losing_one_is_not(
    tmp_path: Path, launch_server: Any, wait_until: Any
) -> None:
    home = tmp_path / "home"
    world = World.create(300, 30, seed=4)
    build(home, world)
    start_test(home, 1, 2)
    server = launch_server(home, ["rec"], settings={"poll_interval_s": "0.2"})
    stores = RunnerStores(load_settings(home=home, environ={}))
    try:
        loop = retraining_loop(stores)
        plan = loop.configure(RetrainPlan("shop", "project:unused", rollout_kind="ab", ab=AB))
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert run_until_decided(loop, plan, client, world, stores, wait_until) == "promote"
            shop = stores.deployments.get("shop")
            assert (shop.config.champion, shop.config.experiment) == (2, None)
            (promoted,) = stores.deployments.events("shop", "retrain.ab_promoted", limit=5)
            assert "the candidate won" in promoted.reason
            (report,) = stores.deployments.events("shop", "experiment.report", limit=1)
            assert report.payload["srm"]["mismatch"] is False

            # popularity again, now against MF: it does not win, so it does not ship
            start_test(home, 2, 3)
            assert run_until_decided(loop, plan, client, world, stores, wait_until) == "stop"
            shop = stores.deployments.get("shop")
            assert (shop.config.champion, shop.config.experiment) == (2, None)

            # two clicks on one list, posted one at a time, both count; a repeat once
            answer = client.post("/v1/models/shop:recommend", json={"user": "u1", "k": 3}).json()
            first, second = (i["item"] for i in answer["items"][:2])
            for item in (first, second, first):
                click = {"request_id": answer["id"], "outcome": {"clicked": 1, "item": item}}
                client.post("/v1/feedback", json=click).raise_for_status()

            def both() -> bool:
                _, clicks = logged_lists(stores.inference_log, "shop", 0, time.time() + 1)
                return sorted(c.item for c in clicks if c.request_id == answer["id"]) == sorted(
                    [first, second]
                )

            assert wait_until(both, 30)
    finally:
        stores.close()
