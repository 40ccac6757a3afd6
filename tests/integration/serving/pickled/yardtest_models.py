"""Small scikit-learn-style models for the routing tests, registered as trusted pickles.

This directory goes on ``PYTHONPATH`` of the server processes (and on ``sys.path``
of the tests), so the pickles name ``yardtest_models.<class>`` in both.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class Linear:
    """A fixed logistic model over the columns of ``X``: fast and deterministic."""

    def __init__(self, weights: list[float]) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)
        self.classes_ = np.array([0, 1])

    def predict_proba(self, features: Any) -> np.ndarray:
        scores = np.asarray(features, dtype=np.float64) @ self.weights
        positive = 1.0 / (1.0 + np.exp(-scores))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, features: Any) -> np.ndarray:
        return (self.predict_proba(features)[:, 1] >= 0.5).astype(np.int64)


class RaisesAbove(Linear):
    """``Linear``, except that a batch holding a row with feature 0 above ``threshold``
    raises ``ValueError`` (as a model with a bug on some inputs would)."""

    def __init__(self, weights: list[float], threshold: float) -> None:
        super().__init__(weights)
        self.threshold = threshold

    def predict_proba(self, features: Any) -> np.ndarray:
        values = np.asarray(features, dtype=np.float64)
        if (values[:, 0] > self.threshold).any():
            raise ValueError(f"feature 0 above {self.threshold:.3f}: this version cannot cope")
        return super().predict_proba(values)


class Sleeps(Linear):
    """``Linear`` that takes ``seconds`` per call (a slow challenger)."""

    def __init__(self, weights: list[float], seconds: float) -> None:
        super().__init__(weights)
        self.seconds = seconds

    def predict_proba(self, features: Any) -> np.ndarray:
        time.sleep(self.seconds)
        return super().predict_proba(features)


class HangsAbove(Linear):
    """``Linear`` that takes ``seconds`` per call, and never returns from a batch holding a
    row with feature 0 above ``threshold`` (a model stuck on some inputs). ``seconds``
    above 2 ms puts it on a thread at warm-up; 0 keeps it on the event loop."""

    def __init__(self, weights: list[float], threshold: float, seconds: float = 0.0) -> None:
        super().__init__(weights)
        self.threshold = threshold
        self.seconds = seconds

    def predict_proba(self, features: Any) -> np.ndarray:
        values = np.asarray(features, dtype=np.float64)
        if (values[:, 0] > self.threshold).any():
            while True:
                time.sleep(3600)
        if self.seconds:
            time.sleep(self.seconds)
        return super().predict_proba(values)


class SleepsAbove(Linear):
    """``Linear``, except that a batch holding a row with feature 0 above ``threshold``
    sleeps ``seconds`` (a version that hangs on some inputs, not on its example)."""

    def __init__(self, weights: list[float], threshold: float, seconds: float) -> None:
        super().__init__(weights)
        self.threshold = threshold
        self.seconds = seconds

    def predict_proba(self, features: Any) -> np.ndarray:
        values = np.asarray(features, dtype=np.float64)
        if (values[:, 0] > self.threshold).any():
            time.sleep(self.seconds)
        return super().predict_proba(values)
