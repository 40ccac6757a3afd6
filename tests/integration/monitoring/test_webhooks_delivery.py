"""Webhook deliveries against a real HTTP server on 127.0.0.1, on simulated time."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import orjson
import pytest
from sqlalchemy import insert

from modelyard.monitoring.sql import SqlMonitoringRepository
from modelyard.monitoring.webhooks import (
    RetryPolicy,
    deliver_due,
    deliveries,
    enqueue_event,
)
from modelyard.store.database import Database
from modelyard.store.schema import events
from modelyard.yard import Yard

T0 = 1_790_000_000.0


@dataclass
class Receiver:
    """Answers with ``statuses`` in turn (the last one forever) and records every request."""

    statuses: list[int]
    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def next_status(self) -> int:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


def serve(receiver: Receiver) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status = receiver.next_status()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"not now")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/modelyard"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def flaky() -> Iterator[Receiver]:
    """Fails the first two requests with 503, then accepts."""
    yield from serve(Receiver([503, 503, 200]))


@pytest.fixture
def repo(yard: Yard) -> SqlMonitoringRepository:
    return SqlMonitoringRepository(yard.db)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as opened:
        yield opened


def store_event(db: Database, reason: str = "drift: drift_share = 0.4 > 0.1 (v3)") -> int:
    with db.write() as conn:
        return int(
            conn.execute(
                insert(events)
                .values(at=T0, kind="alert", subject="fraud-api", reason=reason,
                        payload=orjson.dumps({"rule": "drift", "value": 0.4}).decode(),
                        actor="monitor")
                .returning(events.c.id)
            ).scalar_one()
        )  # fmt: skip


def test_retries_with_backoff_until_the_receiver_accepts(
    yard: Yard, repo: SqlMonitoringRepository, flaky: Receiver, client: httpx.Client
) -> None:
    db, rng = repo, np.random.default_rng(0)
    policy = RetryPolicy(base_delay_s=10.0)
    event_id = store_event(yard.db)
    [delivery_id] = enqueue_event(db, event_id, [flaky.url], now=T0)

    first = deliver_due(db, client, T0, rng, policy, secret=b"s3cret")
    assert (first.delivered, first.retrying, first.failed) == ([], [delivery_id], [])
    [row] = deliveries(db, event_id=event_id)
    assert (row.attempts, row.state) == (1, "pending")
    assert T0 + 5.0 <= row.next_attempt_at <= T0 + 10.0
    assert row.last_error == "HTTP 503: not now"

    # not due yet: nothing is sent
    assert deliver_due(db, client, row.next_attempt_at - 1, rng, policy).retrying == []
    assert len(flaky.requests) == 1

    second = deliver_due(db, client, row.next_attempt_at, rng, policy, secret=b"s3cret")
    assert second.retrying == [delivery_id]
    [row2] = deliveries(db, event_id=event_id)
    assert row2.attempts == 2
    assert row.next_attempt_at + 10.0 <= row2.next_attempt_at <= row.next_attempt_at + 20.0

    third = deliver_due(db, client, row2.next_attempt_at, rng, policy, secret=b"s3cret")
    assert third.delivered == [delivery_id]
    [done] = deliveries(db, event_id=event_id)
    assert (done.attempts, done.state, done.last_error) == (3, "delivered", None)
    assert deliver_due(db, client, T0 + 10**6, rng, policy).delivered == []  # nothing left

    assert len(flaky.requests) == 3
    bodies = {body for _, body in flaky.requests}
    assert len(bodies) == 1  # every attempt sends the same bytes
    sent = orjson.loads(bodies.pop())
    assert sent["id"] == event_id
    assert (sent["kind"], sent["subject"], sent["payload"]) == (
        "alert", "fraud-api", {"rule": "drift", "value": 0.4},
    )  # fmt: skip
    for attempt, (headers, body) in enumerate(flaky.requests, start=1):
        assert headers["idempotency-key"] == f"modelyard-event-{event_id}"
        assert headers["x-modelyard-attempt"] == str(attempt)
        assert headers["content-type"] == "application/json"
        expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["x-modelyard-signature"] == f"sha256={expected}"


def test_gives_up_after_max_attempts(
    yard: Yard, repo: SqlMonitoringRepository, client: httpx.Client
) -> None:
    for receiver in serve(Receiver([500])):
        event_id = store_event(yard.db)
        [delivery_id] = enqueue_event(repo, event_id, [receiver.url], now=T0)
        policy = RetryPolicy(max_attempts=3, base_delay_s=1.0)
        rng = np.random.default_rng(1)
        now = T0
        outcomes = []
        for _ in range(3):
            outcome = deliver_due(repo, client, now, rng, policy)
            outcomes.append((outcome.retrying, outcome.failed))
            now = deliveries(repo, event_id=event_id)[0].next_attempt_at
        assert outcomes == [([delivery_id], []), ([delivery_id], []), ([], [delivery_id])]
        [row] = deliveries(repo, event_id=event_id)
        assert (row.state, row.attempts, row.last_error) == ("failed", 3, "HTTP 500: not now")
        assert len(receiver.requests) == 3


def test_a_rejected_payload_is_not_sent_again(
    yard: Yard, repo: SqlMonitoringRepository, client: httpx.Client
) -> None:
    for receiver in serve(Receiver([400])):
        event_id = store_event(yard.db)
        enqueue_event(repo, event_id, [receiver.url], now=T0)
        outcome = deliver_due(repo, client, T0, np.random.default_rng(2))
        assert len(outcome.failed) == 1
        assert deliveries(repo, state="failed")[0].attempts == 1
        assert len(receiver.requests) == 1


def test_an_unreachable_receiver_is_retried(
    yard: Yard, repo: SqlMonitoringRepository, client: httpx.Client
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    event_id = store_event(yard.db)
    enqueue_event(repo, event_id, [f"http://127.0.0.1:{port}/gone"], now=T0)
    outcome = deliver_due(repo, client, T0, np.random.default_rng(3))
    assert len(outcome.retrying) == 1
    [row] = deliveries(repo, event_id=event_id)
    assert row.last_error is not None
    assert row.last_error.startswith("ConnectError")


def test_one_event_goes_to_every_url_independently(
    yard: Yard, repo: SqlMonitoringRepository, client: httpx.Client
) -> None:
    for good in serve(Receiver([200])):
        for bad in serve(Receiver([503])):
            event_id = store_event(yard.db)
            enqueue_event(repo, event_id, [good.url, bad.url], now=T0)
            outcome = deliver_due(repo, client, T0, np.random.default_rng(4))
            assert (len(outcome.delivered), len(outcome.retrying)) == (1, 1)
            states = {d.url: d.state for d in deliveries(repo, event_id=event_id)}
            assert states == {good.url: "delivered", bad.url: "pending"}
