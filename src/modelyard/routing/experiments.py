"""A/B experiments: their configuration, the outcome source, and the per-arm report.

An ``Experiment`` is part of a deployment's configuration (``DeploymentStore``
starts and stops it); while it runs, traffic is split over its arms by weight,
sticky by routing key. Outcomes come later, as feedback posted by request id
(a label, or a field of a business event); an ``OutcomeSource`` sums them per
arm over a time range, and ``experiment_reports.ExperimentReporter`` feeds
those sums to ``abtest.analyze``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from modelyard.errors import ValidationError
from modelyard.routing.abtest import Conversions, FixedHorizon, MeanSummary, Sequential

__all__ = [
    "Experiment",
    "ExperimentArm",
    "InMemoryOutcomes",
    "LoggedOutcomes",
    "OutcomeKind",
    "OutcomeSource",
    "design_from_dict",
    "design_to_dict",
]

OutcomeKind = Literal["conversion", "mean"]
Design = FixedHorizon | Sequential
Outcomes = Conversions | MeanSummary
_SUM_TOLERANCE = 1e-6
_ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")


@dataclass(frozen=True)
class ExperimentArm:
    """One arm: a name (``a``, ``control``), the model version it serves and its weight."""

    name: str
    version: int
    weight: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _ARM_NAME.match(self.name):
            raise ValidationError(
                f"arm name {self.name!r} is not allowed: use letters, digits, '_', '.', '-'"
            )
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValidationError(
                f"version of arm {self.name!r} must be a positive integer, got {self.version!r}"
            )
        if not (isinstance(self.weight, int | float) and 0 <= self.weight <= 100):
            raise ValidationError(
                f"weight of arm {self.name!r} must be between 0 and 100, got {self.weight!r}"
            )
        object.__setattr__(self, "weight", float(self.weight))


@dataclass(frozen=True)
class Experiment:
    """Arms with weights summing to 100, a control arm, a design and the metric to compare.

    ``metric``: ``label`` (the feedback label itself) or the name of a field of a
    business-event object posted as feedback. ``kind``: ``conversion`` (0/1 outcomes)
    or ``mean`` (any number).
    """

    arms: tuple[ExperimentArm, ...]
    design: Design
    control: str = ""
    metric: str = "label"
    kind: OutcomeKind = "conversion"
    higher_is_better: bool = True
    started_at: float = 0.0

    def __post_init__(self) -> None:
        arms = tuple(self.arms)
        object.__setattr__(self, "arms", arms)
        if len(arms) < 2:
            raise ValidationError(
                f"experiment.arms needs at least two arms, got {[a.name for a in arms]}"
            )
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise ValidationError(f"experiment.arms must have distinct names, got {names}")
        total = math.fsum(a.weight for a in arms)
        if abs(total - 100) > _SUM_TOLERANCE:
            listed = ", ".join(f"{a.name}={a.weight:g}" for a in arms)
            raise ValidationError(
                f"experiment.arms weights must sum to 100, got {total:g} ({listed})"
            )
        if not self.control:
            object.__setattr__(self, "control", names[0])
        elif self.control not in names:
            raise ValidationError(
                f"experiment.control must name one of the arms {names}, got {self.control!r}"
            )
        if self.kind not in ("conversion", "mean"):
            raise ValidationError(
                f"experiment.kind must be 'conversion' or 'mean', got {self.kind!r}"
            )
        if not self.metric:
            raise ValidationError("experiment.metric must name the label or an outcome field")

    def arm(self, name: str) -> ExperimentArm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise ValidationError(
            f"experiment has no arm {name!r}; arms: {', '.join(a.name for a in self.arms)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "arms": [asdict(a) for a in self.arms],
            "design": design_to_dict(self.design),
            "control": self.control,
            "metric": self.metric,
            "kind": self.kind,
            "higher_is_better": self.higher_is_better,
            "started_at": self.started_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        return cls(
            arms=tuple(
                ExperimentArm(a["name"], int(a["version"]), a["weight"]) for a in data["arms"]
            ),
            design=design_from_dict(data["design"]),
            control=data.get("control", ""),
            metric=data.get("metric", "label"),
            kind=data.get("kind", "conversion"),
            higher_is_better=bool(data.get("higher_is_better", True)),
            started_at=float(data.get("started_at", 0.0)),
        )


def design_to_dict(design: Design) -> dict[str, Any]:
    kind = "fixed_horizon" if isinstance(design, FixedHorizon) else "sequential"
    return {"kind": kind, **asdict(design)}


def design_from_dict(data: Mapping[str, Any]) -> Design:
    values = {k: v for k, v in data.items() if k != "kind"}
    kind = data.get("kind")
    try:
        if kind == "fixed_horizon":
            return FixedHorizon(**values)
        if kind == "sequential":
            return Sequential(**values)
    except TypeError as error:
        raise ValidationError(f"experiment.design has an unknown parameter: {error}") from error
    raise ValidationError(
        f"experiment.design.kind must be 'fixed_horizon' or 'sequential', got {kind!r}"
    )


class OutcomeSource(Protocol):
    """Sums one arm's outcomes (feedback joined to its requests) over ``[start, end)``."""

    def __call__(
        self,
        deployment: str,
        arm: str,
        version: int,
        experiment: Experiment,
        start: float,
        end: float,
    ) -> Outcomes: ...


