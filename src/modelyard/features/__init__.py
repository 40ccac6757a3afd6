"""Features: definitions, point-in-time training sets, the online store, streaming
aggregates, and features fetched at serving time."""

from modelyard.features.apply import ApplyPlan, UsedFeatures
from modelyard.features.definition_set import Definitions
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
from modelyard.features.loader import load_definitions
from modelyard.features.memory import InMemoryDefinitionRepository
from modelyard.features.on_demand import ON_DEMAND, OnDemandFeature
from modelyard.features.registry import FeatureRegistry
from modelyard.features.repository import DefinitionRepository

__all__ = [
    "ON_DEMAND",
    "Aggregation",
    "ApplyPlan",
    "DefinitionRepository",
    "Definitions",
    "Entity",
    "Feature",
    "FeatureRef",
    "FeatureRegistry",
    "FeatureView",
    "FileSource",
    "InMemoryDefinitionRepository",
    "OnDemandFeature",
    "SqlSource",
    "StreamSource",
    "UsedFeatures",
    "load_definitions",
]
