"""Durable webhook deliveries: one ``webhook_deliveries`` row per event and URL, retried.

``enqueue`` writes the rows inside the caller's transaction, next to the event
itself, so an event is never stored without its deliveries. ``deliver_due``
is one step of the delivery loop: it claims the due rows (pushing their next
attempt a lease ahead, so a second deliverer running at the same time skips
them), posts each event as JSON with httpx, and records the outcome. A 2xx
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
from sqlalchemy import Connection, insert, select, update

from modelyard.errors import ValidationError
from modelyard.store.database import Database
from modelyard.store.schema import events, webhook_deliveries

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


@dataclass(frozen=True)
class Delivery:
    id: int
    event_id: int
    url: str
    attempts: int
    state: str
    next_attempt_at: float
    last_error: str | None


@dataclass
class DeliveryOutcome:
    """Ids of the deliveries that one ``deliver_due`` step delivered, rescheduled or gave up."""

    delivered: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def enqueue(conn: Connection, event_id: int, urls: Sequence[str], now: float) -> list[int]:
    """Add a pending delivery of event ``event_id`` to each URL, due at ``now``."""
    ids = []
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValidationError(f"webhook URL must start with http:// or https://, got {url!r}")
        ids.append(
            conn.execute(
                insert(webhook_deliveries)
                .values(
                    event_id=event_id, url=url, attempts=0, state="pending", next_attempt_at=now
                )
                .returning(webhook_deliveries.c.id)
            ).scalar_one()
        )
    return [int(i) for i in ids]


def enqueue_event(db: Database, event_id: int, urls: Sequence[str], now: float) -> list[int]:
    """``enqueue`` in a transaction of its own, for an event stored earlier."""
    with db.write() as conn:
        return enqueue(conn, event_id, urls, now)


def deliveries(
    db: Database, *, event_id: int | None = None, state: str | None = None
) -> list[Delivery]:
    """Stored deliveries, oldest first."""
    query = select(webhook_deliveries).order_by(webhook_deliveries.c.id)
    if event_id is not None:
        query = query.where(webhook_deliveries.c.event_id == event_id)
    if state is not None:
        query = query.where(webhook_deliveries.c.state == state)
    with db.read() as conn:
        return [Delivery(**row) for row in conn.execute(query).mappings()]


def _claim(
    db: Database, now: float, limit: int, lease_s: float
) -> list[tuple[int, int, str, bytes]]:
    due = (
        select(
            webhook_deliveries.c.id,
            webhook_deliveries.c.attempts,
            webhook_deliveries.c.url,
            events.c.id.label("event_id"),
            events.c.at,
            events.c.kind,
            events.c.subject,
            events.c.reason,
            events.c.payload,
            events.c.actor,
        )
        .join(events, events.c.id == webhook_deliveries.c.event_id)
        .where(webhook_deliveries.c.state == "pending", webhook_deliveries.c.next_attempt_at <= now)
        .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
        .limit(limit)
        .with_for_update(of=webhook_deliveries, skip_locked=True)
    )
    with db.write() as conn:
        rows = conn.execute(due).mappings().all()
        if rows:
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id.in_([r["id"] for r in rows]))
                .values(next_attempt_at=now + lease_s)
            )
    claimed = []
    for row in rows:
        body = {
            "id": row["event_id"],
            "at": row["at"],
            "kind": row["kind"],
            "subject": row["subject"],
            "reason": row["reason"],
            "payload": orjson.loads(row["payload"]),
            "actor": row["actor"],
        }
        claimed.append((row["id"], row["attempts"], row["url"], orjson.dumps(body)))
    return claimed


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
    db: Database,
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
    for delivery_id, attempts, url, body in _claim(db, now, limit, policy.lease_s):
        attempt = attempts + 1
        event_id = int(orjson.loads(body)["id"])
        delivered, retry, error = _post(
            client, url, body, event_id, delivery_id, attempt, secret, policy.timeout_s
        )
        if delivered:
            values: dict[str, object] = {"state": "delivered", "last_error": None}
            outcome.delivered.append(delivery_id)
        elif retry and attempt < policy.max_attempts:
            values = {"next_attempt_at": now + policy.delay(attempt, rng), "last_error": error}
            outcome.retrying.append(delivery_id)
        else:
            values = {"state": "failed", "last_error": error}
            outcome.failed.append(delivery_id)
        with db.write() as conn:
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id)
                .values(attempts=attempt, **values)
            )
    return outcome
