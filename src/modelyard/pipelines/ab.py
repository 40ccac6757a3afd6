"""The A/B test a retrain starts: its arms, each look at it, and what the look decides.

A plan with ``rollout_kind="ab"`` sends its registered candidate out as an experiment
``champion`` vs ``candidate`` rather than a canary. At every check of the loop an
``ExperimentJudge`` looks at it (the always-valid sequential test, so looking every
check does not inflate false positives) and ``ab_decision`` says what follows:
promote the candidate when the test may stop with it as the winner; stop, keeping the
champion, when it may stop otherwise (the champion won, or no difference) or when the
plan's ``max_days`` passed; else go on.

``logged_judge`` is the judge for any model: each arm's outcomes (the experiment's
metric, from feedback joined to the inference log) fed to ``routing.abtest.analyze``.
A recommender's judge (``recommend.logged.ctr_judge``) adds a sample-ratio check on
users; the runner wires it for ``metric="ctr"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from modelyard.routing.abtest import ExperimentReport, ExperimentVerdict, analyze
from modelyard.routing.experiments import Experiment, OutcomeSource

__all__ = [
    "CANDIDATE_ARM",
    "CHAMPION_ARM",
    "AbDecision",
    "AbLook",
    "ExperimentJudge",
    "ab_decision",
    "logged_judge",
]

CHAMPION_ARM = "champion"
CANDIDATE_ARM = "candidate"
CTR_FIELD = "clicked"  # the feedback field a recommender's click sets (``metric="ctr"``)


@dataclass(frozen=True)
class AbLook:
    """One look: the report (kept as an ``experiment.report`` event), whether the test
    may stop now, why, and extra figures for the event (a sample-ratio check)."""

    report: ExperimentReport
    may_stop: bool
    reason: str
    figures: Mapping[str, Any] = field(default_factory=dict)


class ExperimentJudge(Protocol):
    """Looks at ``deployment``'s running ``experiment`` at ``now``; ``previous``: the last
    stored report of this run of it (a sequential test continues from it)."""

    def __call__(
        self,
        deployment: str,
        experiment: Experiment,
        now: float,
        previous: ExperimentReport | None,
    ) -> AbLook: ...


@dataclass(frozen=True)
class AbDecision:
    action: Literal["continue", "promote", "stop"]
    reason: str


def ab_decision(look: AbLook, *, started_at: float, now: float, max_s: float) -> AbDecision:
    """What a look at the retrain's A/B test decides (see the module docstring)."""
    if look.may_stop and look.report.winner == CANDIDATE_ARM:
        return AbDecision("promote", f"the candidate won: {look.reason}")
    if look.may_stop:
        return AbDecision("stop", f"the candidate did not win: {look.reason}")
    if now - started_at >= max_s:
        days = (now - started_at) / 86_400.0
        return AbDecision("stop", f"no decision after {days:.3g} days: {look.reason}")
    return AbDecision("continue", look.reason)


def logged_judge(outcomes: OutcomeSource) -> ExperimentJudge:
    """A judge over ``outcomes`` (``routing.LoggedOutcomes`` of the inference log)."""

    def look(
        deployment: str, experiment: Experiment, now: float, previous: ExperimentReport | None
    ) -> AbLook:
        arms = {
            arm.name: outcomes(
                deployment, arm.name, arm.version, experiment, experiment.started_at, now
            )
            for arm in experiment.arms
        }
        report = analyze(
            arms,
            experiment.control,
            experiment.design,
            previous=previous,
            higher_is_better=experiment.higher_is_better,
        )
        return AbLook(report, report.verdict is not ExperimentVerdict.CONTINUE, report.reason)

    return look
