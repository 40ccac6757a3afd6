"""Monitoring: the inference log, feedback labels, and drift tests over live windows."""

from modelyard.monitoring.drift import DriftConfig, DriftReport, FeatureDrift, detect_drift
from modelyard.monitoring.feedback import (
    FeedbackItem,
    FeedbackResult,
    FeedbackStore,
    parse_feedback_body,
)
from modelyard.monitoring.feedback_join import joined, request_outcomes
from modelyard.monitoring.inference_log.logger import InferenceLogger, LogStats
from modelyard.monitoring.inference_log.memory import MemoryInferenceLogRepository
from modelyard.monitoring.inference_log.policy import LogPolicy
from modelyard.monitoring.inference_log.repository import (
    FeedbackRepository,
    InferenceLogRepository,
    LabelledLogRepository,
)
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.monitoring.inference_log.storage import (
    purge,
    read_window,
    retention_sweep,
    write_records,
)
from modelyard.monitoring.inference_log.wal import WriteAheadLog
from modelyard.monitoring.multivariate import MultivariateDrift

__all__ = [
    "DriftConfig",
    "DriftReport",
    "FeatureDrift",
    "FeedbackItem",
    "FeedbackRepository",
    "FeedbackResult",
    "FeedbackStore",
    "InferenceLogRepository",
    "InferenceLogger",
    "LabelledLogRepository",
    "LogPolicy",
    "LogStats",
    "MemoryInferenceLogRepository",
    "MultivariateDrift",
    "SqlInferenceLogRepository",
    "WriteAheadLog",
    "detect_drift",
    "joined",
    "parse_feedback_body",
    "purge",
    "read_window",
    "request_outcomes",
    "retention_sweep",
    "write_records",
]
