"""Monitoring: the inference log, feedback labels, and drift tests over live windows."""

from modelyard.monitoring.drift import DriftConfig, DriftReport, FeatureDrift, detect_drift
from modelyard.monitoring.feedback import (
    FeedbackItem,
    FeedbackResult,
    FeedbackStore,
    parse_feedback_body,
)
from modelyard.monitoring.feedback_join import joined, request_outcomes
from modelyard.monitoring.inference_log import InferenceLogger, LogStats
from modelyard.monitoring.log_policy import LogPolicy
from modelyard.monitoring.log_store import purge, read_window, retention_sweep, write_records
from modelyard.monitoring.multivariate import MultivariateDrift
from modelyard.monitoring.wal import WriteAheadLog

__all__ = [
    "DriftConfig",
    "DriftReport",
    "FeatureDrift",
    "FeedbackItem",
    "FeedbackResult",
    "FeedbackStore",
    "InferenceLogger",
    "LogPolicy",
    "LogStats",
    "MultivariateDrift",
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
