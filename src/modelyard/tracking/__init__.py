"""Experiment tracking: runs with params, metrics, tags, artifacts, seeds and data fingerprints.

Runs live behind ``RunRepository``: ``tracking.sql.SqlRunRepository`` on the
metadata database, ``InMemoryRunRepository`` in memory for tests.
"""

from modelyard.tracking.fingerprint import DataFingerprint, fingerprint
from modelyard.tracking.memory import InMemoryRunRepository
from modelyard.tracking.records import MetricPoint, RunInfo, RunPage
from modelyard.tracking.repository import RunRepository
from modelyard.tracking.run import Run
from modelyard.tracking.search import Condition, RunQuery, parse_filter
from modelyard.tracking.seeding import seed_everything
from modelyard.tracking.tracker import Tracker

__all__ = [
    "Condition",
    "DataFingerprint",
    "InMemoryRunRepository",
    "MetricPoint",
    "Run",
    "RunInfo",
    "RunPage",
    "RunQuery",
    "RunRepository",
    "Tracker",
    "fingerprint",
    "parse_filter",
    "seed_everything",
]
