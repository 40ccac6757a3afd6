"""Features: definitions, point-in-time training sets, the online store, streaming
aggregates, and features fetched at serving time."""

from modelyard.features.definitions import (
    Aggregation,
    Entity,
    Feature,
    FeatureRef,
    FeatureView,
    FileSource,
    SqlSource,
    StreamSource,
)

__all__ = [
    "Aggregation",
    "Entity",
    "Feature",
    "FeatureRef",
    "FeatureView",
    "FileSource",
    "SqlSource",
    "StreamSource",
]
