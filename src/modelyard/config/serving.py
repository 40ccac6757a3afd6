"""The prediction server's settings (`[serving]`, ``MODELYARD_SERVING__*``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelyard.config.fields import Checked, setting
from modelyard.errors import ConfigurationError


@dataclass(frozen=True)
class ServingSettings(Checked):
    """How `modelyard serve` listens, batches and sheds load."""

    host: str = setting(
        "127.0.0.1",
        help="Interface `modelyard serve` listens on; beyond loopback it needs `token` (or "
        "`--insecure`).",
    )
    port: int = setting(8000, ge=0, le=65535, help="TCP port of the prediction server.")
    # Off by default: gRPC needs the `grpc` extra (grpcio), and most callers speak REST.
    grpc_port: int | None = setting(
        None,
        ge=0,
        le=65535,
        help="TCP port of the Open Inference Protocol's gRPC service, on `host` (needs the "
        "`grpc` extra); unset or 0: no gRPC.",
    )
    workers: int = setting(
        2,
        ge=1,
        le=64,
        help="Worker processes answering requests (one per core); 1 runs without a supervisor.",
    )
    # A cap: each version times batches of 1, 2, 4, ... at warm-up and uses the
    # largest size within 10% of the cheapest cost per row.
    max_batch_size: int = setting(
        64,
        ge=1,
        le=65536,
        help="Most rows merged into one model call (a cap; warm-up picks the size actually used).",
    )
    # Measured on the 2-core machine (benchmarks/serving): waiting for company gave
    # no larger batches and no more throughput, because requests that arrive in
    # the same event-loop turn already share one model call.
    max_batch_wait_us: int = setting(
        0,
        ge=0,
        le=1_000_000,
        help="Longest a request waits for others to batch with, in microseconds.",
    )
    max_body_bytes: int = setting(
        4 * 1024 * 1024, ge=1024, help="Largest request body accepted; larger gets 413."
    )
    # Per connection, so that one client cannot make a worker buffer without bound
    # (serving/http/connection.py). Browsers and HTTP libraries send 5-20 headers in
    # well under 2 KiB, a large cookie jar about 8 KiB; nginx's large_client_header_buffers
    # is 4 x 8 KiB and Node's header size limit 16 KiB; 100 headers is Apache's
    # LimitRequestFields and Tomcat's maxHeaderCount. Past them: 431 (headers) or 414
    # (URL) and the connection closes. Before these, 200,000 headers (20 MB) were read.
    max_header_count: int = setting(
        100, ge=8, help="Most headers a request may carry; more gets 431 and the connection closes."
    )
    max_header_bytes: int = setting(
        64 * 1024, ge=1024, help="Most header bytes a request may carry; more gets 431."
    )
    max_url_bytes: int = setting(8 * 1024, ge=256, help="Longest request URL; longer gets 414.")
    # Pipelined requests read ahead of the one being answered, and the body bytes they
    # hold: past either, the connection stops reading (TCP backpressure) until the
    # answers catch up. 16 x 1 KiB requests fill no more than a few pipelining clients
    # send; 8 MiB is two bodies at the default body limit. Measured with 200 pipelined
    # 1 MiB bodies on one connection: the worker's RSS grew 209 MB without these bounds,
    # 16 MB with them (tests/integration/serving/test_connection_limits.py).
    max_pipelined_requests: int = setting(
        16, ge=1, help="Pipelined requests read ahead on one connection before it stops reading."
    )
    max_buffered_bytes: int = setting(
        8 * 1024 * 1024,
        ge=1024,
        help="Body bytes buffered ahead on one connection before it stops reading.",
    )
    # A refused upload (413) is read and discarded to its end, up to this much and this
    # long, before the connection closes: a client still sending when the socket closes
    # gets a reset instead of the 413 (Python's http.client sends the whole body first).
    refused_drain_bytes: int = setting(
        64 * 1024 * 1024,
        ge=0,
        help="Bytes of a refused (413) upload read and discarded before the connection closes.",
    )
    refused_drain_s: float = setting(
        5.0,
        ge=0.0,
        help="Seconds spent discarding a refused (413) upload before the connection closes.",
    )
    max_rows: int = setting(10_000, ge=1, help="Most rows in one inference request.")
    request_timeout_s: float = setting(
        5.0, ge=0.001, help="A request not answered by then gets 504."
    )
    # A model call still running this long after it started (on its thread, long after
    # its requests were answered 504) marks the worker unhealthy, and the supervisor
    # replaces it once its in-flight requests are answered. 60 s is 12 default request
    # timeouts: no caller still waits by then, and a legitimately slow batch model
    # (seconds a call) is far from it. Keep it above ``request_timeout_s``.
    model_hang_limit_s: float = setting(
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
    loop_stall_limit_s: float = setting(
        10.0, ge=0.2, help="A worker whose event loop has not run this long is killed and replaced."
    )
    max_queue_rows: int = setting(
        4096,
        ge=1,
        help="Rows queued for one version before new requests are refused as overloaded (503).",
    )
    # Off by default: the request's own deadline bounds its wait. A deployment that would
    # rather refuse than answer late sets a target near one model call (Triton's queue
    # policy rejects after such a wait; this refuses at the door, before any work).
    max_queue_wait_ms: float | None = setting(
        None,
        ge=0.001,
        help="Refuse (503) a request whose estimated wait for the model, the call running "
        "included, exceeds this many ms; unset: only the request's deadline limits the wait.",
    )
    intra_op_threads: int = setting(
        1,
        ge=0,
        help="Threads each model call may use (ONNX Runtime, LightGBM); 0 lets the runtime choose.",
    )
    # Where a platform splits a canary's traffic itself (KServe), each version runs its own
    # pods; each answers with its version so the inference log still tells the rollout
    # controller which arm answered (docs/kubernetes.md).
    pinned_version: int | None = setting(
        None,
        ge=1,
        help="Answer each deployment with this version while it is one of its arms, instead of "
        "drawing by weight: for a platform that splits traffic itself (KServe).",
    )
    # The pods of one deployment on Kubernetes load that deployment only, not every one
    # of the shared database.
    deployments: tuple[str, ...] | None = setting(
        None,
        help="The deployments this server follows, comma-separated; none: every deployment in "
        "the database.",
    )
    token: str | None = setting(
        None,
        help="When set, inference, metadata and feedback need `Authorization: Bearer <token>`.",
    )
    # Host header values answered (DNS rebinding): names or IPs, each with any port
    # ("name") or one ("name:8000"), "[::1]" for IPv6, "*" for any. None: the loopback
    # names, plus ``host`` when it is a specific address (see serving.http.hosts).
    allowed_hosts: tuple[str, ...] | None = setting(
        None,
        help="`Host` header values answered, comma-separated (`name`, `name:port`, `*`); none: "
        "loopback and a specific bind address.",
    )
    # Browser origins allowed to call the API ("https://app.example.com", "*" for any);
    # empty: no CORS headers, no preflight answered.
    cors_origins: tuple[str, ...] = setting(
        (),
        help="Browser origins allowed to call the API, comma-separated (`*`: any); empty: CORS "
        "off.",
    )
    ui: bool = setting(
        True,
        help="Serve the dashboard under `/ui` (behind the token's sign-in when one is set).",
    )
    log_path: Path | None = setting(
        None, help="The server's JSON-lines log; none: `<home>/logs/serving.jsonl`."
    )
    # The JSON log's active file is rotated past this size (by the writer that passes it)
    # or once its first line is this old (by the retention sweep); rotated segments are
    # deleted after ``monitoring.log_ttl_days``. 64 MiB is about 250,000 requests, and
    # bounds what a request-id lookup scans beyond the index (serving.telemetry.logindex).
    log_rotate_bytes: int = setting(
        64 * 1024 * 1024,
        ge=64 * 1024,
        help="The JSON log's file is rotated past this size (rotated files expire with "
        "`monitoring.log_ttl_days`).",
    )
    log_rotate_s: float = setting(
        86400.0, ge=0.0, help="...or once its first line is this old (0: by size only)."
    )
    # readiness off this long before draining
    drain_delay_s: float = setting(
        0.0, ge=0.0, help="On SIGTERM, seconds a worker keeps serving (not ready) before it drains."
    )
    # how often workers look for changes
    poll_interval_s: float = setting(
        0.5, ge=0.01, help="How often workers look for alias moves and deployment changes."
    )
    # `modelyard serve --backend ray` (serving.process.ray_backend): the same app in Ray
    # Serve replicas. `workers` is then the number of replicas (the fewest, autoscaling).
    backend: str = setting(
        "builtin",
        help="`builtin` (worker processes on this machine) or `ray` (Ray Serve replicas; needs "
        "the `ray` extra).",
    )
    ray_address: str | None = setting(
        None,
        help="The Ray cluster the `ray` backend joins (`auto`, `ray://head:10001`); none: start "
        "a local one.",
    )
    ray_max_replicas: int | None = setting(
        None,
        ge=1,
        le=1024,
        help="With the `ray` backend, autoscale between `workers` and this many replicas; none: "
        "`workers` replicas, fixed.",
    )
    # Ray Serve's default of 5 collapsed to 13 req/s at 32 connections (BENCHMARKING.md);
    # a replica here queues in its own batcher, which sheds load past `max_queue_rows`.
    ray_max_ongoing_requests: int = setting(
        256,
        ge=1,
        help="With the `ray` backend, requests one replica takes at a time (Ray Serve's "
        "`max_ongoing_requests`).",
    )
    machine_price_per_hour: float = setting(
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
