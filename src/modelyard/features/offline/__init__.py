"""The offline store: point-in-time training sets over the views' sources, in DuckDB."""

from modelyard.features.offline.engine import OfflineOptions
from modelyard.features.offline.training import get_training_set

__all__ = ["OfflineOptions", "get_training_set"]
