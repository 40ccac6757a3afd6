"""Configuration: one frozen ``Settings`` object per process."""

from modelyard.config.settings import ServingSettings, Settings, TrackingSettings, load_settings

__all__ = ["ServingSettings", "Settings", "TrackingSettings", "load_settings"]
