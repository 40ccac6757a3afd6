"""A small HTTP/1.1 load generator for this machine: ``modelyard bench`` runs on it.

Why not httpx: measured here against the modelyard server, an
``httpx.AsyncClient`` spent ~2 ms of CPU per request (about 300 requests/s from
4 connections, under 100/s from 32), far too slow to load a server that answers
10k+ requests/s. Here each connection is a raw ``asyncio.open_connection``
keep-alive socket that writes one pre-encoded request and reads the response by
its ``Content-Length`` (or chunks): ~50 us of CPU per request on uvloop (~65 us
on the default loop).

Still, a Python generator on the same 2 cores takes CPU from the server it
measures; for figures to publish use ``wrk`` (benchmarks/serving) and keep
this for quick checks. Two modes:

* closed loop (default, like wrk): each of N connections sends its next
  request when the previous answer arrives. Latency is measured from the send,
  so a stalled server slows the generator down too and the stall is
  under-counted ("coordinated omission").
* open loop (``rate``): requests are due at a fixed rate, spread over the
  connections; latency is measured from when each request was *due*, so queueing
  behind a slow response counts (wrk2's correction). The time from the actual
  send is kept as ``service``. Timers have ~1 ms resolution, so at sub-ms
  latencies the corrected figures include up to a millisecond of the
  generator's own lateness.

``LoadPlan.keep_header`` (a response header's name) also keeps every measured
answer as a ``Response``: its status, its service time and that header's value
(``x-request-id``, ``x-model-version``), in the order the answers arrived, for
tests that must know *which* requests succeeded or which version answered.

Only loopback targets are accepted (127.0.0.0/8, ::1, ``localhost``), and every
run is bounded by ``MAX_DURATION_S``: this is a tool for checking your own
server, not for loading someone else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import uvloop

from modelyard.errors import ValidationError
from modelyard.loadtest.latency import BUCKETS as BUCKETS  # re-exported, as before the split
from modelyard.loadtest.latency import MAX_TRACKABLE_US as MAX_TRACKABLE_US
from modelyard.loadtest.latency import LatencyHistogram, LatencySummary
from modelyard.loadtest.latency import bucket_ceiling as bucket_ceiling
from modelyard.loadtest.latency import bucket_of as bucket_of

MAX_DURATION_S = 120.0
MAX_REQUESTS = 10_000_000
MAX_CONNECTIONS = 1024
DRAIN_GRACE_S = 5.0  # after the deadline, in-flight requests get this long to finish
RECONNECT_PAUSE_S = 0.01
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


@dataclass(frozen=True)
class Response:
    """One measured answer, kept when the plan names ``keep_header``: its status, the
    time from its send to its answer, and the value of the kept header (``None`` when
    the answer had none)."""

    status: int
    service_s: float
    header: str | None


@dataclass(frozen=True)
class LoadResult:
    """What a run measured (after its warm-up).

    ``errors`` counts non-2xx answers by status (``"503"``) and transport failures
    by kind (``"ConnectionResetError"``, ``"timeout"``). ``latency`` covers every
    answered request, errors included; in open-loop mode it is measured from each
    request's due time and ``service`` from its actual send.
    """

    mode: str
    connections: int
    rate: float | None
    duration_s: float
    requests: int
    ok: int
    errors: dict[str, int]
    latency: LatencySummary
    service: LatencySummary | None = None
    responses: tuple[Response, ...] = ()

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        """Successful (2xx) responses per second."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0


def cost_per_1000(predictions_per_second: float, price_per_hour: float) -> float:
    """What 1,000 predictions cost on a machine billed ``price_per_hour`` that sustains
    ``predictions_per_second`` (infinite when it sustains none)."""
    if price_per_hour < 0:
        raise ValidationError(f"the machine price must be >= 0 per hour, got {price_per_hour!r}")
    if predictions_per_second <= 0:
        return math.inf
    return price_per_hour / (predictions_per_second * 3600.0) * 1000.0


