"""Served lists and clicks read back from the inference log, as the server stored them.

Each ``:recommend`` answer is one logged request (its ``user`` input, its
``recommendations`` output: items and propensities by position, its arm, version and
latency); a click is feedback on its request id whose outcome names the ``item``
clicked (or ``items``, several). What the live figures, the off-policy estimates and the
next training log read, with no record kept by the client.
"""

from __future__ import annotations

import json
from typing import Any

from modelyard.monitoring import LabelledLogRepository, read_window
from modelyard.recommend.feedback import Click, Served
from modelyard.recommend.interactions import InteractionLog

__all__ = ["clicked_items", "clicks_as_interactions", "logged_lists"]


def clicked_items(label: str) -> list[str]:
    """The items a feedback label says were clicked: ``{"item": ...}`` or ``{"items": [...]}``."""
    value: Any = json.loads(label)
    if not isinstance(value, dict) or value.get("clicked", 1) in (0, False):
        return []
    items = value.get("items", [value["item"]] if "item" in value else [])
    return [str(item) for item in items] if isinstance(items, list) else []


def logged_lists(
    log: LabelledLogRepository, deployment: str, start: float, end: float
) -> tuple[list[Served], list[Click]]:
    """The lists ``deployment`` answered in ``[start, end)`` and the clicks posted on them."""
    window = read_window(log, deployment, start, end)
    answers = window.outputs.get("recommendations")
    users = window.inputs.get("user")
    served: list[Served] = []
    if answers is None or users is None:
        return served, []
    for row, request in enumerate(window.row_request.tolist()):
        if int(window.status[request]) != 200:
            continue
        ranked = json.loads(str(answers[row]))
        served.append(
            Served(
                str(window.request_ids[request]),
                str(users[row]),
                str(window.arm[request]),
                int(window.version[request]),
                tuple(ranked["items"]),
                tuple(ranked["propensities"]),
                float(window.latency_ms[request]),
                float(window.ts[request]),
            )
        )
    labels = log.request_labels({s.request_id for s in served})
    clicks = [
        Click(request_id, item)
        for (request_id, _row), label in labels.items()
        for item in clicked_items(label)
    ]
    return served, clicks


def clicks_as_interactions(served: list[Served], clicks: list[Click]) -> InteractionLog:
    """Clicks on served lists as training rows (user, item, time served, weight 1)."""
    by_id = {s.request_id: s for s in served}
    rows = [
        (by_id[c.request_id].user, c.item, by_id[c.request_id].at, 1.0)
        for c in clicks
        if c.request_id in by_id
    ]
    return InteractionLog.of(rows)
