"""Configuration: one frozen ``Settings`` object per process."""

from modelyard.config.settings import (
    MonitoringSettings,
    ServingSettings,
    Settings,
    TrackingSettings,
    load_settings,
)

__all__ = ["MonitoringSettings", "ServingSettings", "Settings", "TrackingSettings", "load_settings"]
