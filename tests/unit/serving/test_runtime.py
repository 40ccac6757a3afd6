"""Warm-up helpers of a served version."""

from __future__ import annotations

from modelyard.serving.hosting.runtime import batch_sizes


def test_batch_sizes_tried_at_warm_up() -> None:
    assert batch_sizes(64) == [1, 2, 4, 8, 16, 32, 64]
    assert batch_sizes(48) == [1, 2, 4, 8, 16, 32, 48]
    assert batch_sizes(1) == [1]
