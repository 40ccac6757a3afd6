"""open_online_store: the setting picks the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.config import load_settings
from modelyard.errors import ConfigurationError
from modelyard.features.online.backends import open_online_store
from modelyard.features.online.redis import RedisOnlineStore
from modelyard.features.online.sqlite import SqliteOnlineStore


def test_sqlite_is_the_default_under_the_features_directory(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", environ={})

    store = open_online_store(settings)

    assert isinstance(store, SqliteOnlineStore)
    assert store.path == settings.resolved_features_dir / "online.sqlite"
    assert store.path.exists()
    store.close()


def test_a_redis_url_opens_the_redis_store(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path, environ={"MODELYARD_FEATURES__ONLINE_STORE": "redis://127.0.0.1:6379/0"}
    )

    store = open_online_store(settings)

    assert isinstance(store, RedisOnlineStore)
    assert store.watermark("test-online-backends-nothing") is None  # it answers
    store.close()


@pytest.mark.parametrize("value", ["postgres://x", "memory", "", "redis"])
def test_anything_else_is_a_configuration_error(tmp_path: Path, value: str) -> None:
    settings = load_settings(home=tmp_path, environ={"MODELYARD_FEATURES__ONLINE_STORE": value})

    with pytest.raises(ConfigurationError, match="must be 'sqlite' or a Redis URL"):
        open_online_store(settings)
