"""``deliver_due`` on the in-memory repository and an in-process HTTP transport: what is
posted, what is retried, what is given up (the real server and database are the
integration tests' business)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import httpx
import numpy as np
import orjson
import pytest

from modelyard.monitoring.alerts import record_alerts
from modelyard.monitoring.memory import InMemoryMonitoringRepository
from modelyard.monitoring.rules import Alert, AlertRule
from modelyard.monitoring.webhooks import RetryPolicy, deliver_due, deliveries, enqueue_event

T0 = 1_790_000_000.0
URL = "https://hooks.example/modelyard"


class Receiver:
    """Answers with ``answers`` in turn (the last one forever) and records every request."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, text="ok" if answer < 300 else "not now")


@pytest.fixture
def repository() -> InMemoryMonitoringRepository:
    return InMemoryMonitoringRepository()


def client(receiver: Receiver) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.MockTransport(receiver)) as opened:
        yield opened


def stored_alert(repository: InMemoryMonitoringRepository, url: str | None = URL) -> int:
    rule = AlertRule("fraud-api", "drift", "drift_share", 0.1, webhook_url=url)
    alert = Alert("fraud-api", "drift", 3, "drift_share", 0.4, ">", 0.1, 1, T0, {"x": 1.0})
    [event] = record_alerts(repository, [alert], [rule])
    return event.id


def test_retries_with_backoff_and_sends_the_same_signed_bytes(
    repository: InMemoryMonitoringRepository,
) -> None:
    receiver = Receiver(503, 503, 200)
    event_id = stored_alert(repository)
    [delivery] = deliveries(repository, event_id=event_id)
    rng, policy = np.random.default_rng(0), RetryPolicy(base_delay_s=10.0)
    for http in client(receiver):
        first = deliver_due(repository, http, T0, rng, policy, secret=b"s3cret")
        assert first.retrying == [delivery.id]
        [row] = deliveries(repository, event_id=event_id)
        assert (row.attempts, row.state, row.last_error) == (1, "pending", "HTTP 503: not now")
        assert T0 + 5.0 <= row.next_attempt_at <= T0 + 10.0
        assert deliver_due(repository, http, row.next_attempt_at - 1, rng, policy).retrying == []
        deliver_due(repository, http, row.next_attempt_at, rng, policy, secret=b"s3cret")
        [row] = deliveries(repository, event_id=event_id)
        third = deliver_due(repository, http, row.next_attempt_at, rng, policy, secret=b"s3cret")
        assert third.delivered == [delivery.id]
    [done] = deliveries(repository, event_id=event_id)
    assert (done.attempts, done.state, done.last_error) == (3, "delivered", None)

    bodies = {request.content for request in receiver.requests}
    assert len(bodies) == 1
    sent = orjson.loads(bodies.pop())
    assert (sent["id"], sent["kind"], sent["subject"], sent["actor"]) == (
        event_id, "alert", "fraud-api", "monitor",
    )  # fmt: skip
    assert sent["payload"]["figures"] == {"x": 1.0}
    for attempt, request in enumerate(receiver.requests, start=1):
        assert request.headers["idempotency-key"] == f"modelyard-event-{event_id}"
        assert request.headers["x-modelyard-delivery"] == str(delivery.id)
        assert request.headers["x-modelyard-attempt"] == str(attempt)
        expected = hmac.new(b"s3cret", request.content, hashlib.sha256).hexdigest()
        assert request.headers["x-modelyard-signature"] == f"sha256={expected}"


@pytest.mark.parametrize(
    ("answers", "outcome", "error"),
    [
        ((400,), "failed", "HTTP 400: not now"),  # the receiver refused these very bytes
        ((429, 200), "retrying", "HTTP 429: not now"),
        ((httpx.ConnectError("refused"),), "retrying", "ConnectError: refused"),
    ],
)
def test_what_is_worth_a_retry(
    repository: InMemoryMonitoringRepository,
    answers: tuple[int | Exception, ...],
    outcome: str,
    error: str,
) -> None:
    event_id = stored_alert(repository)
    for http in client(Receiver(*answers)):
        result = deliver_due(repository, http, T0, np.random.default_rng(1))
    assert len(getattr(result, outcome)) == 1
    [row] = deliveries(repository, event_id=event_id)
    assert (row.attempts, row.last_error) == (1, error)


def test_gives_up_after_max_attempts(repository: InMemoryMonitoringRepository) -> None:
    receiver = Receiver(500)
    event_id = stored_alert(repository, url=None)
    [delivery_id] = enqueue_event(repository, event_id, [URL], now=T0)
    policy, rng, now = RetryPolicy(max_attempts=3, base_delay_s=1.0), np.random.default_rng(1), T0
    outcomes = []
    for http in client(receiver):
        for _ in range(3):
            result = deliver_due(repository, http, now, rng, policy)
            outcomes.append((result.retrying, result.failed))
            now = deliveries(repository, event_id=event_id)[0].next_attempt_at
    assert outcomes == [([delivery_id], []), ([delivery_id], []), ([], [delivery_id])]
    [row] = deliveries(repository, state="failed")
    assert (row.attempts, row.last_error) == (3, "HTTP 500: not now")
    assert len(receiver.requests) == 3
