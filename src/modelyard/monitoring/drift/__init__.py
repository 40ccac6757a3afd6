"""Drift tests: per-feature statistics (``univariate``), a joint test (``multivariate``),
the samples they read (``samples``), and the verdict over a whole dataset (``detection``)."""

from modelyard.monitoring.drift.detection import (
    DriftConfig,
    DriftReport,
    FeatureDrift,
    detect_drift,
)
from modelyard.monitoring.drift.multivariate import MultivariateDrift

__all__ = ["DriftConfig", "DriftReport", "FeatureDrift", "MultivariateDrift", "detect_drift"]
