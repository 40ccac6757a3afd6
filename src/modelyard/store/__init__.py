"""Where modelyard keeps things: the metadata database and the artifact store.

``Database`` resolves on first use: it imports SQLAlchemy (~0.3 s), which
read-only paths such as loading a model in a fresh process avoid.
"""

import importlib
from typing import TYPE_CHECKING, Any

from modelyard.store.artifacts import (
    ArtifactRef,
    ArtifactStore,
    CachedArtifactStore,
    FsspecArtifactStore,
    LocalArtifactStore,
    open_artifact_store,
    safe_relative_name,
)
from modelyard.store.reader import SqlReader, open_reader

if TYPE_CHECKING:
    from modelyard.store.database import HEAD_REVISION, Database

__all__ = [
    "HEAD_REVISION",
    "ArtifactRef",
    "ArtifactStore",
    "CachedArtifactStore",
    "Database",
    "FsspecArtifactStore",
    "LocalArtifactStore",
    "SqlReader",
    "open_artifact_store",
    "open_reader",
    "safe_relative_name",
]


def __getattr__(name: str) -> Any:
    if name in ("Database", "HEAD_REVISION"):
        return getattr(importlib.import_module("modelyard.store.database"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
