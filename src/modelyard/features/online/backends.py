"""Which online store a process opens: ``settings.features.online_store`` says, by scheme."""

from __future__ import annotations

from urllib.parse import urlsplit

from modelyard.config import Settings
from modelyard.errors import ConfigurationError
from modelyard.features.online.redis import RedisOnlineStore
from modelyard.features.online.sqlite import SqliteOnlineStore
from modelyard.features.online.store import OnlineStore

SQLITE_FILE = "online.sqlite"
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def open_online_store(settings: Settings) -> OnlineStore:
    """The SQLite store under ``<home>/features`` for ``"sqlite"``, the Redis store for a
    ``redis://`` (``rediss://``, ``unix://``) URL; anything else is a ``ConfigurationError``."""
    configured = settings.features.online_store.strip()
    if configured == "sqlite":
        return SqliteOnlineStore(settings.resolved_features_dir / SQLITE_FILE)
    if urlsplit(configured).scheme in _REDIS_SCHEMES:
        return RedisOnlineStore(configured)
    raise ConfigurationError(
        f"setting 'features.online_store' must be 'sqlite' or a Redis URL "
        f"(redis://host:port/db), got {configured!r}"
    )
