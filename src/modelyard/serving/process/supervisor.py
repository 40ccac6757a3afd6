"""Several worker processes on one port, so a server uses every core.

Python runs one request at a time per process, so N cores need N processes.
The supervisor binds one socket per worker (``bind_sockets``) and starts the
workers with the ``spawn`` start method (no fork after onnxruntime has started
threads); each worker listens on its socket when its models are loaded and
warm, so no connection lands on a worker that cannot answer it. Each onnxruntime session
gets ``intra_op_threads`` threads (1 by default): N workers x 1 thread per core
avoids the oversubscription that BENCHMARKING.md measured at 166 req/s.

Written here rather than reusing uvicorn's ``Multiprocess`` because that one
builds a plain ``uvicorn.Server`` in each child, which cannot flip readiness
when a stop begins. On SIGTERM or SIGINT the supervisor forwards SIGTERM to
every worker, closes its copy of the socket and waits for them to drain; a
worker that dies is restarted (at most ``MAX_RESTARTS`` per minute). Per-worker
metrics are merged through files in a directory the supervisor owns.

A worker that is alive but stuck is replaced too, and counts as a restart
(``watchdog``): one whose event loop stopped beating (an inline model call that
never returns) is killed and a new one started on its socket; one that reports a
model call hung on a thread gets its replacement first, then SIGTERM, so that its
in-flight requests are answered (504 for the stuck model's), and is killed if it has
not exited when its graceful shutdown should have ended.

The supervisor also runs the server's background loops (``background``: rollout
controller, retention sweep, monitoring pass) and its ``LogIngester``, which stores
the workers' inference logs (each worker only writes its own write-ahead log), each on
a thread: the supervisor answers no requests, so none of them takes a worker's GIL
(storing in the workers cost a quarter of their throughput, measured with
benchmarks/serving), and restarting a worker never starts a second one.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

from modelyard.config import Settings
from modelyard.errors import ConfigurationError
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.runner.host import Runner, start_runner
from modelyard.serving.process.watchdog import Heartbeat, Verdict, verdict
from modelyard.serving.process.worker import STARTUP_FAILURE, drain_delay, run_worker
from modelyard.serving.recording import open_log_ingester
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.serving.telemetry.logindex import maintain
from modelyard.serving.telemetry.metrics import MONITORING_TEXT
from modelyard.store.database import Database

MAX_RESTARTS = 5
_RESTART_WINDOW_S = 60.0
_CHECK_EVERY_S = 0.2


def _worker_main(
    settings: Settings,
    refs: list[str],
    trusted: bool,
    sock: socket.socket,
    metrics_dir: Path,
    heartbeat: Heartbeat,
) -> None:
    run_worker(
        settings,
        refs,
        trusted=trusted,
        sockets=[sock],
        metrics_dir=metrics_dir,
        worker=str(os.getpid()),
        ingest_log=False,  # the supervisor's LogIngester stores every worker's log
        heartbeat=heartbeat,
    )


def metrics_directory(settings: Settings) -> Path:
    """Where this server's workers exchange metrics (and its runner's monitoring pass writes
    its figures); created here, removed by the caller at shutdown."""
    directory = settings.home / "run" / f"serve-{os.getpid()}"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def start_server_runner(settings: Settings, metrics_dir: Path, *, trusted: bool) -> Runner:
    """The server's one runner (``runner.host``): its jobs log to the server's JSON log,
    and the monitoring pass publishes where every worker's /metrics reads it."""
    return start_runner(
        settings,
        open_log=lambda name: JsonLog(
            settings.resolved_log_path,
            worker=name,
            rotate_bytes=settings.serving.log_rotate_bytes,
        ),
        publish_to=metrics_dir / MONITORING_TEXT,
        trusted=trusted,
        file_sweep=json_log_sweep(settings),
    )


