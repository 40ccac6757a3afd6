"""Configuration: one frozen ``Settings`` object per process."""

from modelyard.config.settings import (
    MonitoringSettings,
    ServingSettings,
    Settings,
    TrackingSettings,
    load_settings,
    override,
)

__all__ = [
    "MonitoringSettings",
    "ServingSettings",
    "Settings",
    "TrackingSettings",
    "load_settings",
    "override",
]
