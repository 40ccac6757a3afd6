"""Model references as people type them: ``fraud``, ``fraud/3``, ``fraud@champion``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelyard.errors import ValidationError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_\-]{0,62}$")
RESERVED_ALIASES = frozenset({"latest"})


@dataclass(frozen=True)
class ModelRef:
    """A model name plus at most one of a version number or an alias (neither: latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"model name {name!r} is not allowed: use letters, digits, '_', '.', '-' "
            "(up to 255 characters, starting with a letter or digit)"
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias in RESERVED_ALIASES:
        raise ValidationError(
            f"alias {alias!r} is not allowed: use lowercase letters, digits, '_' or '-', "
            "starting with a letter (and not 'latest')"
        )
    return alias


def parse_ref(text: str) -> ModelRef:
    """Read ``name``, ``name/3``, ``name@alias`` or ``name@latest``."""
    if "@" in text:
        name, alias = text.split("@", 1)
        if alias == "latest":
            return ModelRef(check_model_name(name))
        return ModelRef(check_model_name(name), alias=check_alias(alias))
    if "/" in text:
        name, version = text.split("/", 1)
        check_model_name(name)
        if not version.isdigit() or int(version) < 1:
            raise ValidationError(
                f"version in {text!r} must be a positive integer, got {version!r}"
            )
        return ModelRef(check_model_name(name), version=int(version))
    return ModelRef(check_model_name(text))
