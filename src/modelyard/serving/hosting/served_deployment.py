"""Serving the deployments of the routing store next to the explicit references.

Each worker serves every deployment of its ``DeploymentSource`` (routing's store): a request to
``/v2/models/{deployment}/infer`` (or the records route) goes to the arm that
``Deployment.route`` picks (champion, canary or an experiment arm, by weight,
sticky by the configured routing key), and the shadows it names are mirrored in
the background (see ``shadow``). A deployment name takes precedence over a
served model of the same name, so ``modelyard deploy fraud`` answers at
``/v2/models/fraud`` even when ``fraud@champion`` is served too.

``DeploymentFollower`` polls ``store.revisions()`` (one indexed read) every
poll interval; for a deployment whose revision moved it reads the new config,
loads and warms every version it names that this worker has not loaded (on a
thread, while the old config keeps serving), then installs a new
``ServedDeployment`` with one dict assignment on the event loop. Requests in
flight finish on the runtimes they picked; versions no longer named anywhere
are unloaded once idle (``ModelManager.retire_idle``), the same zero-failure
swap that alias moves use.

A server started with ``serving.pinned_version`` (``MODELYARD_SERVING__PINNED_VERSION=4``)
answers a deployment with that version whenever it is one of the deployment's arms,
instead of drawing one by weight: a platform that splits traffic itself (KServe's
canary, ``platforms.kserve``) runs one set of pods per version, and the inference log
still says which arm answered, so the rollout controller judges the canary as it does
on one machine. Once the version is no arm (the canary was rolled back) the deployment
is routed by its weights; once it is the champion (promoted) it still answers.
``serving.deployments`` names the deployments a server follows (the pods of one
deployment on Kubernetes); unset, it follows every deployment of its database.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from modelyard.errors import (
    ConfigurationError,
    ModelyardError,
    NotFoundError,
    VersionNotFoundError,
)
from modelyard.routing import Deployment, Destination, FeatureInputs
from modelyard.serving.hosting.features import BatchedReads, FeatureJoin, FeatureReader
from modelyard.serving.hosting.runtime import ModelRuntime
from modelyard.serving.telemetry.jsonlog import JsonLog

# A deployment whose new revision failed to load is retried this long after.
RETRY_FAILED_S = 30.0

RawHeaders = Sequence[tuple[bytes, bytes]]
FieldLookup = Callable[[str], Any]
Loader = Callable[[str, int, str], Awaitable[ModelRuntime]]


class ServedDeployment:
    """One revision of a deployment with a loaded, warmed runtime for each version it names."""

    __slots__ = (
        "champion",
        "deployment",
        "features",
        "has_shadows",
        "input_names",
        "max_values",
        "name",
        "runtimes",
        "_pinned",
        "_header",
        "_field",
        "_random",
    )

    def __init__(
        self,
        deployment: Deployment,
        runtimes: Mapping[int, ModelRuntime],
        rng: random.Random | None = None,
        features: FeatureJoin | None = None,
        pinned_version: int | None = None,
    ) -> None:
        config = deployment.config
        # Where a platform splits traffic itself (KServe), each pod answers with one version
        # (``serving.pinned_version``) while it is an arm; otherwise routed as usual.
        arms = [a for a, v in deployment.arms.items() if v == pinned_version]
        self._pinned = Destination(arms[0], pinned_version) if arms and pinned_version else None
        # Fetches the model inputs the deployment takes from the feature store (None: all
        # come with the request).
        self.features = features
        self.name = deployment.name
        self.deployment = deployment
        self.runtimes = dict(runtimes)
        self.champion = self.runtimes[config.champion]
        validator = self.champion.validator
        # Every version of a deployment takes the champion's inputs (the store checks).
        self.max_values = validator.max_rows * validator.width
        self.input_names = list(validator.names)
        self.has_shadows = bool(config.shadows)
        key = config.routing_key
        header = key is not None and key.source == "header"
        self._header = key.name.lower().encode("latin-1") if key and header else None
        self._field = key.name if key and not header else None
        self._random = (rng or random.Random()).random

    @property
    def revision(self) -> int:
        return self.deployment.revision

    @property
    def needs_fields(self) -> bool:
        """Whether the routing key is a field of the request's first row."""
        return self._field is not None

    def choose(
        self, headers: RawHeaders, field: FieldLookup | None
    ) -> tuple[ModelRuntime, Destination]:
        """The runtime that answers this request, and the route (arm, version, shadows)."""
        key: Any = None
        if self._header is not None:
            wanted = self._header
            key = next((v.decode("latin-1") for k, v in headers if k.lower() == wanted), None)
        elif self._field is not None and field is not None:
            value = field(self._field)
            key = None if value is None else str(value)
        shadow_draw = self._random() if self.has_shadows else 1.0
        route = self.deployment.route(key, self._random(), shadow_draw)
        if self._pinned is not None:
            route = Destination(self._pinned.arm, self._pinned.version, route.shadows)
        return self.runtimes[route.version], route

    def runtime_for(self, version: str | None) -> ModelRuntime:
        """The champion, or the runtime of ``version`` when the path names one."""
        if version is None:
            return self.champion
        runtime = self.runtimes.get(int(version)) if version.isdigit() else None
        if runtime is None:
            served = ", ".join(str(v) for v in sorted(self.runtimes))
            raise VersionNotFoundError(
                f"version {version!r} is not part of deployment {self.name!r}; it serves "
                f"version(s) {served}"
            )
        return runtime


