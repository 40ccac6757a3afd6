"""The step cache: a step's output kept in the artifact store under its cache key.

The output is encoded without pickle (``codecs``) and stored content-addressed; the
index row (``PipelineRepository.put_cached``) is written after the bytes, so a crash
in between leaves an unreferenced blob, never an index row pointing at nothing. An
entry that no longer decodes or whose blob is gone is a miss: the step runs again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from modelyard.errors import ArtifactNotFoundError, IntegrityError
from modelyard.pipelines.codecs import NotCacheable, decode, encode
from modelyard.pipelines.repository import CachedOutput, PipelineRepository
from modelyard.store.artifacts import ArtifactStore

__all__ = ["StepCache"]


class StepCache:
    """Step outputs by cache key, over one home's index and artifact store."""

    def __init__(
        self,
        index: PipelineRepository,
        artifacts: ArtifactStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._index = index
        self._artifacts = artifacts
        self._clock = clock

    def load(self, key: str) -> tuple[Any, str] | None:
        """The stored output of ``key`` and its content digest; None on a miss."""
        entry = self._index.cached(key)
        if entry is None:
            return None
        try:
            value = decode(self._artifacts.get_bytes(entry.artifact_digest, name=entry.step))
        except (ArtifactNotFoundError, IntegrityError, NotCacheable, ValueError, OSError):
            return None
        return value, entry.output_digest

    def store(
        self, key: str, step: str, value: Any, output_digest: str, run_id: str | None
    ) -> str | None:
        """Keep ``value`` under ``key``; returns why it was not kept (None: kept)."""
        try:
            data = encode(value)
        except NotCacheable as error:
            return error.message
        ref = self._artifacts.put_bytes(data)
        self._index.put_cached(
            CachedOutput(key, step, ref.digest, output_digest, self._clock(), run_id)
        )
        return None
