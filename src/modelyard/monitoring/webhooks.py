"""Durable webhook deliveries: one ``webhook_deliveries`` row per event and URL, retried.

The rows live behind a ``WebhookDeliveries`` port: an alert's deliveries are
stored in the transaction of its event (``AlertRepository.record_alerts``), so an
event is never stored without them. ``deliver_due`` is one step of the delivery
loop: it claims the due rows (pushing their next attempt a lease ahead, so a
second deliverer running at the same time skips them), posts each event as JSON
with httpx (here, outside the port), and records the outcome. A 2xx
marks the delivery done; a network error, a timeout, a 5xx, 408, 425 or 429 is
retried with exponential backoff and jitter (the ``rng`` is passed in) until
``max_attempts``; any other status is final, because the receiver rejected the
very bytes a retry would send again.

Receivers deduplicate with the ``Idempotency-Key`` header (``modelyard-event-<id>``,
the same on every attempt). With a ``secret``, ``X-Modelyard-Signature`` carries
``sha256=<hex HMAC of the body>``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np
import orjson

from modelyard.errors import ValidationError
from modelyard.monitoring.repository import Delivery, StoredEvent, WebhookDeliveries

_RETRY_STATUSES = frozenset({408, 425, 429})
_ERROR_CHARS = 500


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry.

    The wait after the n-th failed attempt is ``base_delay_s * 2**(n-1)``
    capped at ``max_delay_s``, of which a random half is dropped ("equal
    jitter"), so receivers that failed together are not retried together.
    """

    max_attempts: int = 8
    base_delay_s: float = 10.0
    max_delay_s: float = 3600.0
    lease_s: float = 60.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValidationError(f"max_attempts must be >= 1, got {self.max_attempts!r}")
        for name in ("base_delay_s", "max_delay_s", "lease_s", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ValidationError(f"{name} must be > 0, got {getattr(self, name)!r}")

    def delay(self, failed_attempts: int, rng: np.random.Generator) -> float:
        """Seconds to wait after ``failed_attempts`` failures (>= 1)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (failed_attempts - 1))
        return ceiling / 2 + float(rng.uniform(0.0, ceiling / 2))


@dataclass
class DeliveryOutcome:
    """Ids of the deliveries that one ``deliver_due`` step delivered, rescheduled or gave up."""

    delivered: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def check_url(url: str) -> str:
    """``url`` if a webhook can be sent to it, else ValidationError (the stores call this)."""
    if not url.startswith(("http://", "https://")):
        raise ValidationError(f"webhook URL must start with http:// or https://, got {url!r}")
    return url


def enqueue_event(
    repository: WebhookDeliveries, event_id: int, urls: Sequence[str], now: float
) -> list[int]:
    """Deliveries of an event stored earlier, in a transaction of their own (an alert's own
    deliveries are stored with it: ``AlertRepository.record_alerts``)."""
    return repository.enqueue(event_id, urls, now)


def deliveries(
    repository: WebhookDeliveries, *, event_id: int | None = None, state: str | None = None
) -> list[Delivery]:
    """Stored deliveries, oldest first."""
    return repository.deliveries(event_id=event_id, state=state)


def event_body(event: StoredEvent) -> bytes:
    """The JSON a delivery posts: the same bytes on every attempt."""
    return orjson.dumps(
        {
            "id": event.id,
            "at": event.at,
            "kind": event.kind,
            "subject": event.subject,
            "reason": event.reason,
            "payload": event.payload,
            "actor": event.actor,
        }
    )


def _post(
    client: httpx.Client,
    url: str,
    body: bytes,
    event_id: int,
    delivery_id: int,
    attempt: int,
    secret: bytes | None,
    timeout_s: float,
) -> tuple[bool, bool, str | None]:
    """(delivered, worth retrying, error text)."""
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": f"modelyard-event-{event_id}",
        "X-Modelyard-Event": str(event_id),
        "X-Modelyard-Delivery": str(delivery_id),
        "X-Modelyard-Attempt": str(attempt),
    }
    if secret is not None:
        digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
        headers["X-Modelyard-Signature"] = f"sha256={digest}"
    try:
        response = client.post(url, content=body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as error:
        return False, True, f"{type(error).__name__}: {error}"[:_ERROR_CHARS]
    if response.is_success:
        return True, False, None
    status = response.status_code
    error_text = f"HTTP {status}: {response.text}"[:_ERROR_CHARS]
    return False, status >= 500 or status in _RETRY_STATUSES, error_text


def deliver_due(
    repository: WebhookDeliveries,
    client: httpx.Client,
    now: float,
    rng: np.random.Generator,
    policy: RetryPolicy | None = None,
    *,
    limit: int = 100,
    secret: bytes | None = None,
) -> DeliveryOutcome:
    """Attempt every delivery due at ``now`` (up to ``limit``) once, and record the outcome."""
    policy = policy or RetryPolicy()
    outcome = DeliveryOutcome()
    for claimed in repository.claim(now, limit, policy.lease_s):
        attempt = claimed.attempts + 1
        body = event_body(claimed.event)
        delivered, retry, error = _post(
            client, claimed.url, body, claimed.event.id, claimed.id, attempt, secret,
            policy.timeout_s,
        )  # fmt: skip
        if delivered:
            repository.complete(claimed.id, attempt, "delivered", None)
            outcome.delivered.append(claimed.id)
        elif retry and attempt < policy.max_attempts:
            retry_at = now + policy.delay(attempt, rng)
            repository.complete(claimed.id, attempt, "pending", error, retry_at)
            outcome.retrying.append(claimed.id)
        else:
            repository.complete(claimed.id, attempt, "failed", error)
            outcome.failed.append(claimed.id)
    return outcome
