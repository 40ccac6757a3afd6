"""Searching the server's JSON-lines logs: the logic behind ``modelyard logs``.

Pure functions over lines and a ``LogQuery``; the current time is passed in so
relative times (``--since 15m``) are testable without a clock.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from modelyard.errors import ValidationError

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_STATUS = re.compile(r"^([1-5])xx$|^(\d{3})$|^(>=|<=|>|<)(\d{3})$")


@dataclass(frozen=True)
class LogQuery:
    """What to look for; every given condition must hold."""

    request_id: str | None = None
    status: str | None = None
    model: str | None = None
    since: float | None = None
    until: float | None = None
    code: str | None = None
    event: str | None = None
    text: str | None = None


def parse_time(text: str, now: float) -> float:
    """Epoch seconds from ``1700000000``, ISO 8601 (``2026-11-30T07:00:00``, UTC unless
    an offset is given) or a time ago (``90s``, ``15m``, ``2h``, ``1d``)."""
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative:
        return now - float(relative.group(1)) * _UNIT_S[relative.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"cannot read time {text!r}: use ISO 8601 (2026-11-30T07:00:00), epoch seconds "
            "or a time ago like 15m, 2h, 1d"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def status_matcher(text: str) -> Callable[[int], bool]:
    """A test for statuses: ``503``, ``5xx``, ``>=400``, ``<300``, or a comma list of those."""
    tests = [_one_status(part.strip()) for part in text.split(",") if part.strip()]
    if not tests:
        raise ValidationError("--status needs a value like 503, 5xx or >=400")
    return lambda status: any(test(status) for test in tests)


def _one_status(text: str) -> Callable[[int], bool]:
    match = _STATUS.match(text)
    if match is None:
        raise ValidationError(f"cannot read status {text!r}: use 503, 5xx, >=400 or <300")
    klass, exact, op, bound = match.groups()
    if klass:
        hundred = int(klass)
        return lambda s: s // 100 == hundred
    if exact:
        value = int(exact)
        return lambda s: s == value
    limit = int(bound)
    return {
        ">=": lambda s: s >= limit,
        "<=": lambda s: s <= limit,
        ">": lambda s: s > limit,
        "<": lambda s: s < limit,
    }[op]


def matcher(query: LogQuery) -> Callable[[dict[str, Any]], bool]:
    """A predicate on parsed log records for ``query``."""
    status_ok = status_matcher(query.status) if query.status else None
    model_name, _, model_version = (query.model or "").partition("/")

    def matches(record: dict[str, Any]) -> bool:
        if query.request_id is not None and query.request_id not in (
            record.get("request_id"),
            record.get("id"),
        ):
            return False
        if status_ok is not None:
            status = record.get("status")
            if not isinstance(status, int) or not status_ok(status):
                return False
        if model_name and record.get("model") != model_name:
            return False
        if model_version and str(record.get("version")) != model_version:
            return False
        ts = record.get("ts")
        if query.since is not None and (not isinstance(ts, int | float) or ts < query.since):
            return False
        if query.until is not None and (not isinstance(ts, int | float) or ts > query.until):
            return False
        if query.code is not None and record.get("code") != query.code:
            return False
        if query.event is not None and record.get("event") != query.event:
            return False
        return not (
            query.text is not None
            and query.text.lower() not in str(record.get("error", "")).lower()
        )

    return matches


def read_records(lines: Iterable[bytes | str]) -> Iterator[dict[str, Any]]:
    """Parsed records, skipping lines that are not JSON objects (a torn last line, noise)."""
    for line in lines:
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield record


def search(
    lines: Iterable[bytes | str], query: LogQuery, limit: int | None
) -> list[dict[str, Any]]:
    """The last ``limit`` matching records (all if ``None``), oldest first."""
    matches = matcher(query)
    found: deque[dict[str, Any]] = deque(maxlen=limit)
    for record in read_records(lines):
        if matches(record):
            found.append(record)
    return list(found)


def format_record(record: dict[str, Any]) -> str:
    """One readable line: time, status, model/version, latency, request id, path, error."""
    parts = [str(record.get("time", record.get("ts", "?")))]
    if record.get("event") == "request":
        model = record.get("model") or "-"
        version = record.get("version")
        parts += [
            str(record.get("status", "?")),
            f"{model}/{version}" if version else model,
            f"{record.get('duration_ms', 0):.2f}ms",
            str(record.get("request_id", "-")),
            f"{record.get('method', '')} {record.get('path', '')}".strip(),
        ]
    else:
        parts += [str(record.get("level", "")).upper(), str(record.get("event", ""))]
        details = {
            k: v
            for k, v in record.items()
            if k not in ("ts", "time", "level", "event", "worker", "error")
        }
        if details:
            parts.append(" ".join(f"{k}={v}" for k, v in details.items()))
    if record.get("error"):
        parts.append(f"[{record.get('code', 'error')}] {record['error']}")
    return "  ".join(parts)


def summarize(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests grouped by model, version, status and error code, with counts and the
    median and 99th-percentile latency: where a problem is, at a glance."""
    groups: dict[tuple[str, str, int, str], list[float]] = {}
    counts: Counter[tuple[str, str, int, str]] = Counter()
    for record in records:
        if record.get("event") != "request":
            continue
        key = (
            str(record.get("model") or "-"),
            str(record.get("version") or "-"),
            int(record.get("status") or 0),
            str(record.get("code") or ""),
        )
        counts[key] += 1
        groups.setdefault(key, []).append(float(record.get("duration_ms") or 0.0))
    rows = []
    for key, count in counts.most_common():
        latencies = sorted(groups[key])
        rows.append(
            {
                "model": key[0],
                "version": key[1],
                "status": key[2],
                "code": key[3],
                "count": count,
                "p50_ms": latencies[len(latencies) // 2],
                "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            }
        )
    return rows