def json_log_sweep(settings: Settings) -> Callable[[float], dict[str, Any]] | None:
    """The JSON log's retention for the runner's sweep (None when it goes to stderr)."""
    path = settings.resolved_log_path
    if str(path) == "-":
        return None
    active = Path(path)
    ttl_s = settings.monitoring.log_ttl_days * 86400.0
    serving = settings.serving
    return lambda now: maintain(
        active, now, ttl_s=ttl_s, max_bytes=serving.log_rotate_bytes, max_age_s=serving.log_rotate_s
    )


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A bound TCP socket (workers call ``listen`` when they are ready to accept)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {error.strerror}") from error
    sock.set_inheritable(True)
    return sock


def bind_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """One listening socket per worker on the same address (``SO_REUSEPORT``).

    With one shared socket, whichever worker wakes first accepts a burst of
    connections, and keep-alive clients stay where they landed: a run of 32
    connections was seen served by one worker alone while the other idled. With a
    socket each, the kernel spreads new connections over the workers by address
    hash. A replaced worker takes over its predecessor's socket (the supervisor
    keeps it open), so connections that arrive meanwhile wait in its queue. Where
    ``SO_REUSEPORT`` does not exist, the workers share one socket.
    """
    # Bound once without SO_REUSEPORT first: that bind fails if anything holds the
    # port, including another server that set SO_REUSEPORT and would share our traffic.
    first = bind_socket(host, port)
    if count == 1 or not hasattr(socket, "SO_REUSEPORT"):
        return [first] * count
    first.close()
    return [bind_socket(host, port, reuse_port=True) for _ in range(count)]


