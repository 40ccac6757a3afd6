"""``modelyard serve --backend ray``: the same server, its workers as Ray Serve replicas.

Design: one Ray Serve deployment, ``modelyard``, whose replicas each host the very
``ServingApp`` a worker process hosts, built by the same composition root
(``worker.worker_app``) and handed to Ray Serve as the replica's ASGI app
(``serve.ingress`` with ``__serve_build_asgi_app__``; Ray runs its lifespan, so models are
loaded and warmed before a replica takes traffic). Parsing, validation, the
deployments' traffic split and sticky keys, shadows, the inference log and the errors
are therefore identical to the built-in server's by construction: no second request path
to keep in step.

Why not one Ray deployment per model version behind a router deployment, as issue 22
first sketched it: the split, the sticky assignment, shadows and rollout steps live in
``hosting.served_deployment`` and change under a running server (the rollout controller
moves weights every few seconds); a router deployment would have to re-implement them
over Ray handles or redeploy Ray applications on every step, and each request would pay
a second Ray task (a handle call) on top of the proxy's, for a model call of ~7 us: the
replica's side of one Ray task alone took ~4.4 ms of CPU here
(``benchmarks/serving/bench_ray.py``, RESULTS.md). Replicas that each hold every version
of the deployments they serve keep one hop and the split's decisions in one place; Ray
Serve supplies what it is good at: replicas across machines, autoscaling
(``serving.workers`` to ``serving.ray_max_replicas``, on ongoing requests) and its HTTP
proxy on every node.

The driver (this process) does what the built-in ``Supervisor`` does besides answering:
it runs the server's one runner (rollout controller, retention, monitoring pass) and the
``LogIngester`` that stores the replicas' write-ahead logs. Each replica writes its own
log, ``<wal>/ray-<pid>``, as a worker does; a replica on another node than the driver
cannot be read from here, so it stores its own log (``ingest_log``), which needs the
database to be one every node reaches (PostgreSQL). A replica that dies leaves its log
locked by nobody: the ingester claims it as an orphan, so its records are stored once.

``import ray`` happens here only, and this module is imported only when the backend is
chosen (``launch.serve``): without the ``ray`` extra the error names it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from modelyard.config import Settings
from modelyard.errors import ConfigurationError
from modelyard.monitoring.inference_log.dirlock import try_lock_directory
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.routing import Target
from modelyard.runner.host import Runner
from modelyard.serving.http.app import ServingApp
from modelyard.serving.process.supervisor import metrics_directory, start_server_runner
from modelyard.serving.process.worker import limit_native_threads, worker_app
from modelyard.serving.recording import open_log_ingester
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.store.database import Database

try:
    import ray
    from ray import serve
except ImportError as missing:  # pragma: no cover - the message is the point
    raise ConfigurationError(
        "the ray backend needs Ray Serve: pip install 'modelyard[ray]'"
    ) from missing

APPLICATION = "modelyard"
LOG_PREFIX = "ray-"  # a replica's write-ahead log: <wal>/ray-<pid>
_CHECK_EVERY_S = 0.2


@serve.ingress()
class ReplicaHost:
    """One Ray Serve replica: a serving worker's app, without uvicorn (Ray's proxy speaks
    HTTP and hands the replica ASGI requests)."""

    def __init__(
        self,
        settings: Settings,
        refs: list[str],
        trusted: bool,
        driver_node: str,
        metrics_dir: str,
    ) -> None:
        limit_native_threads(settings.serving.intra_op_threads)
        local = ray.get_runtime_context().get_node_id() == driver_node
        self._stack = contextlib.ExitStack()
        self._app: ServingApp = self._stack.enter_context(
            worker_app(
                settings,
                refs,
                trusted=trusted,
                # replicas on the driver's machine share /metrics figures through files
                metrics_dir=Path(metrics_dir) if local else None,
                worker=f"{LOG_PREFIX}{os.getpid()}",
                ingest_log=not local,  # why: the module docstring
            )
        )

    def __serve_build_asgi_app__(self) -> ServingApp:
        return self._app

    def check_health(self) -> None:
        """Ray's periodic health check, standing in for the supervisor's watchdog: a model
        call stuck past ``model_hang_limit_s`` makes the replica unhealthy, and Ray replaces
        it (a frozen event loop fails the check by not answering)."""
        hung = self._app.manager.hung(time.monotonic())
        if hung is not None:
            raise RuntimeError(f"a call to {hung.name} version {hung.version} hung")

    def __del__(self) -> None:
        # Ray has run the app's lifespan shutdown by now; close the stores and the log.
        self._stack.close()


def live_replica_logs(wal_dir: Path) -> list[str]:
    """The replicas' write-ahead logs whose writer is alive (its directory lock is held):
    the ingester tails these and claims the others as orphans."""
    try:
        entries = [e for e in os.scandir(wal_dir) if e.is_dir() and e.name.startswith(LOG_PREFIX)]
    except FileNotFoundError:
        return []
    live = []
    for entry in entries:
        fd = try_lock_directory(Path(entry.path), create=False)
        if fd is None:
            live.append(entry.name)
        else:
            os.close(fd)  # a free lock: nobody writes it; let the ingester claim it
    return live


def deployment_options(settings: Settings, targets: Sequence[Target] = ()) -> dict[str, Any]:
    """Ray Serve's options for the one deployment: fixed replicas, or autoscaling between
    ``workers`` and ``ray_max_replicas`` on ongoing requests. ``targets``: those of the
    deployments served that target Ray; their replicas, where set, stand for those two
    settings (the largest of each, as one Ray deployment hosts them all)."""
    serving = settings.serving
    lows = [t.min_replicas for t in targets if t.min_replicas is not None]
    highs = [t.max_replicas for t in targets if t.max_replicas is not None]
    if lows or highs:
        serving = replace(
            serving,
            workers=max(lows) if lows else serving.workers,
            ray_max_replicas=max(highs) if highs else serving.ray_max_replicas,
        )
    options: dict[str, Any] = {
        "name": APPLICATION,
        "max_ongoing_requests": serving.ray_max_ongoing_requests,
        # a replica runs one Python event loop: one core, as a worker process does
        "ray_actor_options": {"num_cpus": 1},
        "graceful_shutdown_timeout_s": serving.request_timeout_s + serving.drain_delay_s + 5,
    }
    if serving.ray_max_replicas is None:
        options["num_replicas"] = serving.workers
        return options
    if serving.ray_max_replicas < serving.workers:
        raise ConfigurationError(
            f"setting 'serving.ray_max_replicas' must be at least serving.workers "
            f"({serving.workers}), got {serving.ray_max_replicas}"
        )
    options["autoscaling_config"] = {
        "min_replicas": serving.workers,
        "max_replicas": serving.ray_max_replicas,
        # half the cap ongoing per replica before another one starts
        "target_ongoing_requests": max(1, serving.ray_max_ongoing_requests // 2),
    }
    return options


@contextlib.contextmanager
def ray_cluster(settings: Settings) -> Iterator[None]:
    """Joined to ``serving.ray_address``, or a local single-node cluster started here
    (no dashboard) and stopped when the block ends."""
    address = settings.serving.ray_address
    try:
        ray.init(
            address=address,
            include_dashboard=False if address is None else None,
            logging_level=logging.WARNING,
            log_to_driver=False,  # replicas log to our JSON log; Ray's own logs stay in Ray's
        )
    except (ConnectionError, RuntimeError) as error:
        raise ConfigurationError(f"cannot reach the Ray cluster {address!r}: {error}") from error
    try:
        yield
    finally:
        ray.shutdown()


class RayServer:
    """Runs the ``modelyard`` Ray Serve application until SIGTERM/SIGINT, with the
    server's runner and log ingester in this process."""

    def __init__(
        self,
        settings: Settings,
        refs: Sequence[str],
        *,
        trusted: bool = False,
        targets: Sequence[Target] = (),
    ) -> None:
        self._settings = settings
        self._refs = list(refs)
        self._trusted = trusted
        self._targets = list(targets)
        self._stop: int | None = None

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._stop = sig

    def run(self) -> int:
        """Serve until stopped; 0 after a clean stop, 1 when the replicas cannot start."""
        settings = self._settings
        serving = settings.serving
        metrics_dir = metrics_directory(settings)
        log = JsonLog(
            settings.resolved_log_path, worker="ray-driver", rotate_bytes=serving.log_rotate_bytes
        )
        db = Database(settings.resolved_database_url)
        ingester = None
        runner: Runner | None = None
        previous: dict[int, Any] = {}
        try:
            with ray_cluster(settings):
                # after ray.init, which sets a SIGTERM handler of its own (sys.exit)
                previous = {
                    sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)
                }
                serve.start(http_options={"host": serving.host, "port": serving.port})
                try:
                    if settings.monitoring.log_inferences:
                        ingester = open_log_ingester(
                            settings,
                            SqlInferenceLogRepository(db),
                            follow=lambda: live_replica_logs(settings.resolved_wal_dir),
                            on_error=lambda event, fields: log.emit("error", event, fields),
                        )
                    host = serve.deployment(
                        ReplicaHost, **deployment_options(settings, self._targets)
                    )
                    app = host.bind(
                        settings,
                        self._refs,
                        self._trusted,
                        ray.get_runtime_context().get_node_id(),
                        str(metrics_dir),
                    )
                    try:
                        serve.run(app, name=APPLICATION, route_prefix="/", blocking=False)
                    except RuntimeError as error:  # a replica's constructor or startup failed
                        lines = str(error).strip().splitlines() or [""]
                        sys.stderr.write(
                            f"modelyard: the Ray replicas could not start ({lines[-1]}); "
                            "see the JSON log\n"
                        )
                        return 1
                    runner = start_server_runner(settings, metrics_dir, trusted=self._trusted)
                    sys.stderr.write(f"modelyard: ready on http://{serving.host}:{serving.port}\n")
                    while self._stop is None:
                        time.sleep(_CHECK_EVERY_S)
                        log.flush()
                    return 0
                finally:
                    if runner is not None:
                        runner.stop()
                    serve.shutdown()
        finally:
            if ingester is not None:
                ingester.close()  # the replicas' logs, now orphans, go into the store
            db.dispose()
            log.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            shutil.rmtree(metrics_dir, ignore_errors=True)