class InMemoryOutcomes:
    """An ``OutcomeSource`` for tests and demos: outcomes recorded by ``add``."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def add(self, deployment: str, arm: str, at: float, value: float) -> None:
        self._values.setdefault((deployment, arm), []).append((at, float(value)))

    def __call__(
        self,
        deployment: str,
        arm: str,
        version: int,
        experiment: Experiment,
        start: float,
        end: float,
    ) -> Outcomes:
        values = [v for at, v in self._values.get((deployment, arm), []) if start <= at < end]
        if experiment.kind == "conversion":
            return Conversions(sum(1 for v in values if v), len(values))
        return MeanSummary.of(values)


# (deployment, arm, version, start, end) -> (request id, label text or None) for every
# request that arm answered in the window, once per label (monitoring's
# ``feedback_join.request_outcomes``; routing does not read the inference log itself).
LoggedRequests = Callable[[str, str, int, float, float], list[tuple[str, str | None]]]


class LoggedOutcomes:
    """Outcomes from the inference log joined to feedback by request id.

    Serving logs each request with the arm that answered it; feedback posted later
    carries a label: a bare number counts when ``experiment.metric`` is ``label``, an
    object by its field of that name. For conversions every logged request is a trial
    and a truthy outcome a success (no feedback: no conversion); for means only
    requests with an outcome count.
    """

    def __init__(self, logged: LoggedRequests) -> None:
        self._logged = logged

    def __call__(
        self,
        deployment: str,
        arm: str,
        version: int,
        experiment: Experiment,
        start: float,
        end: float,
    ) -> Outcomes:
        rows = self._logged(deployment, arm, version, start, end)
        outcomes: dict[str, float | None] = {}
        for request_id, label in rows:
            value = _outcome(label, experiment.metric)
            if value is not None or request_id not in outcomes:
                outcomes[request_id] = value
        if experiment.kind == "conversion":
            return Conversions(sum(1 for v in outcomes.values() if v), len(outcomes))
        return MeanSummary.of(v for v in outcomes.values() if v is not None)


def _outcome(label: str | None, metric: str) -> float | None:
    if label is None:
        return None
    value = json.loads(label)
    if isinstance(value, dict):
        value = value.get(metric)
    elif metric != "label":
        return None  # a bare label is not the business event the metric names
    if isinstance(value, bool | int | float) and math.isfinite(value):
        return float(value)
    return None