def check_loopback(host: str) -> None:
    """Refuse any host that is not this machine's loopback interface."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address is None or not address.is_loopback:
        raise ValidationError(
            f"load is only generated against this machine (127.0.0.0/8, ::1 or localhost), "
            f"got host {host!r}"
        )


@dataclass(frozen=True)
class Target:
    """Where requests go: a loopback host, a port and a base path."""

    host: str
    port: int
    base_path: str = ""

    @classmethod
    def from_url(cls, url: str) -> Target:
        """Parse ``http://127.0.0.1:8000[/prefix]``; only plain HTTP to loopback is accepted."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http":
            raise ValidationError(f"the URL must start with http://, got {url!r}")
        host = parts.hostname
        if not host:
            raise ValidationError(f"the URL has no host: {url!r}")
        check_loopback(host)
        try:
            port = parts.port or 80
        except ValueError:
            raise ValidationError(f"the URL's port is not a number 0-65535: {url!r}") from None
        return cls(host, port, parts.path.rstrip("/"))

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.base_path}"


def encode_request(
    target: Target,
    path: str,
    body: bytes,
    *,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """One keep-alive HTTP/1.1 request, encoded once and written as-is for every send."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    lines = [
        f"{method} {target.base_path}{path} HTTP/1.1",
        f"Host: {host}:{target.port}",
        "Connection: keep-alive",
    ]
    given = {k.lower() for k in (headers or {})}
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
        if "content-type" not in given:
            lines.append("Content-Type: application/json")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ResponseError(Exception):
    """The server's answer was not HTTP/1.1 this client can read."""


@dataclass(frozen=True)
class ResponseHead:
    status: int
    length: int | None  # None: chunked
    keep_alive: bool
    raw: bytes = b""


def header_value(head: bytes, name: str) -> str | None:
    """The value of header ``name`` (any case) in a response head, or ``None``."""
    key = b"\r\n" + name.lower().encode("latin-1") + b":"
    at = head.lower().find(key)
    if at < 0:
        return None
    end = head.find(b"\r\n", at + len(key))
    return head[at + len(key) : end if end >= 0 else len(head)].strip().decode("latin-1")


def parse_head(head: bytes) -> ResponseHead:
    """Status, body length and keep-alive of a response head (status line + headers)."""
    if not head.startswith(b"HTTP/1.") or len(head) < 12:
        raise ResponseError(f"not an HTTP/1.x response: {head[:40]!r}")
    try:
        status = int(head[9:12])
    except ValueError:
        raise ResponseError(f"bad status line: {head[:40]!r}") from None
    lower = head.lower()
    keep_alive = b"\r\nconnection: close" not in lower and not head.startswith(b"HTTP/1.0")
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.find(b"\r\n", at + 17)
        try:
            return ResponseHead(status, int(lower[at + 17 : end]), keep_alive, head)
        except ValueError:
            raise ResponseError("bad Content-Length header") from None
    if b"\r\ntransfer-encoding: chunked" in lower:
        return ResponseHead(status, None, keep_alive, head)
    if status in (204, 304) or 100 <= status < 200:
        return ResponseHead(status, 0, keep_alive, head)
    raise ResponseError("the response has neither Content-Length nor chunked encoding")


@dataclass(frozen=True)
class LoadPlan:
    """One run: what to send where, on how many connections, for how long.

    The run ends at ``duration_s`` (after ``warmup_s``) or after ``requests``
    measured requests, whichever comes first; both are capped. ``rate`` (requests
    per second across all connections) switches to open-loop mode. ``variants``, when
    given, are (path, body) pairs sent in turn instead of ``path`` and ``body``: varied
    inputs, or several deployments, each encoded once. ``keep_header`` keeps every
    measured answer (``LoadResult.responses``) with that response header's value.
    """

    url: str
    path: str
    body: bytes
    connections: int = 32
    duration_s: float | None = 10.0
    requests: int | None = None
    rate: float | None = None
    warmup_s: float = 0.0
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    variants: tuple[tuple[str, bytes], ...] = ()
    keep_header: str | None = None

    def check(self) -> Target:
        """The target, once every bound is checked (raises ``ValidationError``)."""
        target = Target.from_url(self.url)
        if not 1 <= self.connections <= MAX_CONNECTIONS:
            raise ValidationError(
                f"connections must be between 1 and {MAX_CONNECTIONS}, got {self.connections}"
            )
        if self.duration_s is None and self.requests is None:
            raise ValidationError("give a duration or a number of requests")
        if self.duration_s is not None and not 0 < self.duration_s <= MAX_DURATION_S:
            raise ValidationError(
                f"duration must be more than 0 and at most {MAX_DURATION_S:g} s, "
                f"got {self.duration_s!r}"
            )
        if self.requests is not None and not 1 <= self.requests <= MAX_REQUESTS:
            raise ValidationError(
                f"requests must be between 1 and {MAX_REQUESTS:,}, got {self.requests!r}"
            )
        if self.rate is not None and not 0 < self.rate <= 1_000_000:
            raise ValidationError(f"rate must be more than 0 and at most 1e6/s, got {self.rate!r}")
        if not 0 <= self.warmup_s <= MAX_DURATION_S:
            raise ValidationError(
                f"warm-up must be between 0 and {MAX_DURATION_S:g} s, got {self.warmup_s!r}"
            )
        return target

    @property
    def measure_s(self) -> float:
        """The measuring window's upper bound: the duration, else the cap."""
        return self.duration_s if self.duration_s is not None else MAX_DURATION_S


class _Run:
    """The shared state of one run's connections."""

    def __init__(self, plan: LoadPlan, target: Target) -> None:
        self.plan = plan
        self.target = target
        self.requests = [
            encode_request(target, path, body, method=plan.method, headers=plan.headers)
            for path, body in (plan.variants or ((plan.path, plan.body),))
        ]
        self._sent = 0
        self.latency = LatencyHistogram()
        self.service = LatencyHistogram() if plan.rate is not None else None
        self.errors: dict[str, int] = {}
        self.ok = 0
        self.measured = 0
        self.issued = 0
        self.measuring = False
        self.stopped = False
        self.started = 0.0
        self.last_done = 0.0
        self.responses: list[Response] = []

    def next_request(self) -> bytes:
        """The encoded request to send next: the variants in turn, across connections."""
        request = self.requests[self._sent % len(self.requests)]
        self._sent += 1
        return request

    def take_ticket(self) -> bool:
        """May a connection send another request? (request-count bound)"""
        if self.stopped:
            return False
        limit = self.plan.requests
        if limit is not None and self.measuring:
            if self.issued >= limit:
                return False
            self.issued += 1
        return True

    def _counts(self) -> bool:
        """Does an outcome arriving now count? (measuring, and the request bound not met)"""
        limit = self.plan.requests
        return self.measuring and (limit is None or self.measured < limit)

    def count_error(self, kind: str) -> None:
        if self._counts():
            self.errors[kind] = self.errors.get(kind, 0) + 1
            self.measured += 1

    def done(self, head: ResponseHead, latency: float, service: float, now: float) -> None:
        if not self._counts():
            return
        status = head.status
        if self.plan.keep_header is not None:
            value = header_value(head.raw, self.plan.keep_header)
            self.responses.append(Response(status, service, value))
        self.measured += 1
        self.last_done = now
        if 200 <= status < 300:
            self.ok += 1
        else:
            key = str(status)
            self.errors[key] = self.errors.get(key, 0) + 1
        self.latency.record(latency)
        if self.service is not None:
            self.service.record(service)
        limit = self.plan.requests
        if limit is not None and self.measured >= limit:
            self.stopped = True


async def _read_response(reader: asyncio.StreamReader) -> ResponseHead:
    head = parse_head(await reader.readuntil(b"\r\n\r\n"))
    if head.length is None:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0], 16)
            except ValueError:
                raise ResponseError(f"bad chunk size {size_line[:20]!r}") from None
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif head.length:
        await reader.readexactly(head.length)
    return head


