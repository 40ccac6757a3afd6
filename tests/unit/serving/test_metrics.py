"""Per-worker metrics, merged across workers and rendered for Prometheus."""

from __future__ import annotations

from pathlib import Path

from modelyard.serving.telemetry.metrics import MetricsExchange, ServingMetrics, merge, render


def worker(requests: int, status: int = 200) -> ServingMetrics:
    metrics = ServingMetrics()
    for _ in range(requests):
        metrics.request("fraud", "3", status, 0.002, None if status < 400 else "invalid_input")
    metrics.batch("fraud", "3", 5)
    metrics.model_load("fraud", "3", "loaded")
    return metrics


def gauges(queue: float) -> dict[str, list[tuple[tuple[str, ...], float]]]:
    return {"modelyard_queue_rows": [(("fraud", "3"), queue)], "modelyard_workers": [((), 1.0)]}


def test_counters_and_histograms_sum_over_workers() -> None:
    merged = merge(
        [
            worker(3).snapshot(gauges(2), 100.0),
            worker(4).snapshot(gauges(5), 100.0),
            worker(2, 422).snapshot(gauges(0), 100.0),
        ],
        now=101.0,
    )
    text = render(merged).decode()
    assert 'modelyard_requests_total{model="fraud",status="200",version="3"} 7.0' in text
    assert 'modelyard_requests_total{model="fraud",status="422",version="3"} 2.0' in text
    assert (
        'modelyard_request_errors_total{code="invalid_input",model="fraud",version="3"} 2.0' in text
    )
    bucket = 'le="0.0025",model="fraud",status="200",version="3"'
    assert f"modelyard_request_duration_seconds_bucket{{{bucket}}} 7.0" in text
    assert 'modelyard_batch_rows_count{model="fraud",version="3"} 3.0' in text
    assert 'modelyard_model_loads_total{model="fraud",outcome="loaded",version="3"} 3.0' in text
    assert 'modelyard_queue_rows{model="fraud",version="3"} 7.0' in text
    assert "modelyard_workers 3.0" in text


def test_a_stale_workers_gauges_are_dropped_but_its_counts_kept() -> None:
    merged = merge(
        [worker(3).snapshot(gauges(2), 100.0), worker(1).snapshot(gauges(9), 10.0)], now=101.0
    )
    text = render(merged).decode()
    assert 'modelyard_requests_total{model="fraud",status="200",version="3"} 4.0' in text
    assert 'modelyard_queue_rows{model="fraud",version="3"} 2.0' in text


def test_exchange_shares_snapshots_through_files(tmp_path: Path) -> None:
    mine = MetricsExchange(tmp_path)
    other = tmp_path / "worker-999999.json"
    other.write_bytes(
        b'{"pid": 999999, "at": 0, "requests": [], "errors": [], "batches": [], '
        b'"loads": [], "gauges": {}}'
    )
    (tmp_path / "worker-1.json").write_bytes(b"{torn")
    own = worker(1).snapshot(gauges(0), 1.0)
    mine.publish(own)
    gathered = mine.gather(own)
    assert len(gathered) == 2  # own + the other worker; the torn file is skipped
    assert any(s["pid"] == 999999 for s in gathered)


def test_single_process_exchange_keeps_nothing_on_disk() -> None:
    exchange = MetricsExchange(None)
    own = worker(1).snapshot(gauges(0), 1.0)
    exchange.publish(own)
    assert exchange.gather(own) == [own]
