"""The online store: the values and recent events served at request time, and the reads
that turn them into features."""

from modelyard.features.online.backends import open_online_store
from modelyard.features.online.memory import InMemoryOnlineStore
from modelyard.features.online.reads import OnlineFeatures, OnlineQuery, get_online_features
from modelyard.features.online.redis import RedisOnlineStore
from modelyard.features.online.sqlite import SqliteOnlineStore
from modelyard.features.online.store import Event, LatestRow, OnlineStore

__all__ = [
    "Event",
    "InMemoryOnlineStore",
    "LatestRow",
    "OnlineFeatures",
    "OnlineQuery",
    "OnlineStore",
    "RedisOnlineStore",
    "SqliteOnlineStore",
    "get_online_features",
    "open_online_store",
]