class _Connection:
    """One keep-alive connection, reopened after a failure or ``Connection: close``."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.target.host, self.target.port)

    async def exchange(self, request: bytes) -> ResponseHead:
        if self.writer is None:
            await self.open()
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(request)
        head = await _read_response(self.reader)
        if not head.keep_alive:
            self.close()
        return head

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


_TRANSPORT_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ResponseError)


async def _closed_loop(run: _Run, number: int) -> None:
    connection = _Connection(run.target)
    clock = time.perf_counter
    # Connect before the first send, as wrk does, so it is not timed (a failure is
    # counted by the loop's first exchange).
    with contextlib.suppress(*_TRANSPORT_ERRORS):
        await connection.open()
    try:
        while run.take_ticket():
            sent = clock()
            try:
                head = await connection.exchange(run.next_request())
            except _TRANSPORT_ERRORS as error:
                connection.close()
                run.count_error(type(error).__name__)
                await asyncio.sleep(RECONNECT_PAUSE_S)
                continue
            now = clock()
            run.done(head, now - sent, now - sent, now)
    finally:
        connection.close()


async def _open_loop(run: _Run, number: int) -> None:
    assert run.plan.rate is not None
    connection = _Connection(run.target)
    clock = time.perf_counter
    interval = run.plan.connections / run.plan.rate
    due = run.started + number / run.plan.rate
    try:
        while True:
            wait = due - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            if not run.take_ticket():
                break
            sent = clock()
            try:
                head = await connection.exchange(run.next_request())
            except _TRANSPORT_ERRORS as error:
                connection.close()
                run.count_error(type(error).__name__)
            else:
                now = clock()
                run.done(head, now - due, now - sent, now)
            due += interval
    finally:
        connection.close()


async def generate(plan: LoadPlan) -> LoadResult:
    """Run ``plan`` on the running event loop and return what it measured."""
    target = plan.check()
    run = _Run(plan, target)
    loop = asyncio.get_running_loop()
    run.started = time.perf_counter()
    worker = _open_loop if plan.rate is not None else _closed_loop
    tasks = [asyncio.create_task(worker(run, n)) for n in range(plan.connections)]
    measure_from = 0.0

    def start_measuring() -> None:
        nonlocal measure_from
        run.measuring = True
        measure_from = time.perf_counter()

    def stop() -> None:
        run.stopped = True

    if plan.warmup_s > 0:
        loop.call_later(plan.warmup_s, start_measuring)
    else:
        start_measuring()
    loop.call_later(plan.warmup_s + plan.measure_s, stop)
    done, pending = await asyncio.wait(
        tasks, timeout=plan.warmup_s + plan.measure_s + DRAIN_GRACE_S
    )
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()  # a bug in a connection's loop surfaces here, not as a lost warning
    if pending and run.measuring:
        run.errors["timeout"] = run.errors.get("timeout", 0) + len(pending)
    ended = run.last_done if run.last_done > measure_from else time.perf_counter()
    return LoadResult(
        mode="open" if plan.rate is not None else "closed",
        connections=plan.connections,
        rate=plan.rate,
        duration_s=max(ended - measure_from, 1e-9) if run.measuring else 0.0,
        requests=run.measured,
        ok=run.ok,
        errors=dict(sorted(run.errors.items())),
        latency=run.latency.summary(),
        service=run.service.summary() if run.service is not None else None,
        responses=tuple(run.responses),
    )


def run_load(plan: LoadPlan) -> LoadResult:
    """Run ``plan`` on a fresh uvloop event loop; blocking."""
    plan.check()
    # uvloop (from uvicorn[standard]) takes ~20% less CPU per request than asyncio's loop.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(generate(plan))
