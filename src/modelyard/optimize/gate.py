"""The optimisation gate: may a pruned or quantized candidate become a version?

Pure: it takes the parent's and the candidate's figures, measured on the same CPU and
the same held-out images, and returns a verdict holding every check. A candidate
passes when it is what was asked for (smaller, faster, or either) and its accuracy
stays within ``max_drop_points`` of the parent's overall and ``max_class_drop_points``
on every class: an int8 model that is 0.4 points worse overall but loses 12 on one
digit is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from modelyard.errors import ValidationError

__all__ = ["Figures", "GateCheck", "OptimizePolicy", "Verdict", "judge"]

Goal = Literal["smaller", "faster", "either", "both"]
GOALS: tuple[str, ...] = ("smaller", "faster", "either", "both")


@dataclass(frozen=True)
class Figures:
    """What one model measured: its file size and parameters, latency on this CPU
    (milliseconds, batch 1 and 32, p50 and p99), throughput (rows a second at batch 32),
    and accuracy on the held-out set overall and per class (fractions)."""

    size_bytes: int
    parameters: int
    p50_ms_1: float
    p99_ms_1: float
    p50_ms_32: float
    p99_ms_32: float
    rows_per_s: float
    accuracy: float
    class_accuracy: dict[str, float] = field(default_factory=dict)
    sparsity: float = 0.0

    @property
    def worst_class(self) -> tuple[str, float]:
        """The class with the lowest accuracy, and that accuracy."""
        if not self.class_accuracy:
            return ("", self.accuracy)
        label = min(self.class_accuracy, key=lambda k: (self.class_accuracy[k], k))
        return label, self.class_accuracy[label]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OptimizePolicy:
    """What a candidate must show. Drops are in accuracy points (1.0 = one percentage
    point). ``goal``: ``smaller`` (file at most ``1/min_shrink`` of the parent's),
    ``faster`` (batch-1 p50 at most ``1/min_speedup`` of the parent's), ``either`` or
    ``both``."""

    max_drop_points: float = 1.0
    max_class_drop_points: float = 3.0
    goal: Goal = "either"
    min_shrink: float = 1.0
    min_speedup: float = 1.0

    def __post_init__(self) -> None:
        if self.goal not in GOALS:
            raise ValidationError(
                f"optimize goal {self.goal!r} is unknown; choose one of {', '.join(GOALS)}"
            )
        for name in ("max_drop_points", "max_class_drop_points"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValidationError(f"{name} must be a number >= 0, got {value!r}")
        for name in ("min_shrink", "min_speedup"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 1:
                raise ValidationError(f"{name} must be a number >= 1, got {value!r}")


@dataclass(frozen=True)
class GateCheck:
    """One rule: its name, whether it held, and the figures it compared."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    """Every check of one candidate; it passes when all of them do."""

    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def reason(self) -> str:
        """The failed checks' details joined (or ``passed``)."""
        failed = [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]
        return "; ".join(failed) if failed else "passed"

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def judge(parent: Figures, candidate: Figures, policy: OptimizePolicy) -> Verdict:
    """Check ``candidate`` against ``parent`` under ``policy``."""
    shrink = parent.size_bytes / max(candidate.size_bytes, 1)
    speedup = parent.p50_ms_1 / max(candidate.p50_ms_1, 1e-9)
    smaller = GateCheck(
        "smaller",
        shrink >= policy.min_shrink and candidate.size_bytes < parent.size_bytes,
        f"{candidate.size_bytes} bytes vs {parent.size_bytes} ({shrink:.2f}x, "
        f"asked {policy.min_shrink:g}x)",
    )
    faster = GateCheck(
        "faster",
        speedup >= policy.min_speedup and candidate.p50_ms_1 < parent.p50_ms_1,
        f"p50 {candidate.p50_ms_1:.3f} ms vs {parent.p50_ms_1:.3f} ms at batch 1 "
        f"({speedup:.2f}x, asked {policy.min_speedup:g}x)",
    )
    checks: list[GateCheck] = []
    if policy.goal == "either":
        either = smaller.passed or faster.passed
        checks.append(GateCheck("smaller or faster", either, f"{smaller.detail}; {faster.detail}"))
    if policy.goal in ("smaller", "both"):
        checks.append(smaller)
    if policy.goal in ("faster", "both"):
        checks.append(faster)

    drop = (parent.accuracy - candidate.accuracy) * 100
    checks.append(
        GateCheck(
            "accuracy",
            drop <= policy.max_drop_points + 1e-9,
            f"{candidate.accuracy:.2%} vs {parent.accuracy:.2%} (drop {drop:.2f} points, "
            f"allowed {policy.max_drop_points:g})",
        )
    )
    worst_label, worst_drop = "", float("-inf")
    for label, before in parent.class_accuracy.items():
        after = candidate.class_accuracy.get(label, 0.0)
        class_drop = (before - after) * 100
        if class_drop > worst_drop:
            worst_label, worst_drop = label, class_drop
    if worst_label:
        checks.append(
            GateCheck(
                "every class",
                worst_drop <= policy.max_class_drop_points + 1e-9,
                f"class {worst_label!r} {candidate.class_accuracy.get(worst_label, 0.0):.2%} vs "
                f"{parent.class_accuracy[worst_label]:.2%} (drop {worst_drop:.2f} points, "
                f"allowed {policy.max_class_drop_points:g})",
            )
        )
    return Verdict(tuple(checks))
