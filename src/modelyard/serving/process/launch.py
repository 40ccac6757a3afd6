"""Starting a server: ``serve()``, behind ``modelyard serve`` and ``python -m modelyard.serving``.

Checks the references before any worker starts, so a typo is one clear error
rather than N crashing workers; then runs a ``Supervisor`` of the workers, one worker
included: a worker whose model hung or whose event loop stalled is replaced only by a
process that watches it from outside. The supervisor also hosts the server's one
runner (``runner.host``: the rollout controller, the retention sweep and the
monitoring pass). What one worker pays for it, measured with
``benchmarks/serving/bench_supervised_startup.py``, is in benchmarks/serving/RESULTS.md.
With ``serving.backend = "ray"`` the workers are Ray Serve replicas instead
(``ray_backend``, imported only then: it needs the ``ray`` extra); a server told its
deployments (``serving.deployments``) whose targets are all ``ray`` runs on Ray too, and
their targets' replicas size the Ray deployment (``choose_backend``).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from modelyard.config import ServingSettings, Settings
from modelyard.errors import ConfigurationError
from modelyard.registry import Catalog, ModelRef, Registry, parse_ref
from modelyard.registry.sql import SqlRegistryRepository
from modelyard.routing import Target
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.serving.http.hosts import is_loopback
from modelyard.serving.process.supervisor import Supervisor
from modelyard.store.artifacts import open_artifact_store
from modelyard.store.database import Database


def choose_refs(catalog: Catalog, models: Sequence[str], home: Path) -> list[ModelRef]:
    """The references to serve: those given (each must resolve now), else every
    registered model at its ``champion`` alias, or its latest version without one."""
    if models:
        refs = [parse_ref(text) for text in models]
        for ref in refs:
            catalog.resolve(ref)
        return refs
    refs = [
        ModelRef(m.name, alias="champion") if "champion" in m.aliases else ModelRef(m.name)
        for m in catalog.list_models()
        if m.latest_version is not None
    ]
    if not refs:
        raise ConfigurationError(
            f"no models to serve in {home}: register one first, or pass --model name@alias"
        )
    return refs


def check_exposure(serving: ServingSettings, *, insecure: bool) -> str | None:
    """Refuse to listen beyond loopback without a token unless ``insecure``; the warning
    to print when the server will anyway (None: nothing to warn about)."""
    if serving.token or is_loopback(serving.host):
        return None
    if not insecure:
        raise ConfigurationError(
            f"refusing to listen on {serving.host} without a token: anyone who can reach "
            "it could run and read the models; set MODELYARD_SERVING__TOKEN, or pass "
            "--insecure to serve without one"
        )
    return (
        f"modelyard: WARNING: listening on {serving.host} with no token (--insecure): "
        "anyone who can reach this port can call the models and post feedback\n"
    )


BACKENDS = ("builtin", "ray")


def check_backend(serving: ServingSettings) -> str:
    """``serving.backend``, known to be one this server has."""
    if serving.backend not in BACKENDS:
        raise ConfigurationError(
            f"setting 'serving.backend' must be one of {', '.join(BACKENDS)}, "
            f"got {serving.backend!r}"
        )
    return serving.backend


def choose_backend(serving: ServingSettings, targets: Sequence[Target]) -> str:
    """The backend to run: ``serving.backend``, or ``ray`` when every deployment this server
    was told to serve targets Ray (``modelyard deploy --target ray``)."""
    backend = check_backend(serving)
    if backend == "builtin" and targets and all(t.kind == "ray" for t in targets):
        return "ray"
    return backend


def check_grpc(serving: ServingSettings) -> None:
    """With ``grpc_port`` set, refuse to start without the ``grpc`` extra: one clear error
    rather than every worker failing to import it."""
    if not serving.grpc_port:
        return
    for module in ("grpc", "google.protobuf"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # its parent package is missing
            found = False
        if not found:
            raise ConfigurationError(
                f"serving.grpc_port is set but {module!r} is not installed; "
                "pip install 'modelyard[grpc]'"
            )


def serve(
    settings: Settings,
    models: Sequence[str] = (),
    *,
    trusted: bool = False,
    insecure: bool = False,
) -> int:
    """Serve ``models`` (references like ``fraud@champion``) until stopped; the exit status.

    ``settings.serving`` gives host, port, workers, batching and limits; no
    ``models`` means every registered model (see ``choose_refs``). A host other than
    loopback needs a token, or ``insecure`` (see ``check_exposure``).
    """
    check_backend(settings.serving)
    warning = check_exposure(settings.serving, insecure=insecure)
    check_grpc(settings.serving)
    if warning is not None:
        sys.stderr.write(warning)
    db = Database(settings.resolved_database_url)  # created or migrated on first use
    try:
        artifacts = open_artifact_store(
            settings.resolved_artifacts_url, cache_dir=settings.resolved_artifacts_cache
        )
        # A server told its deployments (the pods of one deployment) serves those alone.
        only = settings.serving.deployments
        refs = (
            []
            if only and not models
            else choose_refs(Registry(SqlRegistryRepository(db), artifacts), models, settings.home)
        )
        targets = served_targets(SqlDeploymentRepository(db), only or ())
    finally:
        db.dispose()
    backend = choose_backend(settings.serving, targets)
    if backend != settings.serving.backend:
        sys.stderr.write("modelyard: every deployment served targets Ray: serving on Ray Serve\n")
    serving = settings.serving
    ray_targets = [t for t in targets if t.kind == "ray"] if backend == "ray" else []
    count = max((t.min_replicas or 0 for t in ray_targets), default=0) or serving.workers
    names = ", ".join([*(str(ref) for ref in refs), *(settings.serving.deployments or ())])
    grpc = f" and gRPC on {serving.host}:{serving.grpc_port}" if serving.grpc_port else ""
    sys.stderr.write(
        f"modelyard: serving {names} on http://{serving.host}:{serving.port}{grpc} "
        f"with {count} {'Ray replica' if backend == 'ray' else 'worker'}(s); "
        f"JSON logs in {settings.resolved_log_path}\n"
    )
    if backend == "ray":
        # An optional extra: imported only when chosen (it raises naming the extra).
        from modelyard.serving.process.ray_backend import RayServer

        return RayServer(
            settings, [str(r) for r in refs], trusted=trusted, targets=ray_targets
        ).run()
    return Supervisor(settings, [str(r) for r in refs], trusted=trusted).run()


def served_targets(deployments: SqlDeploymentRepository, names: Sequence[str]) -> list[Target]:
    """The targets of the deployments named (one not there yet is left out: the workers
    wait for it)."""
    found = (deployments.get(name) for name in names)
    return [d.config.target for d in found if d is not None]
