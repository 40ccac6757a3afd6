"""A live training run: buffers params, metrics and tags and writes them in batches.

Per-call cost is a list append; the buffer goes to the run repository as one
batch (one transaction) when it holds ``metric_flush_points`` points, when a
second has passed since the last write, when ``flush()`` is called, and when the
run ends.
A crash therefore loses at most about a second of metrics, never a finished run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from modelyard.errors import ValidationError
from modelyard.store.artifacts import ArtifactRef, ArtifactStore, safe_relative_name
from modelyard.tracking.fingerprint import DataFingerprint, fingerprint
from modelyard.tracking.records import MetricPoint
from modelyard.tracking.repository import RunRepository

_FLUSH_AFTER_S = 1.0


def _check_key(kind: str, key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > 255:
        raise ValidationError(
            f"{kind} name must be a non-empty string of at most 255 characters, got {key!r}"
        )
    return key


class Run:
    """One training run; use as a context manager (``with yard.start_run(...) as run``)."""

    def __init__(
        self,
        run_id: str,
        name: str,
        runs: RunRepository,
        artifacts: ArtifactStore,
        *,
        flush_points: int = 10_000,
    ) -> None:
        self.id = run_id
        self.name = name
        self._runs = runs
        self._artifacts = artifacts
        self._flush_points = flush_points
        self._metrics: list[MetricPoint] = []
        self._params: dict[str, str] = {}
        self._params_written: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._steps: dict[str, int] = {}
        self._last_flush = time.monotonic()
        self.status = "RUNNING"

    # -- logging -----------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Record a hyper-parameter; params are write-once per run."""
        _check_key("param", key)
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if key in self._params and self._params[key] != text:
            raise ValidationError(
                f"param {key!r} was already logged as {self._params[key]!r}; params are write-once"
            )
        self._params[key] = text
        self._maybe_flush()

    def log_params(self, params: dict[str, Any]) -> None:
        for key, value in params.items():
            self.log_param(key, value)

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: float | None = None
    ) -> None:
        """Record one point of a metric; ``step`` defaults to the key's next step."""
        if key not in self._steps:
            _check_key("metric", key)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValidationError(f"metric {key!r} must be a number, got {value!r}") from None
        if step is None:
            step = self._steps.get(key, -1) + 1
        self._steps[key] = step
        self._metrics.append(
            (self.id, key, number, step, time.time() if timestamp is None else timestamp)
        )
        if len(self._metrics) >= self._flush_points or (
            time.monotonic() - self._last_flush > _FLUSH_AFTER_S
        ):
            self.flush()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        now = time.time()
        for key, value in metrics.items():
            self.log_metric(key, value, step=step, timestamp=now)

    def set_tag(self, key: str, value: Any) -> None:
        _check_key("tag", key)
        self._tags[key] = str(value)
        self._maybe_flush()

    def log_artifact(self, path: Path | str, name: str | None = None) -> ArtifactRef:
        """Store a file (content-addressed) under ``name`` (default: the file's name)."""
        source = Path(path)
        return self._record_artifact(
            safe_relative_name(name or source.name), self._artifacts.put_file(source)
        )

    def log_bytes(self, name: str, data: bytes) -> ArtifactRef:
        return self._record_artifact(safe_relative_name(name), self._artifacts.put_bytes(data))

    def log_dataset(self, name: str, data: Any) -> DataFingerprint:
        """Fingerprint a data frame/array the run used (hash, schema, rows) and record it."""
        _check_key("dataset", name)
        fp = fingerprint(data)
        self._runs.record_dataset(self.id, name, fp)
        return fp

    def _record_artifact(self, name: str, ref: ArtifactRef) -> ArtifactRef:
        self._runs.record_artifact(self.id, name, ref)
        return ref

    # -- writing -----------------------------------------------------------------

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush > _FLUSH_AFTER_S:
            self.flush()

    def flush(self) -> None:
        """Write everything buffered in one transaction."""
        metrics, self._metrics = self._metrics, []
        new_params = {k: v for k, v in self._params.items() if self._params_written.get(k) != v}
        tags, self._tags = self._tags, {}
        self._last_flush = time.monotonic()
        if not (metrics or new_params or tags):
            return
        self._runs.write_batch(self.id, metrics, new_params, tags)
        self._params_written.update(new_params)

    def end(self, status: str = "FINISHED") -> None:
        """Flush and mark the run finished (or FAILED/KILLED)."""
        if self.status != "RUNNING":
            return
        self.flush()
        self._runs.end_run(self.id, status, time.time())
        self.status = status

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end("FINISHED")
        else:
            self.end("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, status={self.status!r})"
