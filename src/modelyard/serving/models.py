"""Which model versions a worker serves, and swapping them when an alias moves.

The server follows references: ``fraud@champion`` (an alias), ``fraud`` (the
latest version) or ``fraud/3`` (pinned). Each worker polls the registry every
``POLL_INTERVAL_S``; when a reference now resolves to another version, the new
version is loaded and warmed on a thread while the old one keeps serving, then
installed with one assignment on the event loop (between two requests, so no
request sees a half-swapped table). Requests already queued or running on the
old version finish there, and it is unloaded once its batcher is idle: an alias
move costs no failed requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from modelyard.errors import (
    ModelNotFoundError,
    ModelNotReadyError,
    ModelyardError,
    RegistryError,
    VersionNotFoundError,
)
from modelyard.registry import ModelRef
from modelyard.serving.hooks import BatchHook
from modelyard.serving.jsonlog import JsonLog
from modelyard.serving.metrics import ServingMetrics
from modelyard.serving.policy import AdmissionPolicy, BatchPolicy
from modelyard.serving.runtime import ModelRuntime, WarmedModel, load_version
from modelyard.serving.tensors import names_list
from modelyard.yard import Yard

POLL_INTERVAL_S = 0.5
# A version that failed to load is retried this long after, not on every poll.
RETRY_FAILED_S = 30.0


def plan_reloads(
    current: Mapping[str, int | None],
    resolved: Mapping[str, int],
    failed: Mapping[tuple[str, int], float],
    now: float,
) -> list[tuple[str, int]]:
    """References whose resolved version differs from the served one, minus versions
    that failed recently: ``[(reference, version), ...]``."""
    return [
        (ref, version)
        for ref, version in resolved.items()
        if current.get(ref) != version and failed.get((ref, version), 0.0) <= now
    ]


@dataclass(eq=False)
class Served:
    """A reference this server follows and the runtime answering for it now."""

    ref: ModelRef
    text: str
    runtime: ModelRuntime | None = None


class ModelTable:
    """Lookup from request paths to runtimes; only mutated on the event loop."""

    def __init__(self, refs: list[ModelRef]) -> None:
        self.served = [Served(ref, str(ref)) for ref in refs]
        self._by_name: dict[str, Served] = {}
        for served in self.served:
            self._by_name.setdefault(served.ref.name, served)
            self._by_name.setdefault(served.text, served)
        self._versions: dict[tuple[str, str], ModelRuntime] = {}
        self.retiring: list[ModelRuntime] = []

    @property
    def ready(self) -> bool:
        return all(served.runtime is not None for served in self.served)

    @property
    def names(self) -> list[str]:
        return sorted({served.ref.name for served in self.served})

    def runtimes(self) -> list[ModelRuntime]:
        """Runtimes currently serving a reference, each once."""
        return list({id(r): r for s in self.served if (r := s.runtime) is not None}.values())

    def loaded(self, name: str, version: int) -> ModelRuntime | None:
        return self._versions.get((name, str(version)))

    def versions_of(self, name: str) -> list[str]:
        return sorted((v for (n, v) in self._versions if n == name), key=int)

    def lookup(self, name: str, version: str | None) -> ModelRuntime:
        """The runtime for a request to ``name`` (its first reference) or ``name``'s ``version``."""
        if version is None:
            served = self._by_name.get(name)
            if served is None:
                raise ModelNotFoundError(
                    f"model {name!r} is not served here; serving {names_list(self.names)}"
                )
            if served.runtime is None:
                raise ModelNotReadyError(f"model {name!r} ({served.text}) is still loading")
            return served.runtime
        runtime = self._versions.get((name, version))
        if runtime is not None:
            return runtime
        if name not in self._by_name:
            raise ModelNotFoundError(
                f"model {name!r} is not served here; serving {names_list(self.names)}"
            )
        raise VersionNotFoundError(
            f"version {version!r} of model {name!r} is not loaded here; loaded: "
            f"{', '.join(self.versions_of(name)) or 'none yet'}"
        )

    def install(self, served: Served, runtime: ModelRuntime) -> ModelRuntime | None:
        """Point ``served`` at ``runtime``; return the old runtime if nothing uses it now."""
        old = served.runtime
        served.runtime = runtime
        self._versions = {(r.name, r.version_text): r for r in self.runtimes()}
        if old is not None and old is not runtime and old not in self._versions.values():
            self.retiring.append(old)
            return old
        return None


