"""Experiment tracking: runs with params, metrics, tags, artifacts, seeds and data fingerprints."""

from modelyard.tracking.fingerprint import DataFingerprint, fingerprint
from modelyard.tracking.run import Run
from modelyard.tracking.seeding import seed_everything
from modelyard.tracking.tracker import RunInfo, Tracker

__all__ = ["DataFingerprint", "Run", "RunInfo", "Tracker", "fingerprint", "seed_everything"]
