"""Configuration: one frozen ``Settings`` object per process."""

from modelyard.config.settings import (
    FeaturesSettings,
    MonitoringSettings,
    RetrainingSettings,
    RunnerSettings,
    ServingSettings,
    Settings,
    TrackingSettings,
    load_settings,
    override,
)

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
