"""Configuration: one frozen ``Settings`` object per process."""

from modelyard.config.sections import (
    FeaturesSettings,
    MonitoringSettings,
    RetrainingSettings,
    RunnerSettings,
    TrackingSettings,
)
from modelyard.config.serving import ServingSettings
from modelyard.config.settings import Settings, load_settings, override

__all__ = [
    "FeaturesSettings",
    "MonitoringSettings",
    "RetrainingSettings",
    "RunnerSettings",
    "ServingSettings",
    "Settings",
    "TrackingSettings",
    "load_settings",
    "override",
]
