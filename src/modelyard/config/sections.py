"""The settings sections beside serving's: tracking, monitoring, features, retraining and
the runner of periodic jobs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelyard.config.fields import Checked, setting
from modelyard.errors import ConfigurationError


@dataclass(frozen=True)
class TrackingSettings(Checked):
    metric_flush_points: int = setting(
        10_000, ge=1, help="Metric points a run buffers before it writes them to the database."
    )


@dataclass(frozen=True)
class MonitoringSettings(Checked):
    """The inference log's write-ahead log, sampling and retention; feedback limits."""

    # record every answered prediction (and accept feedback)
    log_inferences: bool = setting(
        True, help="Record every answered prediction in the inference log (and accept feedback)."
    )
    # default: <home>/wal
    wal_dir: Path | None = setting(
        None,
        help="Where serving workers keep the inference log's write-ahead log; none: `<home>/wal`.",
    )
    wal_max_bytes: int = setting(
        1 << 30,
        ge=1 << 20,
        help="Most bytes the write-ahead log may hold before `wal_when_full` applies.",
    )
    wal_segment_bytes: int = setting(
        16 << 20, ge=1 << 16, help="Size of one write-ahead log segment file."
    )
    # or "drop": answer without logging, and count it
    wal_when_full: str = setting(
        "reject",
        help="With a full write-ahead log: `reject` requests (503), or `drop` their log record "
        "and count it.",
    )
    # None: a SIGKILLed server loses nothing (bytes are in the kernel before the
    # response goes out); set a number of seconds to bound loss on power failure too.
    wal_fsync_interval_s: float | None = setting(
        None,
        help="Seconds between fsyncs of the write-ahead log; none: never (a killed process loses "
        "nothing, a power cut may).",
    )
    log_sample_rate: float = setting(
        1.0, ge=0.0, le=1.0, help="Share of requests logged, chosen by request-id hash."
    )
    log_ttl_days: float = setting(
        30.0, ge=0.0, help="Days the inference log keeps a request (0: forever)."
    )
    log_batch_bytes: int = setting(
        1 << 20, ge=1024, help="Most bytes stored as one inference log row (a micro-batch)."
    )
    log_flush_interval_s: float = setting(
        0.1,
        ge=0.001,
        help="How often logged requests are moved from the write-ahead log to the database.",
    )
    retention_sweep_interval_s: float = setting(
        3600.0, ge=1.0, help="How often the server deletes inference log rows past their TTL."
    )
    feedback_max_items: int = setting(10_000, ge=1, help="Most labels in one `POST /v1/feedback`.")
    # Labels can arrive before their prediction reaches the database (about a second
    # behind the answers, longer through a database outage).
    feedback_pending_s: float = setting(
        60.0,
        ge=0.0,
        help="Seconds a label whose request id is not in the inference log yet is waited for "
        "before it counts as expired on /metrics (it stays stored).",
    )
    # The server's monitoring pass (live metrics, drift, alerts, webhooks) per deployment:
    # how often, over how much recent traffic; 0 turns it off.
    check_interval_s: float = setting(
        60.0,
        ge=0.0,
        help="How often the server runs its monitoring pass per deployment (0: never).",
    )
    check_window_s: float = setting(
        900.0, ge=1.0, help="Seconds of recent traffic each monitoring pass looks at."
    )
    # the latest ones, when more came
    check_max_requests: int = setting(
        50_000, ge=100, help="Most requests (the latest) one monitoring pass reads."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.wal_when_full not in ("reject", "drop"):
            raise ConfigurationError(
                f"setting 'wal_when_full' must be 'reject' or 'drop', got {self.wal_when_full!r}"
            )


@dataclass(frozen=True)
class FeaturesSettings(Checked):
    """The feature store: where its online and offline data live, and how hard it may work."""

    # "sqlite" (a file under <home>/features) or a Redis URL (redis://127.0.0.1:6379/0).
    online_store: str = setting(
        "sqlite",
        help="`sqlite` (a file under `<home>/features`) or a Redis URL "
        "(`redis://127.0.0.1:6379/0`).",
    )
    # default: <home>/features/offline (pushed events)
    offline_dir: Path | None = setting(
        None, help="Where pushed events are kept as Parquet; none: `<home>/features/offline`."
    )
    # DuckDB's memory for a point-in-time join; beyond it DuckDB spills to disk.
    memory_limit: str = setting(
        "1GB", help="DuckDB's memory for a point-in-time join; beyond it DuckDB spills to disk."
    )
    threads: int = setting(2, ge=1, le=256, help="DuckDB threads for point-in-time joins.")
    # How often the server materializes the views to the online store (0: never).
    materialize_interval_s: float = setting(
        60.0,
        ge=0.0,
        help="How often the server materializes file and SQL views to the online store (0: never).",
    )
    # Events this much older than the newest one seen for their entity are still applied
    # to the streaming aggregates; older ones are counted and reported.
    allowed_lateness_s: float = setting(
        300.0,
        ge=0.0,
        help="Events this much older than their entity's newest are still applied to streaming "
        "aggregates.",
    )
    # per push request
    push_max_events: int = setting(10_000, ge=1, help="Most events in one push request.")
    # a Redis URL whose streams the server consumes
    stream_url: str | None = setting(
        None, help="A Redis URL whose streams the server consumes as pushed events; none: off."
    )
    stream_group: str = setting(
        "modelyard", help="The Redis consumer group name the server reads streams with."
    )


@dataclass(frozen=True)
class RetrainingSettings(Checked):
    """The retraining worker (``modelyard worker``): how often it checks the plans'
    triggers, where it serves ``/metrics``, how long a stop waits for a running retrain."""

    check_interval_s: float = setting(
        30.0, ge=0.1, help="How often `modelyard worker` checks the plans' triggers."
    )
    metrics_host: str = setting("127.0.0.1", help="Interface of the worker's `/metrics`.")
    metrics_port: int = setting(9108, ge=0, le=65535, help="Port of the worker's `/metrics`.")
    heartbeat_interval_s: float = setting(
        5.0, ge=0.1, help="How often the worker records its heartbeat."
    )
    shutdown_grace_s: float = setting(
        30.0,
        ge=0.0,
        help="On stop, seconds the worker waits for a running check before it shuts down.",
    )


@dataclass(frozen=True)
class RunnerSettings(Checked):
    """The periodic decisions of several nodes on one database (rollout steps, monitoring,
    retention, retraining checks): one node leads them at a time, under a lease in the
    database (docs/scaling.md)."""

    # A leader that stops renewing (dead, paused, cut off) is replaced within
    # lease_ttl_s + lease_renew_s; the leader steps down once lease_ttl_s passes without
    # a renewal it saw succeed.
    lease_ttl_s: float = setting(
        10.0,
        ge=1.0,
        help="Seconds the leader's lease lasts unrenewed: another node takes over the "
        "periodic decisions within this plus `lease_renew_s` of the leader's death.",
    )
    lease_renew_s: float = setting(
        3.0,
        ge=0.05,
        help="How often the leader renews its lease, and every other node tries to take it.",
    )
    # The leader pushes each change of a deployment whose target is kserve (a rollout step,
    # a promotion, a rollback) here (runner.platform_sync, docs/kubernetes.md).
    platform_sink: str | None = setting(
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
