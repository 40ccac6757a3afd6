"""Routing: deployments, traffic assignment, canary rollouts, shadows and A/B experiments.

The database adapter, ``routing.sql.SqlDeploymentRepository``, is imported from its
module (it brings SQLAlchemy); ``routing.memory`` holds the in-memory ones.
"""

from modelyard.routing.abtest import (
    ArmReport,
    Conversions,
    ExperimentReport,
    ExperimentVerdict,
    FixedHorizon,
    MeanSummary,
    Sequential,
    analyze,
    sample_size_conversions,
    sample_size_means,
)
from modelyard.routing.analysis import ArmTraffic, CheckResult, Outcome
from modelyard.routing.assignment import TrafficSplit, bucket
from modelyard.routing.canary import (
    Decision,
    Phase,
    RolloutEvent,
    RolloutPolicy,
    RolloutState,
    Verdict,
    abort,
    decide,
    pause,
    promote,
    resume,
    start_rollout,
)
from modelyard.routing.controller import (
    InMemoryMetrics,
    MetricsSource,
    RolloutController,
    TickResult,
)
from modelyard.routing.deployment import (
    Deployment,
    DeploymentConfig,
    Destination,
    Event,
    FeatureInputs,
    HistoryEntry,
    Rollout,
    RoutingKey,
    Shadow,
)
from modelyard.routing.deployment_store import DeploymentStore
from modelyard.routing.experiment_reports import ExperimentReporter
from modelyard.routing.experiments import (
    Experiment,
    ExperimentArm,
    InMemoryOutcomes,
    LoggedOutcomes,
    OutcomeSource,
)
from modelyard.routing.memory import InMemoryCatalog, InMemoryDeploymentRepository
from modelyard.routing.repository import (
    CatalogVersion,
    DeploymentRepository,
    EventLog,
    Revision,
    VersionCatalog,
)
from modelyard.routing.targets import TARGETS, Target

__all__ = [
    "ArmReport",
    "CatalogVersion",
    "DeploymentRepository",
    "EventLog",
    "InMemoryCatalog",
    "InMemoryDeploymentRepository",
    "Revision",
    "VersionCatalog",
    "CheckResult",
    "Conversions",
    "Decision",
    "Deployment",
    "DeploymentConfig",
    "DeploymentStore",
    "Event",
    "FeatureInputs",
    "Experiment",
    "ExperimentArm",
    "ExperimentReport",
    "ExperimentReporter",
    "ExperimentVerdict",
    "FixedHorizon",
    "HistoryEntry",
    "InMemoryMetrics",
    "InMemoryOutcomes",
    "LoggedOutcomes",
    "MeanSummary",
    "ArmTraffic",
    "MetricsSource",
    "Outcome",
    "OutcomeSource",
    "Phase",
    "Rollout",
    "RolloutController",
    "RolloutEvent",
    "RolloutPolicy",
    "RolloutState",
    "Destination",
    "RoutingKey",
    "Sequential",
    "Shadow",
    "TARGETS",
    "Target",
    "TickResult",
    "TrafficSplit",
    "Verdict",
    "abort",
    "analyze",
    "bucket",
    "decide",
    "pause",
    "promote",
    "resume",
    "sample_size_conversions",
    "sample_size_means",
    "start_rollout",
]
