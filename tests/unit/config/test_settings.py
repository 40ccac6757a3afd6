from pathlib import Path

import pytest

from modelyard.config import ServingSettings, load_settings
from modelyard.errors import ConfigurationError


def test_defaults_work_with_nothing_configured(tmp_path: Path) -> None:
    settings = load_settings(environ={}, toml_path=tmp_path / "absent.toml")
    assert settings.home == Path(".modelyard").resolve()
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.serving.host == "127.0.0.1"
    assert settings.serving.port == 8000


def test_environment_overrides_toml_and_arguments_override_environment(tmp_path: Path) -> None:
    toml = tmp_path / "modelyard.toml"
    toml.write_text('user = "from-toml"\n[serving]\nport = 7000\nworkers = 3\n')
    env = {"MODELYARD_SERVING__PORT": "9001", "MODELYARD_USER": "from-env"}
    settings = load_settings(environ=env, toml_path=toml)
    assert settings.serving.port == 9001
    assert settings.serving.workers == 3
    assert settings.user == "from-env"
    assert load_settings(environ=env, toml_path=toml, user="explicit").user == "explicit"


def test_database_url_switches_backend() -> None:
    url = "postgresql+psycopg://u@127.0.0.1/db"
    assert load_settings(environ={"MODELYARD_DATABASE_URL": url}).resolved_database_url == url


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODELYARD_SERVING__PORT": "abc"}, r"'serving.port' must be int, got 'abc'"),
        ({"MODELYARD_SERVING__PORT": "70000"}, r"'serving.port' must be between 0 and 65535"),
        ({"MODELYARD_SERVNG__PORT": "1"}, r"unknown setting 'servng'"),
        ({"MODELYARD_SERVING__WORKERS": "0"}, r"'serving.workers' must be between 1 and 64"),
        ({"MODELYARD_RUNNER__LEASE_TTL_S": "0.5"}, r"'runner.lease_ttl_s' must be at least 1"),
        (
            {"MODELYARD_RUNNER__LEASE_RENEW_S": "6"},
            r"'runner.lease_renew_s' \(6\) must be at most half of 'runner.lease_ttl_s' \(10\)",
        ),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(environ=env)


def test_sections_built_by_hand_are_checked_too() -> None:
    with pytest.raises(ConfigurationError, match="'max_batch_size' must be between"):
        ServingSettings(max_batch_size=0)


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    toml = tmp_path / "modelyard.toml"
    toml.write_text("serving = [")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings(environ={}, toml_path=toml)
