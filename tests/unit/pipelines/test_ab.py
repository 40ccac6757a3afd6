"""What one look at a retrain's A/B test decides: promote only a winning candidate."""

from __future__ import annotations

import pytest

from modelyard.pipelines.ab import AbLook, ab_decision
from modelyard.routing.abtest import ExperimentReport, ExperimentVerdict

DAY = 86_400.0


def look(verdict: str, winner: str | None = None, may_stop: bool | None = None) -> AbLook:
    report = ExperimentReport(ExperimentVerdict(verdict), winner, f"{verdict} {winner}", (), "seq")
    stop = verdict != "continue" if may_stop is None else may_stop
    return AbLook(report, stop, report.reason)


@pytest.mark.parametrize(
    ("seen", "days", "action"),
    [
        (look("winner", "candidate"), 1, "promote"),
        (look("winner", "champion"), 1, "stop"),  # the champion won
        (look("none"), 1, "stop"),  # no difference: nothing to gain
        (look("continue"), 1, "continue"),
        (look("continue"), 7, "stop"),  # undecided past max_days
        (look("winner", "candidate", may_stop=False), 1, "continue"),  # sample ratio mismatch
        (look("winner", "candidate", may_stop=False), 8, "stop"),
    ],
)
def test_only_a_candidate_that_won_a_test_that_may_stop_is_promoted(
    seen: AbLook, days: float, action: str
) -> None:
    decision = ab_decision(seen, started_at=0.0, now=days * DAY, max_s=7 * DAY)
    assert decision.action == action
    assert seen.reason in decision.reason