class ModelManager:
    """Loads the served references, follows them in the registry, retires old versions."""

    def __init__(
        self,
        yard: Yard,
        refs: list[ModelRef],
        serving: Any,
        *,
        trusted: bool,
        metrics: ServingMetrics,
        log: JsonLog,
        lag: Callable[[], float],
        batch_hooks: list[BatchHook] | None = None,
    ) -> None:
        self.table = ModelTable(refs)
        self._batch_hooks = batch_hooks
        self._yard = yard
        self._trusted = trusted
        self._metrics = metrics
        self._log = log
        self._lag = lag
        self._max_rows = serving.max_rows
        self._max_batch_size = serving.max_batch_size
        self._intra_op_threads = serving.intra_op_threads
        self._max_wait_s = serving.max_batch_wait_us / 1e6
        self._admission = AdmissionPolicy(serving.max_queue_rows)
        self._failed: dict[tuple[str, int], float] = {}
        self._unresolved: dict[str, str] = {}

    async def load_all(self) -> None:
        """Resolve and load every reference; raise if any cannot be served."""
        loop = asyncio.get_running_loop()
        resolved, _ = await loop.run_in_executor(None, self._resolve_all, True)
        for served in self.table.served:
            name, version = resolved[served.text]
            runtime = self.table.loaded(name, version) or await self._load(name, version, served)
            self.table.install(served, runtime)

    async def poll_once(self) -> None:
        """One round of following the registry: load and install versions that moved."""
        loop = asyncio.get_running_loop()
        resolved, errors = await loop.run_in_executor(None, self._resolve_all, False)
        self._report_unresolved(errors)
        current = {s.text: (s.runtime.version if s.runtime else None) for s in self.table.served}
        versions = {text: version for text, (_, version) in resolved.items()}
        for text, version in plan_reloads(current, versions, self._failed, time.monotonic()):
            served = next(s for s in self.table.served if s.text == text)
            name = resolved[text][0]
            try:
                runtime = self.table.loaded(name, version) or await self._load(
                    name, version, served
                )
            except ModelyardError:
                self._failed[(text, version)] = time.monotonic() + RETRY_FAILED_S
                continue
            old = served.runtime
            self.table.install(served, runtime)
            self._metrics.model_load(name, runtime.version_text, "swapped_in")
            self._log.emit(
                "info",
                "model_swapped",
                {
                    "ref": text,
                    "model": name,
                    "from_version": old.version if old else None,
                    "version": version,
                },
            )
        self.retire_idle()

    def retire_idle(self) -> None:
        """Unload replaced versions whose last queued requests have been answered."""
        for runtime in [r for r in self.table.retiring if r.batcher.idle and not r.active]:
            self.table.retiring.remove(runtime)
            runtime.close()
            self._metrics.model_load(runtime.name, runtime.version_text, "unloaded")
            self._log.emit(
                "info", "model_unloaded", {"model": runtime.name, "version": runtime.version}
            )

    def _resolve_all(
        self, strict: bool
    ) -> tuple[dict[str, tuple[str, int]], dict[str, ModelyardError]]:
        """Resolve every reference (on a worker thread: no logging from here)."""
        resolved, errors = {}, {}
        for served in self.table.served:
            try:
                resolved[served.text] = self._yard.registry.resolve(served.ref)
            except ModelyardError as error:
                if strict:
                    raise
                errors[served.text] = error
        return resolved, errors

    def _report_unresolved(self, errors: dict[str, ModelyardError]) -> None:
        """Log a reference that stopped resolving (an alias deleted) once, not every poll;
        the version it had keeps serving."""
        for text, error in errors.items():
            if self._unresolved.get(text) != error.message:
                self._log.emit(
                    "warning",
                    "reference_unresolved",
                    {"ref": text, "error": error.message, "code": error.code},
                )
        self._unresolved = {text: error.message for text, error in errors.items()}

    async def _load(self, name: str, version: int, served: Served) -> ModelRuntime:
        loop = asyncio.get_running_loop()
        job = partial(
            load_version,
            self._yard,
            name,
            version,
            max_rows=self._max_rows,
            max_batch_size=self._max_batch_size,
            trusted=self._trusted,
            intra_op_threads=self._intra_op_threads,
        )
        try:
            warmed: WarmedModel = await loop.run_in_executor(None, job)
        except Exception as failure:  # a runtime's own errors (onnxruntime, OS) included
            error = (
                failure
                if isinstance(failure, ModelyardError)
                else RegistryError(
                    f"cannot load {name}/{version}: {type(failure).__name__}: {failure}"
                )
            )
            self._metrics.model_load(name, str(version), "failed")
            self._log.emit(
                "error",
                "model_load_failed",
                {
                    "ref": served.text,
                    "model": name,
                    "version": version,
                    "code": error.code,
                    "error": error.message,
                },
            )
            raise error from failure
        runtime = ModelRuntime(
            warmed,
            policy=BatchPolicy(warmed.batch_size, self._max_wait_s),
            admission=self._admission,
            loop=loop,
            observe=partial(self._observe_batch, name, str(version)),
            lag=self._lag,
            batch_hooks=self._batch_hooks,
        )
        self._metrics.model_load(name, runtime.version_text, "loaded")
        self._log.emit(
            "info",
            "model_loaded",
            {
                "ref": served.text,
                "model": name,
                "version": version,
                "flavour": runtime.flavour,
                "load_ms": round(warmed.load_s * 1000, 1),
                "batch_size": warmed.batch_size,
                "batch_ms": round(warmed.full_batch_s * 1000, 3),
                "runs_on": runtime.mode,
            },
        )
        return runtime

    def _observe_batch(
        self, name: str, version: str, rows: int, requests: int, seconds: float
    ) -> None:
        self._metrics.batch(name, version, rows)

    def close(self) -> None:
        for runtime in self.table.runtimes() + self.table.retiring:
            runtime.close()
