"""The retraining loop wired to a process's stores, and its periodic check as a job.

``retraining_loop`` builds a ``pipelines.RetrainingLoop`` over ``RunnerStores``, with
the recommender's CTR judgement (``ctr_judge``) for plans whose A/B metric is ``ctr``;
``RetrainCheckJob`` calls its ``check`` every ``retraining.check_interval_s`` and logs
what each plan decided (a retrain started, a trigger held back and why, a failure).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from modelyard.monitoring.inference_log.repository import LabelledLogRepository
from modelyard.pipelines import CheckResult, RetrainingLoop, StepCache
from modelyard.pipelines.ab import AbLook, ExperimentJudge
from modelyard.recommend.experiment import judge_lists
from modelyard.recommend.logged import logged_lists
from modelyard.routing.abtest import ExperimentReport, Sequential
from modelyard.routing.experiments import Experiment
from modelyard.runner.host import RunnerStores
from modelyard.runner.periodic import EventLog

__all__ = ["RetrainCheckJob", "ctr_judge", "retraining_loop"]


def retraining_loop(
    stores: RunnerStores, *, trusted: bool = False, clock: Callable[[], float] = time.time
) -> RetrainingLoop:
    """The loop over ``stores``; ``trusted``: whether pickle-based champions may load."""
    return RetrainingLoop(
        plans=stores.pipelines,
        deployments=stores.deployments,
        events=stores.routing,
        registry=stores.registry,
        tracker=stores.tracker,
        cache=StepCache(stores.pipelines, stores.artifacts, clock),
        monitoring=stores.monitoring,
        inference_log=stores.inference_log,
        features=lambda: stores.feature_store,
        trusted=trusted,
        clock=clock,
        judges={"ctr": ctr_judge(stores.inference_log)},
    )


def ctr_judge(log: LabelledLogRepository) -> ExperimentJudge:
    """A recommender's A/B judge: the lists each arm answered since the test started and
    the clicks posted on them (``recommend.logged_lists``), judged on CTR with a
    sample-ratio check on users (``recommend.judge_lists``); a mismatch never stops it."""

    def look(
        deployment: str, experiment: Experiment, now: float, previous: ExperimentReport | None
    ) -> AbLook:
        design = experiment.design
        if not isinstance(design, Sequential):  # the loop starts sequential tests only
            raise TypeError(f"the CTR judge needs a sequential design, got {design!r}")
        served, clicks = logged_lists(log, deployment, experiment.started_at, now)
        weights = {arm.name: arm.weight for arm in experiment.arms}
        ab = judge_lists(served, clicks, experiment.control, weights, design, previous)
        srm = {"p_value": ab.srm.p_value, "mismatch": ab.srm.mismatch, "users": ab.srm.counts}
        return AbLook(ab.report, ab.may_stop, ab.reason, {"srm": srm})

    return look


class RetrainCheckJob:
    """``loop.check`` every interval, each plan's outcome logged."""

    name = "retrain-check"
    failure_event = "retrain_check_failed"
    wait_first = False

    def __init__(self, loop: RetrainingLoop, interval_s: float) -> None:
        self._loop = loop
        self.interval_s = interval_s
        self.last: list[CheckResult] = []

    def tick(self, log: EventLog) -> None:
        self.last = self._loop.check()
        for result in self.last:
            decision = result.decision
            fields = {"deployment": result.deployment}
            if result.error is not None:
                log.emit("error", "retrain_check_failed", {**fields, "error": result.error})
            elif result.retrain is not None:
                record = result.retrain
                log.emit(
                    "info",
                    "retrain",
                    {
                        **fields,
                        "trigger": decision.trigger,
                        "reason": decision.reason,
                        "status": record.status,
                        "id": record.id,
                        "version": record.version,
                        "error": record.error,
                    },
                )
            elif decision.held is not None:
                log.emit(
                    "info",
                    "retrain_held",
                    {**fields, "trigger": decision.trigger, "held": decision.held},
                )
