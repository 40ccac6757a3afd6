"""The one ``Settings`` object, read from ``MODELYARD_*`` env vars and ``modelyard.toml``.

Priority, highest first: arguments passed to ``load_settings(...)``,
environment variables, ``modelyard.toml`` in the working directory, defaults.
Nested sections use ``__`` in env names (``MODELYARD_SERVING__PORT=9000``) and
tables in TOML (``[serving]``).

Written on stdlib dataclasses rather than pydantic-settings on purpose:
pydantic-settings costs ~0.25 s of import on this 2-core machine, most of the
0.3 s budget for loading a model in a fresh process (issue 2), and settings
are a few dozen typed scalars whose checks fit in ``_coerce`` below.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.errors import ConfigurationError

ENV_PREFIX = "MODELYARD_"
TOML_FILE = "modelyard.toml"


def _setting(default: Any, *, help: str, ge: float | None = None, le: float | None = None) -> Any:
    """A field with its bounds (checked on construction) and the one-line ``help`` that the
    configuration reference (docs/configuration.md) is generated from."""
    return field(default=default, metadata={"ge": ge, "le": le, "help": help})


class _Checked:
    """Bounds are checked however a section is built: by ``load_settings`` or by hand."""

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):  # type: ignore[arg-type]
            if spec.metadata:
                _check_bounds(getattr(self, spec.name), spec.name, spec.metadata)


@dataclass(frozen=True)
class ServingSettings(_Checked):
    """How `modelyard serve` listens, batches and sheds load."""

    host: str = _setting(
        "127.0.0.1",
        help="Interface `modelyard serve` listens on; beyond loopback it needs `token` (or "
        "`--insecure`).",
    )
    port: int = _setting(8000, ge=0, le=65535, help="TCP port of the prediction server.")
    # Off by default: gRPC needs the `grpc` extra (grpcio), and most callers speak REST.
    grpc_port: int | None = _setting(
        None,
        ge=0,
        le=65535,
        help="TCP port of the Open Inference Protocol's gRPC service, on `host` (needs the "
        "`grpc` extra); unset or 0: no gRPC.",
    )
    workers: int = _setting(
        2,
        ge=1,
        le=64,
        help="Worker processes answering requests (one per core); 1 runs without a supervisor.",
    )
    # A cap: each version times batches of 1, 2, 4, ... at warm-up and uses the
    # largest size within 10% of the cheapest cost per row.
    max_batch_size: int = _setting(
        64,
        ge=1,
        le=65536,
        help="Most rows merged into one model call (a cap; warm-up picks the size actually used).",
    )
    # Measured on the 2-core machine (benchmarks/serving): waiting for company gave
    # no larger batches and no more throughput, because requests that arrive in
    # the same event-loop turn already share one model call.
    max_batch_wait_us: int = _setting(
        0,
        ge=0,
        le=1_000_000,
        help="Longest a request waits for others to batch with, in microseconds.",
    )
    max_body_bytes: int = _setting(
        4 * 1024 * 1024, ge=1024, help="Largest request body accepted; larger gets 413."
    )
    # Per connection, so that one client cannot make a worker buffer without bound
    # (serving/http/connection.py). Browsers and HTTP libraries send 5-20 headers in
    # well under 2 KiB, a large cookie jar about 8 KiB; nginx's large_client_header_buffers
    # is 4 x 8 KiB and Node's header size limit 16 KiB; 100 headers is Apache's
    # LimitRequestFields and Tomcat's maxHeaderCount. Past them: 431 (headers) or 414
    # (URL) and the connection closes. Before these, 200,000 headers (20 MB) were read.
    max_header_count: int = _setting(
        100, ge=8, help="Most headers a request may carry; more gets 431 and the connection closes."
    )
    max_header_bytes: int = _setting(
        64 * 1024, ge=1024, help="Most header bytes a request may carry; more gets 431."
    )
    max_url_bytes: int = _setting(8 * 1024, ge=256, help="Longest request URL; longer gets 414.")
    # Pipelined requests read ahead of the one being answered, and the body bytes they
    # hold: past either, the connection stops reading (TCP backpressure) until the
    # answers catch up. 16 x 1 KiB requests fill no more than a few pipelining clients
    # send; 8 MiB is two bodies at the default body limit. Measured with 200 pipelined
    # 1 MiB bodies on one connection: the worker's RSS grew 209 MB without these bounds,
    # 16 MB with them (tests/integration/serving/test_connection_limits.py).
    max_pipelined_requests: int = _setting(
        16, ge=1, help="Pipelined requests read ahead on one connection before it stops reading."
    )
    max_buffered_bytes: int = _setting(
        8 * 1024 * 1024,
        ge=1024,
        help="Body bytes buffered ahead on one connection before it stops reading.",
    )
    # A refused upload (413) is read and discarded to its end, up to this much and this
    # long, before the connection closes: a client still sending when the socket closes
    # gets a reset instead of the 413 (Python's http.client sends the whole body first).
    refused_drain_bytes: int = _setting(
        64 * 1024 * 1024,
        ge=0,
        help="Bytes of a refused (413) upload read and discarded before the connection closes.",
    )
    refused_drain_s: float = _setting(
        5.0,
        ge=0.0,
        help="Seconds spent discarding a refused (413) upload before the connection closes.",
    )
    max_rows: int = _setting(10_000, ge=1, help="Most rows in one inference request.")
    request_timeout_s: float = _setting(
        5.0, ge=0.001, help="A request not answered by then gets 504."
    )
    # A model call still running this long after it started (on its thread, long after
    # its requests were answered 504) marks the worker unhealthy, and the supervisor
    # replaces it once its in-flight requests are answered. 60 s is 12 default request
    # timeouts: no caller still waits by then, and a legitimately slow batch model
    # (seconds a call) is far from it. Keep it above ``request_timeout_s``.
    model_hang_limit_s: float = _setting(
        60.0,
        ge=0.01,
        help="A model call running this long marks its worker unhealthy; the supervisor replaces "
        "it.",
    )
    # A worker whose event loop has not beaten for this long (an inline model call that
    # never returns) is killed and replaced by the supervisor. The loop beats every
    # 0.1 s; the longest legitimate stall measured is tens of ms (a 4 MiB JSON body, a
    # full garbage collection), so 10 s leaves a 100x margin for a loaded machine and
    # still bounds the outage of that worker's connections.
    loop_stall_limit_s: float = _setting(
        10.0, ge=0.2, help="A worker whose event loop has not run this long is killed and replaced."
    )
    max_queue_rows: int = _setting(
        4096,
        ge=1,
        help="Rows queued for one version before new requests are refused as overloaded (503).",
    )
    # Off by default: the request's own deadline bounds its wait. A deployment that would
    # rather refuse than answer late sets a target near one model call (Triton's queue
    # policy rejects after such a wait; this refuses at the door, before any work).
    max_queue_wait_ms: float | None = _setting(
        None,
        ge=0.001,
        help="Refuse (503) a request whose estimated wait for the model, the call running "
        "included, exceeds this many ms; unset: only the request's deadline limits the wait.",
    )
    intra_op_threads: int = _setting(
        1,
        ge=0,
        help="Threads each model call may use (ONNX Runtime, LightGBM); 0 lets the runtime choose.",
    )
    # Where a platform splits a canary's traffic itself (KServe), each version runs its own
    # pods; each answers with its version so the inference log still tells the rollout
    # controller which arm answered (docs/kubernetes.md).
    pinned_version: int | None = _setting(
        None,
        ge=1,
        help="Answer each deployment with this version while it is one of its arms, instead of "
        "drawing by weight: for a platform that splits traffic itself (KServe).",
    )
    # The pods of one deployment on Kubernetes load that deployment only, not every one
    # of the shared database.
    deployments: tuple[str, ...] | None = _setting(
        None,
        help="The deployments this server follows, comma-separated; none: every deployment in "
        "the database.",
    )
    token: str | None = _setting(
        None,
        help="When set, inference, metadata and feedback need `Authorization: Bearer <token>`.",
    )
    # Host header values answered (DNS rebinding): names or IPs, each with any port
    # ("name") or one ("name:8000"), "[::1]" for IPv6, "*" for any. None: the loopback
    # names, plus ``host`` when it is a specific address (see serving.http.hosts).
    allowed_hosts: tuple[str, ...] | None = _setting(
        None,
        help="`Host` header values answered, comma-separated (`name`, `name:port`, `*`); none: "
        "loopback and a specific bind address.",
    )
    # Browser origins allowed to call the API ("https://app.example.com", "*" for any);
    # empty: no CORS headers, no preflight answered.
    cors_origins: tuple[str, ...] = _setting(
        (),
        help="Browser origins allowed to call the API, comma-separated (`*`: any); empty: CORS "
        "off.",
    )
    ui: bool = _setting(
        True,
        help="Serve the dashboard under `/ui` (behind the token's sign-in when one is set).",
    )
    log_path: Path | None = _setting(
        None, help="The server's JSON-lines log; none: `<home>/logs/serving.jsonl`."
    )
    # The JSON log's active file is rotated past this size (by the writer that passes it)
    # or once its first line is this old (by the retention sweep); rotated segments are
    # deleted after ``monitoring.log_ttl_days``. 64 MiB is about 250,000 requests, and
    # bounds what a request-id lookup scans beyond the index (serving.telemetry.logindex).
    log_rotate_bytes: int = _setting(
        64 * 1024 * 1024,
        ge=64 * 1024,
        help="The JSON log's file is rotated past this size (rotated files expire with "
        "`monitoring.log_ttl_days`).",
    )
    log_rotate_s: float = _setting(
        86400.0, ge=0.0, help="...or once its first line is this old (0: by size only)."
    )
    # readiness off this long before draining
    drain_delay_s: float = _setting(
        0.0, ge=0.0, help="On SIGTERM, seconds a worker keeps serving (not ready) before it drains."
    )
    # how often workers look for changes
    poll_interval_s: float = _setting(
        0.5, ge=0.01, help="How often workers look for alias moves and deployment changes."
    )
    # `modelyard serve --backend ray` (serving.process.ray_backend): the same app in Ray
    # Serve replicas. `workers` is then the number of replicas (the fewest, autoscaling).
    backend: str = _setting(
        "builtin",
        help="`builtin` (worker processes on this machine) or `ray` (Ray Serve replicas; needs "
        "the `ray` extra).",
    )
    ray_address: str | None = _setting(
        None,
        help="The Ray cluster the `ray` backend joins (`auto`, `ray://head:10001`); none: start "
        "a local one.",
    )
    ray_max_replicas: int | None = _setting(
        None,
        ge=1,
        le=1024,
        help="With the `ray` backend, autoscale between `workers` and this many replicas; none: "
        "`workers` replicas, fixed.",
    )
    # Ray Serve's default of 5 collapsed to 13 req/s at 32 connections (BENCHMARKING.md);
    # a replica here queues in its own batcher, which sheds load past `max_queue_rows`.
    ray_max_ongoing_requests: int = _setting(
        256,
        ge=1,
        help="With the `ray` backend, requests one replica takes at a time (Ray Serve's "
        "`max_ongoing_requests`).",
    )
    machine_price_per_hour: float = _setting(
        0.10,
        ge=0,
        help="Price of the machine, for the cost per million predictions `modelyard bench` "
        "reports.",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.grpc_port and self.grpc_port == self.port:
            raise ConfigurationError(
                f"setting 'serving.grpc_port' must differ from 'serving.port', both are {self.port}"
            )


@dataclass(frozen=True)
class TrackingSettings(_Checked):
    metric_flush_points: int = _setting(
        10_000, ge=1, help="Metric points a run buffers before it writes them to the database."
    )


@dataclass(frozen=True)
class MonitoringSettings(_Checked):
    """The inference log's write-ahead log, sampling and retention; feedback limits."""

    # record every answered prediction (and accept feedback)
    log_inferences: bool = _setting(
        True, help="Record every answered prediction in the inference log (and accept feedback)."
    )
    # default: <home>/wal
    wal_dir: Path | None = _setting(
        None,
        help="Where serving workers keep the inference log's write-ahead log; none: `<home>/wal`.",
    )
    wal_max_bytes: int = _setting(
        1 << 30,
        ge=1 << 20,
        help="Most bytes the write-ahead log may hold before `wal_when_full` applies.",
    )
    wal_segment_bytes: int = _setting(
        16 << 20, ge=1 << 16, help="Size of one write-ahead log segment file."
    )
    # or "drop": answer without logging, and count it
    wal_when_full: str = _setting(
        "reject",
        help="With a full write-ahead log: `reject` requests (503), or `drop` their log record "
        "and count it.",
    )
    # None: a SIGKILLed server loses nothing (bytes are in the kernel before the
    # response goes out); set a number of seconds to bound loss on power failure too.
    wal_fsync_interval_s: float | None = _setting(
        None,
        help="Seconds between fsyncs of the write-ahead log; none: never (a killed process loses "
        "nothing, a power cut may).",
    )
    log_sample_rate: float = _setting(
        1.0, ge=0.0, le=1.0, help="Share of requests logged, chosen by request-id hash."
    )
    log_ttl_days: float = _setting(
        30.0, ge=0.0, help="Days the inference log keeps a request (0: forever)."
    )
    log_batch_bytes: int = _setting(
        1 << 20, ge=1024, help="Most bytes stored as one inference log row (a micro-batch)."
    )
    log_flush_interval_s: float = _setting(
        0.1,
        ge=0.001,
        help="How often logged requests are moved from the write-ahead log to the database.",
    )
    retention_sweep_interval_s: float = _setting(
        3600.0, ge=1.0, help="How often the server deletes inference log rows past their TTL."
    )
    feedback_max_items: int = _setting(10_000, ge=1, help="Most labels in one `POST /v1/feedback`.")
    # Labels can arrive before their prediction reaches the database (about a second
    # behind the answers, longer through a database outage).
    feedback_pending_s: float = _setting(
        60.0,
        ge=0.0,
        help="Seconds a label whose request id is not in the inference log yet is waited for "
        "before it counts as expired on /metrics (it stays stored).",
    )
    # The server's monitoring pass (live metrics, drift, alerts, webhooks) per deployment:
    # how often, over how much recent traffic; 0 turns it off.
    check_interval_s: float = _setting(
        60.0,
        ge=0.0,
        help="How often the server runs its monitoring pass per deployment (0: never).",
    )
    check_window_s: float = _setting(
        900.0, ge=1.0, help="Seconds of recent traffic each monitoring pass looks at."
    )
    # the latest ones, when more came
    check_max_requests: int = _setting(
        50_000, ge=100, help="Most requests (the latest) one monitoring pass reads."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.wal_when_full not in ("reject", "drop"):
            raise ConfigurationError(
                f"setting 'wal_when_full' must be 'reject' or 'drop', got {self.wal_when_full!r}"
            )


@dataclass(frozen=True)
class FeaturesSettings(_Checked):
    """The feature store: where its online and offline data live, and how hard it may work."""

    # "sqlite" (a file under <home>/features) or a Redis URL (redis://127.0.0.1:6379/0).
    online_store: str = _setting(
        "sqlite",
        help="`sqlite` (a file under `<home>/features`) or a Redis URL "
        "(`redis://127.0.0.1:6379/0`).",
    )
    # default: <home>/features/offline (pushed events)
    offline_dir: Path | None = _setting(
        None, help="Where pushed events are kept as Parquet; none: `<home>/features/offline`."
    )
    # DuckDB's memory for a point-in-time join; beyond it DuckDB spills to disk.
    memory_limit: str = _setting(
        "1GB", help="DuckDB's memory for a point-in-time join; beyond it DuckDB spills to disk."
    )
    threads: int = _setting(2, ge=1, le=256, help="DuckDB threads for point-in-time joins.")
    # How often the server materializes the views to the online store (0: never).
    materialize_interval_s: float = _setting(
        60.0,
        ge=0.0,
        help="How often the server materializes file and SQL views to the online store (0: never).",
    )
    # Events this much older than the newest one seen for their entity are still applied
    # to the streaming aggregates; older ones are counted and reported.
    allowed_lateness_s: float = _setting(
        300.0,
        ge=0.0,
        help="Events this much older than their entity's newest are still applied to streaming "
        "aggregates.",
    )
    # per push request
    push_max_events: int = _setting(10_000, ge=1, help="Most events in one push request.")
    # a Redis URL whose streams the server consumes
    stream_url: str | None = _setting(
        None, help="A Redis URL whose streams the server consumes as pushed events; none: off."
    )
    stream_group: str = _setting(
        "modelyard", help="The Redis consumer group name the server reads streams with."
    )


@dataclass(frozen=True)
class RetrainingSettings(_Checked):
    """The retraining worker (``modelyard worker``): how often it checks the plans'
    triggers, where it serves ``/metrics``, how long a stop waits for a running retrain."""

    check_interval_s: float = _setting(
        30.0, ge=0.1, help="How often `modelyard worker` checks the plans' triggers."
    )
    metrics_host: str = _setting("127.0.0.1", help="Interface of the worker's `/metrics`.")
    metrics_port: int = _setting(9108, ge=0, le=65535, help="Port of the worker's `/metrics`.")
    heartbeat_interval_s: float = _setting(
        5.0, ge=0.1, help="How often the worker records its heartbeat."
    )
    shutdown_grace_s: float = _setting(
        30.0,
        ge=0.0,
        help="On stop, seconds the worker waits for a running check before it shuts down.",
    )


@dataclass(frozen=True)
class RunnerSettings(_Checked):
    """The periodic decisions of several nodes on one database (rollout steps, monitoring,
    retention, retraining checks): one node leads them at a time, under a lease in the
    database (docs/scaling.md)."""

    # A leader that stops renewing (dead, paused, cut off) is replaced within
    # lease_ttl_s + lease_renew_s; the leader steps down once lease_ttl_s passes without
    # a renewal it saw succeed.
    lease_ttl_s: float = _setting(
        10.0,
        ge=1.0,
        help="Seconds the leader's lease lasts unrenewed: another node takes over the "
        "periodic decisions within this plus `lease_renew_s` of the leader's death.",
    )
    lease_renew_s: float = _setting(
        3.0,
        ge=0.05,
        help="How often the leader renews its lease, and every other node tries to take it.",
    )
    # The leader pushes each change of a deployment whose target is kserve (a rollout step,
    # a promotion, a rollback) here (runner.platform_sync, docs/kubernetes.md).
    platform_sink: str | None = _setting(
        None,
        help="Where the leader applies the manifests of deployments whose target is `kserve` "
        "after each change: a folder (GitOps), `kubernetes` or `kubernetes:CONTEXT` (the API "
        "server); none: not pushed.",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lease_renew_s * 2 > self.lease_ttl_s:
            raise ConfigurationError(
                f"setting 'runner.lease_renew_s' ({self.lease_renew_s:g}) must be at most half of "
                f"'runner.lease_ttl_s' ({self.lease_ttl_s:g}), so that one late renewal does not "
                "lose the lease"
            )


@dataclass(frozen=True)
class Settings:
    """Everything modelyard can be configured with; built once per process."""

    home: Path = _setting(
        Path(".modelyard"),
        help="Where the SQLite database, artifacts, logs and write-ahead log live.",
    )
    database_url: str | None = _setting(
        None,
        help="The metadata database (`postgresql+psycopg://user@host/db`); "
        "none: SQLite in the home.",
    )
    artifacts_url: str | None = _setting(
        None, help="A directory or an fsspec URL (`s3://bucket/prefix`); none: `<home>/artifacts`."
    )
    artifacts_cache: bool = _setting(
        True,
        help="With an fsspec `artifacts_url`: keep each artifact read under "
        "`<home>/cache/artifacts`, verified by sha256 before each use, so a restart "
        "does not download it again.",
    )
    user: str | None = _setting(
        None, help="Who is recorded as the author of runs, versions, alias moves and trust marks."
    )
    serving: ServingSettings = field(default_factory=ServingSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    features: FeaturesSettings = field(default_factory=FeaturesSettings)
    retraining: RetrainingSettings = field(default_factory=RetrainingSettings)
    runner: RunnerSettings = field(default_factory=RunnerSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser().resolve())

    @property
    def resolved_database_url(self) -> str:
        """The metadata database: the configured URL, else SQLite under ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'modelyard.db'}"

    @property
    def resolved_wal_dir(self) -> Path:
        """Where serving workers keep the inference log's write-ahead log."""
        return self.monitoring.wal_dir or self.home / "wal"

    @property
    def resolved_log_path(self) -> Path | str:
        """Where the server's JSON log goes: ``serving.log_path``, else
        ``<home>/logs/serving.jsonl``."""
        configured = self.serving.log_path
        return configured if configured is not None else self.home / "logs" / "serving.jsonl"

    @property
    def resolved_features_dir(self) -> Path:
        """Where the feature store keeps its files: the SQLite online store, pushed events."""
        return self.home / "features"

    @property
    def resolved_offline_dir(self) -> Path:
        """Where pushed events are appended, as Parquet, for the offline store."""
        return self.features.offline_dir or self.resolved_features_dir / "offline"

    @property
    def resolved_artifacts_url(self) -> str:
        """Where artifacts live: the configured URL or directory, else ``home/artifacts``."""
        return self.artifacts_url or str(self.home / "artifacts")

    @property
    def resolved_artifacts_cache(self) -> Path | None:
        """Where artifacts read from a remote ``artifacts_url`` are kept (none: not kept);
        a local store is read in place and has no cache."""
        return self.home / "cache" / "artifacts" if self.artifacts_cache else None


def load_settings(
    *,
    environ: Mapping[str, str] | None = None,
    toml_path: Path | None = None,
    **overrides: Any,
) -> Settings:
    """Build the process's settings; ``overrides`` win over env, env over the TOML file."""
    merged: dict[str, Any] = {}
    path = toml_path or Path(TOML_FILE)
    if path.is_file():
        try:
            _merge(merged, tomllib.loads(path.read_text("utf-8")))
        except tomllib.TOMLDecodeError as error:
            raise ConfigurationError(f"{path} is not valid TOML: {error}") from error
    _merge(merged, _from_env(os.environ if environ is None else environ))
    _merge(merged, {k: v for k, v in overrides.items() if v is not None})
    settings: Settings = _build(Settings, merged, "")
    return settings


def override(settings: Settings, **sections: Mapping[str, Any]) -> Settings:
    """``settings`` with values of its sections replaced (``serving={"port": 9000}``), checked
    as ``load_settings`` checks them: a command line's flags over the process's settings."""
    changed = {
        name: dataclasses.replace(getattr(settings, name), **values)
        for name, values in sections.items()
    }
    return dataclasses.replace(settings, **changed)


def environment_without_settings() -> dict[str, str]:
    """This process's environment without its ``MODELYARD_*`` settings: for a child process
    (``modelyard serve`` started by the demo) that must take its settings from its caller,
    not from whatever pointed this process elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == f"{ENV_PREFIX}TEST_POSTGRES_URL":
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        target = result
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return result


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            into[key] = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        else:
            into[key] = value


def _build(cls: type[Any], values: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigurationError(
            f"unknown setting {prefix}{unknown[0]!r}; known: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, raw in values.items():
        hint, label = hints[name], f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            if not isinstance(raw, Mapping):
                raise ConfigurationError(f"setting {label!r} must be a section, got {raw!r}")
            kwargs[name] = _build(hint, raw, f"{label}.")  # type: ignore[arg-type]
        else:
            kwargs[name] = _coerce(raw, hint, label, known[name].metadata)
    return cls(**kwargs)


def _coerce(raw: Any, hint: Any, label: str, limits: Mapping[str, Any]) -> Any:
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none")):
            return None
        hint = next(a for a in args if a is not type(None))
    try:
        if hint is bool:
            value: Any = raw if isinstance(raw, bool) else _parse_bool(str(raw))
        elif hint is int and not isinstance(raw, bool):
            value = int(raw)
        elif hint is float and not isinstance(raw, bool):
            value = float(raw)
        elif hint is Path:
            value = Path(raw)
        elif hint is str:
            value = str(raw)
        elif hint == tuple[str, ...]:
            value = _string_tuple(raw)
        else:
            raise ValueError
    except (TypeError, ValueError):
        kind = getattr(hint, "__name__", str(hint))
        raise ConfigurationError(f"setting {label!r} must be {kind}, got {raw!r}") from None
    _check_bounds(value, label, limits)
    return value


def _string_tuple(raw: Any) -> tuple[str, ...]:
    """A list setting: a TOML array, or comma-separated text in an environment variable."""
    if isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
        return tuple(raw)
    raise ValueError(raw)


def _check_bounds(value: Any, label: str, limits: Mapping[str, Any]) -> None:
    low, high = limits.get("ge"), limits.get("le")
    if value is None:  # an optional setting left unset
        return
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ConfigurationError(f"setting {label!r} must be {bounds}, got {value!r}")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)
