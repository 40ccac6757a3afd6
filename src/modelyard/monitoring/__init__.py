"""Monitoring: the inference log, feedback labels, drift tests over live windows, and alerts.

Drift results, alert rules, alert events and webhook deliveries are kept through the
ports of ``repository`` (``sql.SqlMonitoringRepository(db)`` on the metadata database,
``InMemoryMonitoringRepository`` in memory, for tests).
"""

from modelyard.monitoring.drift import (
    DriftConfig,
    DriftReport,
    FeatureDrift,
    MultivariateDrift,
    detect_drift,
)
from modelyard.monitoring.feedback import (
    FeedbackItem,
    FeedbackResult,
    FeedbackStore,
    parse_feedback_body,
)
from modelyard.monitoring.feedback_join import joined, request_outcomes
from modelyard.monitoring.inference_log.logger import InferenceLogger, LogStats
from modelyard.monitoring.inference_log.memory import InMemoryInferenceLogRepository
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
from modelyard.monitoring.memory import InMemoryMonitoringRepository
from modelyard.monitoring.repository import (
    AlertRepository,
    DriftResults,
    ModelOf,
    MonitoringRepository,
    WebhookDeliveries,
)

__all__ = [
    "AlertRepository",
    "DriftConfig",
    "DriftReport",
    "DriftResults",
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
    "InMemoryInferenceLogRepository",
    "InMemoryMonitoringRepository",
    "ModelOf",
    "MonitoringRepository",
    "MultivariateDrift",
    "SqlInferenceLogRepository",
    "WebhookDeliveries",
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
