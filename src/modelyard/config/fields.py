"""How one setting is declared and checked: its default, bounds and help, and the
coercion of a raw value (text from an environment variable, a TOML value) to its type."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from modelyard.errors import ConfigurationError


def setting(default: Any, *, help: str, ge: float | None = None, le: float | None = None) -> Any:
    """A field with its bounds (checked on construction) and the one-line ``help`` that the
    configuration reference (docs/configuration.md) is generated from."""
    return field(default=default, metadata={"ge": ge, "le": le, "help": help})


class Checked:
    """Bounds are checked however a section is built: by ``load_settings`` or by hand."""

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):  # type: ignore[arg-type]
            if spec.metadata:
                check_bounds(getattr(self, spec.name), spec.name, spec.metadata)


def coerce(raw: Any, hint: Any, label: str, limits: Mapping[str, Any]) -> Any:
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none")):
            return None
        hint = next(a for a in args if a is not type(None))
    try:
        if hint is bool:
            value: Any = raw if isinstance(raw, bool) else _parse_bool(str(raw))
        elif hint is int and not isinstance(raw, bool):
            value = int(raw)
        elif hint is float and not isinstance(raw, bool):
            value = float(raw)
        elif hint is Path:
            value = Path(raw)
        elif hint is str:
            value = str(raw)
        elif hint == tuple[str, ...]:
            value = _string_tuple(raw)
        else:
            raise ValueError
    except (TypeError, ValueError):
        kind = getattr(hint, "__name__", str(hint))
        raise ConfigurationError(f"setting {label!r} must be {kind}, got {raw!r}") from None
    check_bounds(value, label, limits)
    return value


def _string_tuple(raw: Any) -> tuple[str, ...]:
    """A list setting: a TOML array, or comma-separated text in an environment variable."""
    if isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
        return tuple(raw)
    raise ValueError(raw)


def check_bounds(value: Any, label: str, limits: Mapping[str, Any]) -> None:
    low, high = limits.get("ge"), limits.get("le")
    if value is None:  # an optional setting left unset
        return
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ConfigurationError(f"setting {label!r} must be {bounds}, got {value!r}")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)
