"""The demo's users at the server: each visit asks ``:recommend``, clicks as the hidden
preferences and position bias say, and posts the click as feedback by request id."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
import numpy as np

from modelyard.recommend import Click, Served, World

__all__ = ["Day", "visit_day"]


@dataclass
class Day:
    """What one simulated day served and what was clicked."""

    served: list[Served] = field(default_factory=list)
    clicks: list[Click] = field(default_factory=list)
    fallbacks: int = 0


def visit_day(
    client: httpx.Client,
    deployment: str,
    world: World,
    users: np.ndarray,
    k: int,
    rng: np.random.Generator,
    at: float,
) -> Day:
    """Each of ``users`` visits once; their clicks go back as feedback."""
    day = Day()
    for user in users.tolist():
        started = time.perf_counter()
        answer = client.post(
            f"/v1/models/{deployment}:recommend", json={"user": world.user_id(user), "k": k}
        )
        latency = (time.perf_counter() - started) * 1000
        answer.raise_for_status()
        body = answer.json()
        items = tuple(i["item"] for i in body["items"])
        served = Served(
            body["id"], body["user"], body["arm"], int(body["model_version"]), items,
            tuple(i["propensity"] for i in body["items"]), latency, at,
        )  # fmt: skip
        day.served.append(served)
        day.fallbacks += body["fallback"] is not None
        clicked = world.respond(user, items, rng)
        day.clicks += [Click(served.request_id, items[p]) for p in clicked]
        if clicked:  # the list converted (the A/B metric); the items clicked ride along
            outcome = {"clicked": 1, "items": [items[p] for p in clicked], "position": clicked[0]}
            client.post(
                "/v1/feedback", json={"request_id": served.request_id, "outcome": outcome}
            ).raise_for_status()
    return day
