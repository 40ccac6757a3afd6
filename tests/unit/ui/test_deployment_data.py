from __future__ import annotations

import pytest

from modelyard.serving.telemetry.metrics import ServingMetrics, merge, render
from modelyard.ui.data.deployments import shadow_agreement


def test_shadow_agreement_is_read_from_the_servers_metrics() -> None:
    metrics = ServingMetrics()
    metrics.shadow_agreement("fraud", "2", 40, 38)
    metrics.shadow_agreement("fraud", "2", 10, 10)
    metrics.shadow_agreement("other", "5", 7, 0)
    text = render(merge([metrics.snapshot({}, 100.0)], 100.0))
    found = shadow_agreement(text, "fraud")
    assert found == {"2": {"compared": 50.0, "agreed": 48.0, "share": pytest.approx(0.96)}}
    assert shadow_agreement(text, "nobody") == {}