class Supervisor:
    """Starts ``settings.serving.workers`` workers and keeps them running until stopped."""

    def __init__(self, settings: Settings, refs: list[str], *, trusted: bool = False) -> None:
        self._settings = settings
        self._refs = refs
        self._trusted = trusted
        self._stop: int | None = None
        self._context = multiprocessing.get_context("spawn")
        self._restarts: list[float] = []
        self._heartbeats: dict[int, Heartbeat] = {}  # by worker slot
        # Replaced workers still stopping, each with the time by which it is killed.
        self._retiring: list[tuple[BaseProcess, float]] = []

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._stop = sig

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; 0 after a clean stop, 1 if the workers cannot start."""
        serving = self._settings.serving
        if serving.grpc_port:  # each worker binds it (SO_REUSEPORT): see rpc.server
            try:
                bind_socket(serving.host, serving.grpc_port).close()
            except ConfigurationError as error:
                raise ConfigurationError(f"{error.message} (serving.grpc_port)") from None
        metrics_dir = metrics_directory(self._settings)
        sockets = bind_sockets(serving.host, serving.port, serving.workers)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        processes: list[BaseProcess] = []
        status = 0
        log = JsonLog(
            self._settings.resolved_log_path,
            worker="supervisor",
            rotate_bytes=self._settings.serving.log_rotate_bytes,
        )
        db = Database(self._settings.resolved_database_url)
        ingester = None
        runner: Runner | None = None
        try:
            processes += [self._start(slot, sock, metrics_dir) for slot, sock in enumerate(sockets)]
            runner = start_server_runner(self._settings, metrics_dir, trusted=self._trusted)
            if self._settings.monitoring.log_inferences:
                ingester = open_log_ingester(
                    self._settings,
                    SqlInferenceLogRepository(db),
                    follow=lambda: [
                        str(p.pid)
                        for p in processes + [old for old, _ in self._retiring]
                        if p.is_alive()
                    ],
                    on_error=lambda event, fields: log.emit("error", event, fields),
                )
            while self._stop is None:
                time.sleep(_CHECK_EVERY_S)
                log.flush()
                status = self._replace_dead(processes, sockets, metrics_dir)
                status = status or self._replace_stuck(processes, sockets, metrics_dir, log)
                self._reap_retiring()
                if status:
                    break
        finally:
            if runner is not None:
                runner.stop()
            for process in processes:
                if process.is_alive() and process.pid is not None:
                    os.kill(process.pid, signal.SIGTERM)
            for sock in sockets:
                sock.close()
            self._join(processes + [old for old, _ in self._retiring])
            if ingester is not None:
                ingester.close()  # the workers' logs, now orphans, go into the store
            db.dispose()
            log.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            shutil.rmtree(metrics_dir, ignore_errors=True)
        return status

    def _start(self, slot: int, sock: socket.socket, metrics_dir: Path) -> BaseProcess:
        heartbeat = self._heartbeats[slot] = Heartbeat(self._context)
        process: Any = self._context.Process(
            target=_worker_main,
            args=(self._settings, self._refs, self._trusted, sock, metrics_dir, heartbeat),
            name="modelyard-worker",
        )
        process.start()
        return process  # type: ignore[no-any-return]

    def _replace_dead(
        self, processes: list[BaseProcess], sockets: list[socket.socket], metrics_dir: Path
    ) -> int:
        for index, process in enumerate(processes):
            code = process.exitcode
            if code is None or self._stop is not None:
                continue
            if code == STARTUP_FAILURE:
                sys.stderr.write("modelyard: a worker could not start; see the JSON log\n")
                return 1
            if not self._may_restart():
                return 1
            sys.stderr.write(f"modelyard: worker {process.pid} exited ({code}); restarting it\n")
            processes[index] = self._start(index, sockets[index], metrics_dir)
        return 0

    def _may_restart(self) -> bool:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < _RESTART_WINDOW_S]
        if len(self._restarts) >= MAX_RESTARTS:
            sys.stderr.write(
                f"modelyard: workers died {MAX_RESTARTS} times within a minute; stopping\n"
            )
            return False
        self._restarts.append(now)
        return True

    def _replace_stuck(
        self,
        processes: list[BaseProcess],
        sockets: list[socket.socket],
        metrics_dir: Path,
        log: JsonLog,
    ) -> int:
        serving = self._settings.serving
        for index, process in enumerate(processes):
            if self._stop is not None or not process.is_alive() or process.pid is None:
                continue
            beat_s, hung = self._heartbeats[index].read()
            now = time.monotonic()
            found = verdict(
                beat_s=beat_s, hung=hung, now_s=now, stall_limit_s=serving.loop_stall_limit_s
            )
            if found is None:
                continue
            if not self._may_restart():
                return 1
            reason = (
                f"its event loop has not run for {now - beat_s:.1f} s"
                if found is Verdict.FROZEN
                else f"a model call has run for over {serving.model_hang_limit_s:g} s"
            )
            sys.stderr.write(f"modelyard: worker {process.pid} is stuck ({reason}); replacing it\n")
            log.emit(
                "error",
                "worker_replaced",
                {"worker": str(process.pid), "reason": found.value, "detail": reason},
            )
            if found is Verdict.FROZEN:  # it cannot drain: nothing runs on its loop
                process.kill()
                kill_at = now
            else:  # its in-flight requests are answered (504 for the stuck model's) first
                os.kill(process.pid, signal.SIGTERM)
                kill_at = now + serving.request_timeout_s + drain_delay(self._settings) + 10
            self._retiring.append((process, kill_at))
            processes[index] = self._start(index, sockets[index], metrics_dir)
        return 0

    def _reap_retiring(self) -> None:
        now = time.monotonic()
        for process, kill_at in list(self._retiring):
            if process.is_alive() and now >= kill_at:
                sys.stderr.write(f"modelyard: worker {process.pid} did not stop in time; killing\n")
                process.kill()
            if not process.is_alive():
                process.join()
                self._retiring.remove((process, kill_at))

    def _join(self, processes: list[BaseProcess]) -> None:
        serving = self._settings.serving
        deadline = time.monotonic() + serving.request_timeout_s + drain_delay(self._settings) + 10
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                sys.stderr.write(f"modelyard: worker {process.pid} did not stop in time; killing\n")
                process.kill()
                process.join()
