"""The one ``Settings`` object, read from ``MODELYARD_*`` env vars and ``modelyard.toml``.

Priority, highest first: arguments passed to ``load_settings(...)``,
environment variables, ``modelyard.toml`` in the working directory, defaults.
Nested sections use ``__`` in env names (``MODELYARD_SERVING__PORT=9000``) and
tables in TOML (``[serving]``).

Written on stdlib dataclasses rather than pydantic-settings on purpose:
pydantic-settings costs ~0.25 s of import on this 2-core machine, most of the
0.3 s budget for loading a model in a fresh process (issue 2), and settings
are a few dozen typed scalars whose checks fit in ``fields.coerce``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.config.fields import coerce, setting
from modelyard.config.sections import (
    FeaturesSettings,
    MonitoringSettings,
    RetrainingSettings,
    RunnerSettings,
    TrackingSettings,
)
from modelyard.config.serving import ServingSettings
from modelyard.errors import ConfigurationError

ENV_PREFIX = "MODELYARD_"
TOML_FILE = "modelyard.toml"


@dataclass(frozen=True)
class Settings:
    """Everything modelyard can be configured with; built once per process."""

    home: Path = setting(
        Path(".modelyard"),
        help="Where the SQLite database, artifacts, logs and write-ahead log live.",
    )
    database_url: str | None = setting(
        None,
        help="The metadata database (`postgresql+psycopg://user@host/db`); "
        "none: SQLite in the home.",
    )
    artifacts_url: str | None = setting(
        None, help="A directory or an fsspec URL (`s3://bucket/prefix`); none: `<home>/artifacts`."
    )
    artifacts_cache: bool = setting(
        True,
        help="With an fsspec `artifacts_url`: keep each artifact read under "
        "`<home>/cache/artifacts`, verified by sha256 before each use, so a restart "
        "does not download it again.",
    )
    user: str | None = setting(
        None, help="Who is recorded as the author of runs, versions, alias moves and trust marks."
    )
    serving: ServingSettings = field(default_factory=ServingSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    features: FeaturesSettings = field(default_factory=FeaturesSettings)
    retraining: RetrainingSettings = field(default_factory=RetrainingSettings)
    runner: RunnerSettings = field(default_factory=RunnerSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser().resolve())

    @property
    def resolved_database_url(self) -> str:
        """The metadata database: the configured URL, else SQLite under ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'modelyard.db'}"

    @property
    def resolved_wal_dir(self) -> Path:
        """Where serving workers keep the inference log's write-ahead log."""
        return self.monitoring.wal_dir or self.home / "wal"

    @property
    def resolved_log_path(self) -> Path | str:
        """Where the server's JSON log goes: ``serving.log_path``, else
        ``<home>/logs/serving.jsonl``."""
        configured = self.serving.log_path
        return configured if configured is not None else self.home / "logs" / "serving.jsonl"

    @property
    def resolved_features_dir(self) -> Path:
        """Where the feature store keeps its files: the SQLite online store, pushed events."""
        return self.home / "features"

    @property
    def resolved_offline_dir(self) -> Path:
        """Where pushed events are appended, as Parquet, for the offline store."""
        return self.features.offline_dir or self.resolved_features_dir / "offline"

    @property
    def resolved_artifacts_url(self) -> str:
        """Where artifacts live: the configured URL or directory, else ``home/artifacts``."""
        return self.artifacts_url or str(self.home / "artifacts")

    @property
    def resolved_artifacts_cache(self) -> Path | None:
        """Where artifacts read from a remote ``artifacts_url`` are kept (none: not kept);
        a local store is read in place and has no cache."""
        return self.home / "cache" / "artifacts" if self.artifacts_cache else None


def load_settings(
    *,
    environ: Mapping[str, str] | None = None,
    toml_path: Path | None = None,
    **overrides: Any,
) -> Settings:
    """Build the process's settings; ``overrides`` win over env, env over the TOML file."""
    merged: dict[str, Any] = {}
    path = toml_path or Path(TOML_FILE)
    if path.is_file():
        try:
            _merge(merged, tomllib.loads(path.read_text("utf-8")))
        except tomllib.TOMLDecodeError as error:
            raise ConfigurationError(f"{path} is not valid TOML: {error}") from error
    _merge(merged, _from_env(os.environ if environ is None else environ))
    _merge(merged, {k: v for k, v in overrides.items() if v is not None})
    settings: Settings = _build(Settings, merged, "")
    return settings


def override(settings: Settings, **sections: Mapping[str, Any]) -> Settings:
    """``settings`` with values of its sections replaced (``serving={"port": 9000}``), checked
    as ``load_settings`` checks them: a command line's flags over the process's settings."""
    changed = {
        name: dataclasses.replace(getattr(settings, name), **values)
        for name, values in sections.items()
    }
    return dataclasses.replace(settings, **changed)


def environment_without_settings() -> dict[str, str]:
    """This process's environment without its ``MODELYARD_*`` settings: for a child process
    (``modelyard serve`` started by the demo) that must take its settings from its caller,
    not from whatever pointed this process elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == f"{ENV_PREFIX}TEST_POSTGRES_URL":
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        target = result
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return result


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            into[key] = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        else:
            into[key] = value


def _build(cls: type[Any], values: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigurationError(
            f"unknown setting {prefix}{unknown[0]!r}; known: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, raw in values.items():
        hint, label = hints[name], f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            if not isinstance(raw, Mapping):
                raise ConfigurationError(f"setting {label!r} must be a section, got {raw!r}")
            kwargs[name] = _build(hint, raw, f"{label}.")  # type: ignore[arg-type]
        else:
            kwargs[name] = coerce(raw, hint, label, known[name].metadata)
    return cls(**kwargs)