class DeploymentSource(Protocol):
    """The deployments a worker follows (routing's ``DeploymentStore``)."""

    def revisions(self) -> dict[str, int]: ...

    def get(self, name: str) -> Deployment: ...


class DeploymentSlots(Protocol):
    """What the follower changes in the worker's ``ModelTable``."""

    deployments: dict[str, ServedDeployment]

    def loaded(self, name: str, version: int) -> ModelRuntime | None: ...

    def install_deployment(self, entry: ServedDeployment) -> list[ModelRuntime]: ...

    def remove_deployment(self, name: str) -> list[ModelRuntime]: ...


class FeatureSource(Protocol):
    """Where a worker reads the features its deployments fetch (the feature store)."""

    def reader(self, inputs: FeatureInputs) -> tuple[FeatureReader, str, str]:
        """A reader of every feature ``inputs`` names, and their entity's key field and
        dtype; an unknown view or feature is a ``ModelyardError`` naming it."""
        ...


def describe(deployment: Deployment) -> dict[str, Any]:
    """The fields of a deployment's routing that a log line reports."""
    config = deployment.config
    return {
        "deployment": deployment.name,
        "revision": deployment.revision,
        "model": config.model,
        "champion": config.champion,
        "canary": config.canary,
        "canary_weight": config.canary_weight,
        "shadows": [[s.version, s.share] for s in config.shadows],
        "arms": deployment.arms,
        "features": None if config.features is None else list(config.features.refs),
    }


class DeploymentFollower:
    """Keeps a worker's deployments in step with the store (one instance per worker)."""

    def __init__(
        self,
        store: DeploymentSource,
        table: DeploymentSlots,
        load: Loader,
        log: JsonLog,
        *,
        features: FeatureSource | None = None,
        max_rows: int = 10_000,
        pinned_version: int | None = None,
        only: Collection[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._pinned_version = pinned_version
        self._only = None if only is None else frozenset(only)
        self._features = features
        self._max_rows = max_rows
        self._table = table
        self._load = load
        self._log = log
        self._clock = clock
        self._failed: dict[tuple[str, int], float] = {}
        self._read_error: str | None = None

    async def poll(self) -> None:
        """Install every deployment whose revision moved; drop deleted ones."""
        loop = asyncio.get_running_loop()
        try:
            revisions = await loop.run_in_executor(None, self._store.revisions)
        except ModelyardError as error:  # the database is busy or gone: keep what we serve
            if self._read_error != error.message:
                self._log.emit("warning", "deployments_unreadable", {"error": error.message})
            self._read_error = error.message
            return
        self._read_error = None
        if self._only is not None:
            revisions = {n: r for n, r in revisions.items() if n in self._only}
        for name in [n for n in self._table.deployments if n not in revisions]:
            self._table.remove_deployment(name)
            self._log.emit("info", "deployment_removed", {"deployment": name})
        now = self._clock()
        for name, revision in sorted(revisions.items()):
            entry = self._table.deployments.get(name)
            if entry is not None and entry.revision == revision:
                continue
            if self._failed.get((name, revision), 0.0) > now:
                continue
            try:
                await self._refresh(name, entry)
            except ModelyardError as error:
                self._failed[(name, revision)] = self._clock() + RETRY_FAILED_S
                self._log.emit(
                    "error",
                    "deployment_load_failed",
                    {
                        "deployment": name,
                        "revision": revision,
                        "code": error.code,
                        "error": error.message,
                    },
                )

    async def _refresh(self, name: str, entry: ServedDeployment | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            deployment: Deployment = await loop.run_in_executor(None, self._store.get, name)
        except NotFoundError:
            return  # deleted between the two reads: the next poll drops it
        config = deployment.config
        runtimes: dict[int, ModelRuntime] = {}
        kept = entry.runtimes if entry and entry.deployment.config.model == config.model else {}
        # The champion first: it is what a new deployment needs to answer at all.
        for version in sorted(config.versions, key=lambda v: (v != config.champion, v)):
            known = kept.get(version)
            runtimes[version] = (
                known
                or self._table.loaded(config.model, version)
                or await self._load(config.model, version, f"deployment:{name}")
            )
        join = None if config.features is None else await self._join(config.features, runtimes)
        self._table.install_deployment(
            ServedDeployment(
                deployment, runtimes, features=join, pinned_version=self._pinned_version
            )
        )
        fields = describe(deployment)
        fields["from_revision"] = entry.revision if entry else None
        self._log.emit("info", "deployment_updated", fields)

    async def _join(
        self, inputs: FeatureInputs, runtimes: Mapping[int, ModelRuntime]
    ) -> FeatureJoin:
        if self._features is None:
            raise ConfigurationError(
                "this deployment fetches features, and this server has no feature store"
            )
        loop = asyncio.get_running_loop()  # the reader reads the definitions: off the loop
        reader, key, dtype = await loop.run_in_executor(None, self._features.reader, inputs)
        champion = next(iter(runtimes.values()))  # loaded first; all share its inputs
        reads = BatchedReads(reader, loop, None, time.time, inline=True)
        return FeatureJoin(inputs, champion.signature, key, dtype, reads, self._max_rows)
