"""Which model versions a worker serves, and swapping them when an alias or a deployment moves.

The server follows references: ``fraud@champion`` (an alias), ``fraud`` (the
latest version) or ``fraud/3`` (pinned), and every deployment of the routing
store (see ``deployments``). Each worker polls the registry and the store every
``serving.poll_interval_s``; when a reference now resolves to another version, the new
version is loaded and warmed on a thread while the old one keeps serving, then
installed with one assignment on the event loop (between two requests, so no
request sees a half-swapped table). Requests already queued or running on the
old version finish there, and it is unloaded once its batcher is idle: an alias
move costs no failed requests. A version used by several references or
deployments is loaded once per worker and shared.
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
from modelyard.serving.hosting.outcomes import InferenceRecorder
from modelyard.serving.hosting.policy import AdmissionPolicy, BatchPolicy, call_hung
from modelyard.serving.hosting.runtime import (
    ModelRuntime,
    VersionSource,
    WarmedModel,
    load_version,
)
from modelyard.serving.hosting.served_deployment import (
    DeploymentFollower,
    DeploymentSource,
    FeatureSource,
    ServedDeployment,
)
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.serving.telemetry.metrics import ServingMetrics
from modelyard.serving.wire.messages import names_list

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
        # Replaced whole (one assignment per entry) when a deployment's revision moves.
        self.deployments: dict[str, ServedDeployment] = {}
        # Deployments that must be served before the server is ready (``serving.deployments``).
        self.awaited: frozenset[str] = frozenset()

    @property
    def ready(self) -> bool:
        served = all(served.runtime is not None for served in self.served)
        return served and self.awaited <= self.deployments.keys()

    @property
    def names(self) -> list[str]:
        return sorted({served.ref.name for served in self.served} | set(self.deployments))

    def runtimes(self) -> list[ModelRuntime]:
        """Runtimes currently serving a reference or a deployment, each once."""
        found = {id(r): r for s in self.served if (r := s.runtime) is not None}
        for entry in self.deployments.values():
            for runtime in entry.runtimes.values():
                found.setdefault(id(runtime), runtime)
        return list(found.values())

    def deployment(self, name: str | None, version: str | None) -> ServedDeployment | None:
        """The deployment a request to ``name`` is routed by (None for a pinned version)."""
        return self.deployments.get(name) if version is None and name is not None else None

    def loaded(self, name: str, version: int) -> ModelRuntime | None:
        return self._versions.get((name, str(version)))

    def versions_of(self, name: str) -> list[str]:
        return sorted((v for (n, v) in self._versions if n == name), key=int)

    def lookup(self, name: str, version: str | None) -> ModelRuntime:
        """The runtime for a request to ``name`` (its first reference, or a deployment's
        champion) or ``name``'s ``version``."""
        entry = self.deployments.get(name)
        if entry is not None:
            return entry.runtime_for(version)
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
        if name not in self._by_name and all(
            e.deployment.config.model != name for e in self.deployments.values()
        ):
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
        retired = self._refresh([] if old is None else [old])
        return retired[0] if retired else None

    def install_deployment(self, entry: ServedDeployment) -> list[ModelRuntime]:
        """Serve ``entry`` from the next request on; return the runtimes nothing uses now."""
        old = self.deployments.get(entry.name)
        self.deployments[entry.name] = entry
        return self._refresh([] if old is None else list(old.runtimes.values()))

    def remove_deployment(self, name: str) -> list[ModelRuntime]:
        """Stop serving deployment ``name``; return the runtimes nothing uses now."""
        old = self.deployments.pop(name, None)
        return self._refresh([] if old is None else list(old.runtimes.values()))

    def _refresh(self, candidates: list[ModelRuntime]) -> list[ModelRuntime]:
        """Re-index the loaded versions; queue ``candidates`` no longer used for unloading."""
        current = self.runtimes()
        self._versions = {(r.name, r.version_text): r for r in current}
        in_use = {id(r) for r in current}
        retired = []
        for runtime in candidates:
            if id(runtime) not in in_use and runtime not in self.retiring:
                self.retiring.append(runtime)
                retired.append(runtime)
        return retired


