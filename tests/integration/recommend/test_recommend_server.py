"""Recommenders registered and served through the real server: an A/B deployment of
popularity against matrix factorisation, sticky per user, seen items excluded, cold
start answered by popularity, bad input named, every answer in the inference log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np

from modelyard.config import load_settings
from modelyard.recommend import (
    World,
    arm_figures,
    example_requests,
    join_clicks,
    logged_lists,
    train_mf,
    train_popularity,
)
from modelyard.routing import Sequential
from modelyard.yard import Yard


def build(home: Path) -> dict[str, list[str]]:
    """Register popularity (v1) and MF (v2) as ``rec``, deploy ``shop`` with an A/B test on
    them, sticky by the ``user`` field; each user's training items."""
    world = World.create(60, 40, seed=4)
    log = world.history(6, np.random.default_rng(5))
    seen: dict[str, list[str]] = {}
    for user, item in zip(log.users.tolist(), log.items.tolist(), strict=True):
        seen.setdefault(user, []).append(item)
    with Yard(load_settings(home=home, environ={})) as yard:
        popularity = train_popularity(log, items=world.catalogue())
        mf = train_mf(log, items=world.catalogue(), factors=8, iterations=5)
        yard.register_model("rec", popularity, example_requests(popularity))
        yard.register_model("rec", mf, example_requests(mf))
        yard.deployments.create("shop", "rec", 1, routing_key="field:user")
        yard.deployments.start_experiment(
            "shop", [("popularity", 1, 50.0), ("mf", 2, 50.0)],
            Sequential(tau=0.05, min_samples_per_arm=100),
            metric="clicked",
        )  # fmt: skip
    return seen


def test_recommendations_served_through_an_ab_deployment(
    tmp_path: Path, launch_server: Any, wait_until: Any
) -> None:
    seen = build(tmp_path / "home")
    server = launch_server(tmp_path / "home", ["rec"])
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def ask(path: str = "/v1/models/shop:recommend", **body: Any) -> httpx.Response:
            return client.post(path, json=body)

        arms: dict[str, set[tuple[str, str]]] = {}
        for _ in range(3):
            for n in range(12):
                answer = ask(user=f"u{n}", k=5)
                assert answer.status_code == 200, answer.text
                body = answer.json()
                arms.setdefault(body["user"], set()).add((body["arm"], body["model_version"]))
                assert len(body["items"]) == 5
                assert [i["position"] for i in body["items"]] == list(range(5))
                assert not set(seen[body["user"]]) & {i["item"] for i in body["items"]}
                assert body["fallback"] is None
                assert answer.headers["x-request-id"] == body["id"]
        assert all(len(chosen) == 1 for chosen in arms.values()), arms  # sticky per user
        assert {arm for chosen in arms.values() for arm, _ in chosen} == {"popularity", "mf"}

        cold = ask(user="a-new-user", k=3).json()
        assert cold["fallback"] == "popularity"
        assert len(cold["items"]) == 3

        hidden = ask(user="u0", k=3, exclude=["i1", "not-an-item"]).json()
        assert "i1" not in {i["item"] for i in hidden["items"]}
        everything = ask(user="u0", k=10_000).json()
        assert len(everything["items"]) == 40 - len(set(seen["u0"]))  # clamped
        shown = ask(user="u0", k=40, exclude_seen=False).json()
        assert len(shown["items"]) == 40
        only = ask(user="u1", k=5, candidates=["i2", "i3"]).json()
        assert {i["item"] for i in only["items"]} <= {"i2", "i3"}

        for body, field in [
            ({"k": 3}, "'user'"),
            ({"user": ["u1"]}, "'user'"),
            ({"user": "u1", "k": "ten"}, "'k'"),
            ({"user": "u1", "k": 0}, "'k'"),
            ({"user": "u1", "exclude": "i1"}, "'exclude'"),
            ({"user": "u1", "candidates": [None]}, "'candidates[0]'"),
            ({"user": "u1", "colour": "red"}, "'colour'"),
        ]:
            refused = client.post("/v1/models/shop:recommend", json=body)
            assert refused.status_code == 422, (body, refused.text)
            assert field in refused.json()["error"], refused.text
        assert client.post("/v1/models/shop:recommend", content=b"{not json").status_code == 400
        assert client.post("/v1/models/nothing:recommend", json={"user": "u"}).status_code == 404

        # every answer is in the inference log: a click posted on its request id joins it
        clicked = cold["items"][1]["item"]
        click = {"request_id": cold["id"], "outcome": {"clicked": 1, "items": [clicked]}}

        def joined() -> bool:
            return bool(client.post("/v1/feedback", json=click).json().get("joined"))

        assert wait_until(joined, 30)
        assert client.post("/v1/feedback", json=click).status_code == 200  # again: once

    # the server's log holds each list as answered, with the click joined at its position
    with Yard(load_settings(home=tmp_path / "home", environ={})) as yard:
        served, clicks = logged_lists(yard.inference_log, "shop", 0, 4e9)
    by_id = {s.request_id: s for s in served}
    logged = by_id[cold["id"]]
    assert logged.items == tuple(i["item"] for i in cold["items"])
    assert logged.user == "a-new-user"
    assert logged.propensities == tuple(i["propensity"] for i in cold["items"])
    assert join_clicks(served, clicks).clicks == {cold["id"]: frozenset({1})}
    figures = {f.arm: f for f in arm_figures(served, join_clicks(served, clicks), 40)}
    assert set(figures) == {"popularity", "mf"}
    assert sum(f.clicks for f in figures.values()) == 1
