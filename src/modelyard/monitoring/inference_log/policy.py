"""What the inference log keeps, per deployment: a sampling rate and a time to live.

Pure decisions over plain values (no clock, no database), used by the logger
on the hot path (``sampled``) and by the retention sweep (``retention_cutoffs``).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from modelyard.config.sections import MonitoringSettings
from modelyard.errors import ValidationError

WHEN_FULL = ("reject", "drop")


@dataclass(frozen=True, slots=True)
class LogPolicy:
    """How one deployment's predictions are logged.

    ``sample_rate`` is the share of requests recorded (1.0: all). The choice is
    a hash of the request id, so it is the same in every worker, on retries and
    on replay, and a sampled-in request keeps its feedback joinable.
    ``ttl_s`` is how long records are kept (None: until purged by hand).
    """

    sample_rate: float = 1.0
    ttl_s: float | None = None

    def __post_init__(self) -> None:
        if not (0.0 <= self.sample_rate <= 1.0):
            raise ValidationError(f"sample_rate must be between 0 and 1, got {self.sample_rate!r}")
        if self.ttl_s is not None and not (math.isfinite(self.ttl_s) and self.ttl_s > 0):
            raise ValidationError(f"ttl_s must be a positive number of seconds, got {self.ttl_s!r}")


def default_policy(monitoring: MonitoringSettings) -> LogPolicy:
    """The sampling rate and time to live of the monitoring settings (0 days: forever)."""
    ttl = monitoring.log_ttl_days * 86_400 if monitoring.log_ttl_days > 0 else None
    return LogPolicy(sample_rate=monitoring.log_sample_rate, ttl_s=ttl)


def deployment_policy(
    sample_rate: float | None, ttl_days: float | None, default: LogPolicy
) -> LogPolicy:
    """A deployment's own sampling rate and time to live where it sets them (0 days:
    forever), else ``default``'s."""
    rate = default.sample_rate if sample_rate is None else sample_rate
    if ttl_days is None:
        return LogPolicy(sample_rate=rate, ttl_s=default.ttl_s)
    return LogPolicy(sample_rate=rate, ttl_s=ttl_days * 86_400 if ttl_days > 0 else None)


def sampled(request_id: str, rate: float) -> bool:
    """Whether a request is kept at ``rate``: a stable hash of its id below the rate.

    crc32 rather than ``hash()``: Python salts string hashes per process, and
    every worker must make the same choice for the same request.
    """
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return zlib.crc32(request_id.encode()) < rate * 4294967296.0


def retention_cutoffs(
    deployments: Iterable[str],
    policies: Mapping[str, LogPolicy],
    default: LogPolicy,
    now: float,
) -> dict[str, float]:
    """Per deployment with a TTL, the time before which its records are to be deleted."""
    cutoffs = {}
    for name in deployments:
        ttl = policies.get(name, default).ttl_s
        if ttl is not None:
            cutoffs[name] = now - ttl
    return cutoffs
