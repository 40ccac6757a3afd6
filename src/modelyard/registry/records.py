"""What the registry stores: registered models, their immutable versions, alias moves.

Plain values that the registry's ports take and return (``registry.repository``),
plus the not-found errors every reader and writer raises with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelyard.errors import AliasNotFoundError, ModelNotFoundError, VersionNotFoundError
from modelyard.registry.signature import Signature

# The lineage entry that marks a version trusted (see ``ModelVersion.trust``).
TRUST_KEY = "trusted"


@dataclass(frozen=True)
class ModelVersion:
    """One immutable version of a registered model."""

    model: str
    version: int
    flavour: str
    artifact_digest: str
    artifact_size: int
    signature: Signature
    profile_digest: str | None
    metrics: dict[str, float]
    lineage: dict[str, Any]
    run_id: str | None
    parent_version: int | None
    description: str
    created_at: float
    created_by: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def trust(self) -> dict[str, Any] | None:
        """Who marked this version trusted at registration, when and why (``by``, ``at``,
        ``reason``); None when nobody did. Kept in ``lineage``, which is written once with
        the version and never changed, unlike tags: trust cannot be granted afterwards."""
        mark = self.lineage.get(TRUST_KEY)
        return mark if isinstance(mark, dict) else None


@dataclass(frozen=True)
class VersionPage:
    """One page of a model's versions, newest first, and the token of the next page
    (None on the last)."""

    versions: list[ModelVersion]
    next_page_token: str | None


@dataclass(frozen=True)
class ModelPage:
    """One page of registered models, by name, and the token of the next page (None on
    the last)."""

    models: list[RegisteredModel]
    next_page_token: str | None


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str
    created_at: float
    updated_at: float
    latest_version: int | None
    aliases: dict[str, int]
    tags: dict[str, str]


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias: from which version to which (None: unset), by whom, why, when."""

    alias: str
    from_version: int | None
    to_version: int | None
    actor: str | None
    reason: str
    at: float


@dataclass(frozen=True)
class VersionDraft:
    """A version about to be stored: everything but its number, which the store allocates."""

    flavour: str
    artifact_digest: str
    artifact_size: int
    signature: Signature
    profile_digest: str | None
    metrics: dict[str, float]
    lineage: dict[str, Any]
    run_id: str | None
    parent_version: int | None
    description: str
    created_at: float
    created_by: str | None
    tags: dict[str, str] = field(default_factory=dict)

    def check_number(self, model: str, number: int) -> None:
        """Refuse to become version ``number`` of ``model`` if its parent does not exist
        yet: numbers only grow, so a parent must be below the number allocated."""
        if self.parent_version is not None and self.parent_version >= number:
            raise VersionNotFoundError(
                f"parent version {self.parent_version} of {model!r} does not exist"
            )


def model_not_found(name: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"no registered model named {name!r}")


def version_not_found(name: str, version: int) -> VersionNotFoundError:
    return VersionNotFoundError(f"model {name!r} has no version {version}")


def alias_not_found(name: str, alias: str) -> AliasNotFoundError:
    return AliasNotFoundError(f"model {name!r} has no alias {alias!r}")
