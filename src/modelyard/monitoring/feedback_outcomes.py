"""What each posted label matched: joined, pending, refused or deferred; and when a pending
label expires. Pure decisions: the caller passes what the request index knows and the time.

* ``joined``: its request id is in the inference log (an index lookup, ``known_requests``);
* ``pending``: not yet. Labels may arrive before their prediction is stored: a serving
  worker writes its answers to a write-ahead log that the supervisor moves into the
  database about a second later (``monitoring.log_flush_interval_s``), or later still
  after a database outage. A pending label is stored like any other and checked again
  once ``wait_s`` has passed (``monitoring.feedback_pending_s``): then it counts as
  ``joined_late`` if its prediction arrived, else ``expired``. It stays stored either
  way, so a prediction that reaches the log even later still joins.
* ``refused`` (not stored, with the reason): the request is logged but the label names a
  row it never had, or every record of it is an error answer, with no prediction to label;
* ``deferred``: an entity label (``entity_key`` + ``event_time``) is matched when
  monitoring reads a window, by the deployment's entity field; the log has no index of
  entities to check it against when it is posted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from modelyard.monitoring.inference_log.repository import KnownRequest

Outcome = Literal["joined", "pending", "refused", "deferred"]
# Every outcome /metrics counts: the four a post reports, then a pending label's end.
OUTCOMES = ("joined", "pending", "refused", "deferred", "joined_late", "expired")
DEFAULT_WAIT_S = 60.0
DEFAULT_CAPACITY = 100_000


@dataclass(frozen=True, slots=True)
class LabelOutcome:
    """What one posted label matched. ``reason`` says why it was refused, or why it waits;
    ``expires_at`` (UNIX seconds) is when a pending label stops being waited for."""

    outcome: Outcome
    request_id: str | None = None
    row: int = 0
    entity_key: str | None = None
    reason: str | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class LabelTarget:
    """A label's target, as ``judge`` reads it (``FeedbackItem`` has these fields)."""

    request_id: str | None
    row: int = 0
    entity_key: str | None = None


def judge(
    targets: Sequence[LabelTarget],
    known: Mapping[str, KnownRequest],
    now: float,
    wait_s: float,
) -> list[LabelOutcome]:
    """Each target's outcome, given the logged requests among their ids (``known``)."""
    outcomes = []
    for target in targets:
        request_id = target.request_id
        if request_id is None:
            outcomes.append(
                LabelOutcome(
                    "deferred",
                    entity_key=target.entity_key,
                    reason="entity labels are matched when monitoring reads a window",
                )
            )
            continue
        found = known.get(request_id)
        if found is None:
            outcomes.append(
                LabelOutcome(
                    "pending",
                    request_id,
                    target.row,
                    reason="no prediction with this request id in the inference log yet",
                    expires_at=now + wait_s,
                )
            )
        elif found.status >= 400:
            outcomes.append(
                LabelOutcome(
                    "refused",
                    request_id,
                    target.row,
                    reason=f"request {request_id!r} was answered with status {found.status}: "
                    "it has no prediction to label",
                )
            )
        elif found.rows and target.row >= found.rows:
            outcomes.append(
                LabelOutcome(
                    "refused",
                    request_id,
                    target.row,
                    reason=f"row {target.row} is out of range: request {request_id!r} has "
                    f"{found.rows} row(s), numbered from 0",
                )
            )
        else:
            outcomes.append(LabelOutcome("joined", request_id, target.row))
    return outcomes


class PendingLabels:
    """The request ids of pending labels, each with the time it is checked again and how
    many labels wait for it (rows of one request share one id).

    Bounded: past ``capacity`` ids, the one due soonest is let go early (``add`` returns
    it, to be checked at once), so memory stays flat whatever clients post.
    """

    def __init__(self, wait_s: float = DEFAULT_WAIT_S, capacity: int = DEFAULT_CAPACITY) -> None:
        if wait_s < 0 or capacity < 1:
            raise ValueError(f"wait_s must be >= 0 and capacity >= 1, got {wait_s}, {capacity}")
        self.wait_s = wait_s
        self.capacity = capacity
        # In the order they fall due: every wait is the same length, so that is the order
        # they were added in.
        self._due: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._due)

    def add(self, request_ids: Iterable[str], now: float) -> list[Waited]:
        """Wait for ``request_ids`` (one per pending label) until ``now + wait_s``; returns
        those let go early to stay within ``capacity``. An id already waited for keeps its
        first time: the wait runs from when its first label was posted."""
        for request_id in request_ids:
            at, count = self._due.get(request_id, (now + self.wait_s, 0))
            self._due[request_id] = (at, count + 1)
        early = []
        while len(self._due) > self.capacity:
            request_id, (_, count) = self._due.popitem(last=False)
            early.append(Waited(request_id, count))
        return early

    def due(self, now: float) -> list[Waited]:
        """The ids whose wait has ended by ``now``, no longer waited for."""
        ended = []
        while self._due:
            request_id, (at, count) = next(iter(self._due.items()))
            if at > now:
                break
            self._due.popitem(last=False)
            ended.append(Waited(request_id, count))
        return ended


class Waited(NamedTuple):
    """A request id whose wait ended, and how many pending labels waited for it."""

    request_id: str
    labels: int


def settle(ended: Sequence[Waited], known: Mapping[str, KnownRequest]) -> tuple[int, int]:
    """``(joined_late, expired)`` labels: of the pending ones whose wait ended, those whose
    prediction is now in the log and those still without one."""
    joined = sum(w.labels for w in ended if w.request_id in known)
    return joined, sum(w.labels for w in ended) - joined
