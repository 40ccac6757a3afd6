"""Every setting says what it does: the configuration reference (docs/configuration.md) is
generated from each field's ``help``."""

from __future__ import annotations

import dataclasses
from typing import Any

from modelyard.config import Settings


def _fields(cls: type[Any], prefix: str = "") -> list[tuple[str, dataclasses.Field[Any]]]:
    found = []
    for spec in dataclasses.fields(cls):
        default = spec.default_factory() if callable(spec.default_factory) else spec.default
        if dataclasses.is_dataclass(default):
            found += _fields(type(default), f"{prefix}{spec.name}.")
        else:
            found.append((f"{prefix}{spec.name}", spec))
    return found


def test_every_setting_has_a_one_line_help() -> None:
    fields = _fields(Settings)
    assert "serving.request_timeout_s" in dict(fields)
    missing = [name for name, spec in fields if not spec.metadata.get("help")]
    assert missing == []
    multi_line = [name for name, spec in fields if "\n" in spec.metadata["help"]]
    assert multi_line == []