class ModelManager:
    """Loads the served references and deployments, follows them in the registry and the
    deployment store (when given), retires old versions."""

    def __init__(
        self,
        versions: VersionSource,
        refs: list[ModelRef],
        serving: Any,
        *,
        trusted: bool,
        metrics: ServingMetrics,
        log: JsonLog,
        lag: Callable[[], float],
        recorder: InferenceRecorder | None = None,
        deployments: DeploymentSource | None = None,
        features: FeatureSource | None = None,
    ) -> None:
        self.table = ModelTable(refs)
        self._recorder = recorder
        self._versions = versions
        self._trusted = trusted
        self._metrics = metrics
        self._log = log
        self._lag = lag
        self._max_rows = serving.max_rows
        self._max_batch_size = serving.max_batch_size
        self._intra_op_threads = serving.intra_op_threads
        self._max_wait_s = serving.max_batch_wait_us / 1e6
        self._request_timeout_s = serving.request_timeout_s
        self._hang_limit_s = serving.model_hang_limit_s
        self._admission = AdmissionPolicy(
            serving.max_queue_rows,
            None if serving.max_queue_wait_ms is None else serving.max_queue_wait_ms / 1000,
        )
        self._failed: dict[tuple[str, int], float] = {}
        self._unresolved: dict[str, str] = {}
        self.follower = (
            None
            if deployments is None
            else DeploymentFollower(
                deployments,
                self.table,
                self._load,
                log,
                features=features,
                max_rows=self._max_rows,
                pinned_version=serving.pinned_version,
                only=serving.deployments,
            )
        )
        # A server told its deployments is ready once it serves them (a pod on Kubernetes).
        self.table.awaited = frozenset(serving.deployments or ())

    async def load_all(self) -> None:
        """Resolve and load every reference (raise if any cannot be served), then every
        deployment (one that cannot be loaded is logged and retried by ``poll_once``)."""
        loop = asyncio.get_running_loop()
        resolved, _ = await loop.run_in_executor(None, self._resolve_all, True)
        for served in self.table.served:
            name, version = resolved[served.text]
            runtime = self.table.loaded(name, version) or await self._load(
                name, version, served.text
            )
            self.table.install(served, runtime)
        if self.follower is not None:
            await self.follower.poll()

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
                    name, version, served.text
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
        if self.follower is not None:
            await self.follower.poll()
        self.retire_idle()

    def hung(self, now: float) -> ModelRuntime | None:
        """A version with a call running past ``model_hang_limit_s`` at ``now`` (the batcher's
        clock, ``time.monotonic``), if any: the worker is then unhealthy."""
        for runtime in self.table.runtimes() + self.table.retiring:
            if call_hung(runtime.batcher.oldest_call_started(), now, self._hang_limit_s):
                return runtime
        return None

    def calls_running(self) -> bool:
        """Whether any model call is still running on a thread (stuck ones included, and a
        shadow lane's: a hung shadow never makes the worker unhealthy, but it keeps a
        thread the interpreter would wait for at exit)."""
        return any(
            batcher.oldest_call_started() is not None
            for runtime in self.table.runtimes() + self.table.retiring
            for batcher in (runtime.batcher, runtime.shadow_batcher)
            if batcher is not None
        )

    def retire_idle(self) -> None:
        """Unload replaced versions whose last queued requests have been answered."""
        for runtime in [r for r in self.table.retiring if r.idle]:
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
                resolved[served.text] = self._versions.resolve(served.ref)
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

    async def _load(self, name: str, version: int, label: str) -> ModelRuntime:
        """Load and warm ``name/version`` on a thread and bind it to this loop; ``label``
        (the reference or ``deployment:<name>``) only goes into the log lines."""
        loop = asyncio.get_running_loop()
        job = partial(
            load_version,
            self._versions,
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
                    "ref": label,
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
            recorder=self._recorder,
            request_timeout_s=self._request_timeout_s,
        )
        self._metrics.model_load(name, runtime.version_text, "loaded")
        self._log.emit(
            "info",
            "model_loaded",
            {
                "ref": label,
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
