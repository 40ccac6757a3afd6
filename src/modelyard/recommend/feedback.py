"""Served lists joined with the clicks posted against them, and live figures per arm.

A ``Served`` is one answer of ``:recommend`` as the inference log keeps it (request
id, arm, version, the items by position with their propensities, latency); a
``Click`` names a request id and an item. ``join_clicks`` pairs them: a click is
counted once per (request id, item) however often it is posted, takes the position
the item was shown at, and a click on an item the request never showed is refused.
``ArmFigures`` folds the joined lists into CTR, click-through by position,
catalogue coverage and latency per arm and version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ArmFigures", "Click", "Joined", "Served", "arm_figures", "join_clicks"]


@dataclass(frozen=True)
class Served:
    request_id: str
    user: str
    arm: str
    version: int
    items: tuple[str, ...]
    propensities: tuple[float, ...]
    latency_ms: float = 0.0
    at: float = 0.0


@dataclass(frozen=True)
class Click:
    request_id: str
    item: str


@dataclass(frozen=True)
class Joined:
    """Each served list with the positions clicked; clicks that matched nothing."""

    clicks: dict[str, frozenset[int]] = field(default_factory=dict)
    unmatched: tuple[Click, ...] = ()


def join_clicks(served: Iterable[Served], clicks: Iterable[Click]) -> Joined:
    """Positions clicked per request id; a duplicate click counts once."""
    positions = {s.request_id: {item: i for i, item in enumerate(s.items)} for s in served}
    found: dict[str, set[int]] = {}
    unmatched: list[Click] = []
    for click in clicks:
        at = positions.get(click.request_id, {}).get(click.item)
        if at is None:
            unmatched.append(click)
        else:
            found.setdefault(click.request_id, set()).add(at)
    return Joined({r: frozenset(p) for r, p in found.items()}, tuple(unmatched))


@dataclass(frozen=True)
class ArmFigures:
    """One arm's live figures: lists served, clicks, CTR (lists with a click over lists),
    click-through by position (clicks at position over lists that showed one),
    coverage of the catalogue, latency p50/p99."""

    arm: str
    version: int
    lists: int
    clicked_lists: int
    clicks: int
    ctr: float
    ctr_at_position: tuple[float, ...]
    coverage: float
    latency_p50_ms: float
    latency_p99_ms: float


def arm_figures(served: Sequence[Served], joined: Joined, catalogue_size: int) -> list[ArmFigures]:
    """Figures per (arm, version), in order of first appearance."""
    groups: dict[tuple[str, int], list[Served]] = {}
    for s in served:
        groups.setdefault((s.arm, s.version), []).append(s)
    figures = []
    for (arm, version), lists in groups.items():
        depth = max((len(s.items) for s in lists), default=0)
        shown = np.zeros(depth)
        hits = np.zeros(depth)
        clicked = clicks = 0
        items: set[str] = set()
        for s in lists:
            shown[: len(s.items)] += 1
            items.update(s.items)
            at = joined.clicks.get(s.request_id, frozenset())
            clicked += bool(at)
            clicks += len(at)
            for position in at:
                hits[position] += 1
        latency = np.asarray([s.latency_ms for s in lists])
        figures.append(
            ArmFigures(
                arm,
                version,
                len(lists),
                clicked,
                clicks,
                clicked / len(lists),
                tuple(float(h / n) if n else 0.0 for h, n in zip(hits, shown, strict=True)),
                len(items) / catalogue_size if catalogue_size else 0.0,
                float(np.percentile(latency, 50)),
                float(np.percentile(latency, 99)),
            )
        )
    return figures
