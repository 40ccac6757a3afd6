"""The ``search_runs`` filter language, parsed into plain conditions.

``metrics.auc > 0.9 and params.model = 'rf'`` becomes a tuple of ``Condition``;
a ``RunQuery`` adds the experiment, status, limit and where a page starts (``after``:
the start time and id of the last run of the page before, an index range rather than
an offset, so page 1,000 costs what page 1 does; ``page_token`` is its text form).
Parsing is pure and shared: the SQL adapter compiles a query to SQL, the in-memory
fake evaluates it with ``RunQuery.matches``, and both compare with the same ``COMPARISONS``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from modelyard.errors import ValidationError
from modelyard.tracking.records import RunInfo

Kind = Literal["metrics", "params", "tags"]

# Plain operators, so they build a comparison of Python values and of SQL columns alike.
COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

_CONDITION = re.compile(r"^\s*(metrics|params|tags)\.([\w.\-/]+)\s*(=|!=|<=|>=|<|>)\s*(.+?)\s*$")
_AND = re.compile(r"\s+and\s+", flags=re.IGNORECASE)


@dataclass(frozen=True)
class Condition:
    """One comparison: a metric's latest value with a number, a param or tag with a string.

    A run that never logged ``key`` matches no condition on it, ``!=`` included.
    """

    kind: Kind
    key: str
    op: str
    value: float | str

    def holds(self, run: RunInfo) -> bool:
        logged: dict[str, Any] = getattr(run, self.kind)
        return self.key in logged and bool(COMPARISONS[self.op](logged[self.key], self.value))


RunKey = tuple[float, str]  # (start time, id): the order runs are listed in, newest first


@dataclass(frozen=True)
class RunQuery:
    """Which runs ``search_runs`` returns: all conditions hold, newest first (by start time,
    then id), at most ``limit``, only those after ``after`` in that order."""

    conditions: tuple[Condition, ...] = ()
    experiment: str | None = None
    status: str | None = None
    limit: int = 1000
    after: RunKey | None = None

    def matches(self, run: RunInfo) -> bool:
        return (
            (self.experiment is None or run.experiment == self.experiment)
            and (self.status is None or run.status == self.status)
            and (self.after is None or run_key(run) < self.after)
            and all(condition.holds(run) for condition in self.conditions)
        )


def run_key(run: RunInfo) -> RunKey:
    """Where a run sorts: larger is newer."""
    return (run.start_time, run.id)


def page_token(key: RunKey) -> str:
    """The text of a page's end, for ``--page-token`` (the float in hex: exact)."""
    return f"{key[0].hex()}_{key[1]}"


def parse_page_token(token: str) -> RunKey:
    """The ``RunKey`` of a ``page_token``; ``ValidationError`` naming it if it is not one."""
    start, _, run_id = token.partition("_")
    try:
        key = (float.fromhex(start), run_id)
    except ValueError:
        key = None
    if key is None or not run_id.isalnum():
        raise ValidationError(
            f"page_token {token!r} is not one this command printed: pass the "
            "next_page_token of the previous page as it was"
        )
    return key


def parse_filter(text: str) -> tuple[Condition, ...]:
    """The conditions of ``text`` (joined with ``and``); empty text means no condition."""
    if not text.strip():
        return ()
    return tuple(_condition(part) for part in _AND.split(text.strip()))


def _condition(part: str) -> Condition:
    match = _CONDITION.match(part)
    if not match:
        raise ValidationError(
            f'cannot read filter condition {part!r}: write e.g. "metrics.auc > 0.9" or '
            "\"params.model = 'rf'\""
        )
    kind, key, op, raw = match.groups()
    text = raw.strip("'\"")
    if kind == "metrics":
        try:
            return Condition("metrics", key, op, float(text))
        except ValueError:
            raise ValidationError(
                f"metric condition {part!r} needs a number, got {raw!r}"
            ) from None
    if op not in ("=", "!="):
        raise ValidationError(f"{kind} can only be compared with = or !=, got {op!r} in {part!r}")
    return Condition("params" if kind == "params" else "tags", key, op, text)
