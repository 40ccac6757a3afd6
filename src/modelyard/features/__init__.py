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
from modelyard.features.feature_store import FeatureStore
from modelyard.features.loader import load_definitions
from modelyard.features.materialize import Materialized, materialize, materialize_incremental
from modelyard.features.memory import InMemoryDefinitionRepository
from modelyard.features.offline.engine import OfflineOptions
from modelyard.features.offline.training import get_training_set
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
    "FeatureStore",
    "FeatureView",
    "FileSource",
    "InMemoryDefinitionRepository",
    "Materialized",
    "OfflineOptions",
    "OnDemandFeature",
    "SqlSource",
    "StreamSource",
    "UsedFeatures",
    "get_training_set",
    "load_definitions",
    "materialize",
    "materialize_incremental",
]
