"""Reports on a running A/B experiment, each kept as an ``experiment.report`` event.

``ExperimentReporter`` sums every arm's outcomes since the experiment started
(an ``OutcomeSource``), feeds them to ``abtest.analyze`` and appends the report
to the deployment's events, so a sequential design's next look continues from
the last one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from modelyard.routing.abtest import ArmReport, ExperimentReport, ExperimentVerdict, analyze
from modelyard.routing.deployment import Event
from modelyard.routing.experiments import Experiment, OutcomeSource
from modelyard.routing.repository import EventLog

__all__ = ["ExperimentReporter", "report_from_dict", "report_to_dict"]

_KIND = "experiment.report"
_LOOKBACK = 20  # reports searched for the last one of this run of the experiment


class ExperimentReporter:
    """Reports a running experiment and keeps each report as an ``experiment.report`` event."""

    def __init__(
        self, events: EventLog, source: OutcomeSource, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._events = events
        self._source = source
        self._clock = clock

    def report(
        self,
        deployment: str,
        experiment: Experiment,
        *,
        now: float | None = None,
        actor: str | None = None,
    ) -> ExperimentReport:
        """Analyse every arm since the experiment started; store and return the report."""
        end = self._clock() if now is None else now
        outcomes = {
            arm.name: self._source(
                deployment, arm.name, arm.version, experiment, experiment.started_at, end
            )
            for arm in experiment.arms
        }
        previous = self.last_report(deployment, experiment)
        result = analyze(
            outcomes,
            experiment.control,
            experiment.design,
            previous=previous,
            higher_is_better=experiment.higher_is_better,
        )
        payload = {"started_at": experiment.started_at, "report": report_to_dict(result)}
        self._events.record(Event(end, _KIND, deployment, result.reason, payload, actor))
        return result

    def last_report(self, deployment: str, experiment: Experiment) -> ExperimentReport | None:
        """The latest stored report of this run of the experiment, if any."""
        return last_report(self._events, deployment, experiment)


def last_report(
    events: EventLog, deployment: str, experiment: Experiment
) -> ExperimentReport | None:
    """The latest report of this run of ``deployment``'s experiment stored in ``events``."""
    for event in events.events(deployment, _KIND, limit=_LOOKBACK):
        if event.kind == _KIND and event.payload.get("started_at") == experiment.started_at:
            return report_from_dict(event.payload["report"])
    return None


def report_to_dict(report: ExperimentReport) -> dict[str, Any]:
    return {**asdict(report), "verdict": report.verdict.value}


def report_from_dict(data: Mapping[str, Any]) -> ExperimentReport:
    arms = tuple(ArmReport(**arm) for arm in data["arms"])
    return ExperimentReport(
        ExperimentVerdict(data["verdict"]), data["winner"], data["reason"], arms, data["design"]
    )
