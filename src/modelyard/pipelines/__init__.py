"""Pipelines: reproducible training pipelines and the retraining loop.

Steps (``@step``) run through ``PipelineContext.run`` with their outputs cached by
code, parameters and data content; ``run_pipeline`` tracks one run; the ``gate``
compares a candidate with the champion on held-out rows; ``triggers.decide`` says
when a plan retrains; ``RetrainingLoop`` joins them to the registry and the canary
rollout. The database adapter, ``pipelines.sql.SqlPipelineRepository``, is imported
from its module (it brings SQLAlchemy).
"""

from modelyard.pipelines.cache import StepCache
from modelyard.pipelines.execution import (
    Candidate,
    PipelineContext,
    PipelineOutcome,
    StepRecord,
    run_pipeline,
)
from modelyard.pipelines.gate import GateCheck, GateEvidence, GatePolicy, GateResult, judge
from modelyard.pipelines.loop import CheckResult, RetrainingLoop
from modelyard.pipelines.memory import InMemoryPipelineRepository
from modelyard.pipelines.plan import RetrainPlan, parse_schedule
from modelyard.pipelines.repository import (
    CachedOutput,
    Lease,
    PipelineRepository,
    RetrainRecord,
)
from modelyard.pipelines.steps import Step, step
from modelyard.pipelines.triggers import Signals, TriggerDecision, decide, schedule_due

__all__ = [
    "CachedOutput",
    "Candidate",
    "CheckResult",
    "GateCheck",
    "GateEvidence",
    "GatePolicy",
    "GateResult",
    "InMemoryPipelineRepository",
    "Lease",
    "PipelineContext",
    "PipelineOutcome",
    "PipelineRepository",
    "RetrainPlan",
    "RetrainRecord",
    "RetrainingLoop",
    "Signals",
    "Step",
    "StepCache",
    "StepRecord",
    "TriggerDecision",
    "decide",
    "judge",
    "parse_schedule",
    "run_pipeline",
    "schedule_due",
    "step",
]
