"""The monitoring pass on the in-memory repository: drift checks, alerts, restarts, reports."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import NotFoundError, VersionNotFoundError
from modelyard.monitoring.alerts import AlertBus, AlertEvent, save_rule
from modelyard.monitoring.drift_job import (
    Reference,
    check_drift,
    deployment_model,
    drift_history,
    monitor_cycle,
)
from modelyard.monitoring.memory import InMemoryMonitoringRepository
from modelyard.monitoring.report import gather_report
from modelyard.monitoring.rules import AlertRule
from modelyard.monitoring.window import Window

HOUR = 3600.0
T0 = 1_790_000_000.0


class NoReferences:
    """A registry that has no version with a reference sample."""

    def get_version(self, model: str, version: int) -> None:
        raise VersionNotFoundError(f"no version {version} of {model!r}")


def traffic(start: float, *, rows: int = 200, shift: float = 0.0, slow: bool = False) -> Window:
    rng = np.random.default_rng(int(start) % 1000)
    return Window(
        deployment="fraud-api",
        start=start,
        end=start + HOUR,
        request_ids=np.array([f"{start}-{i}" for i in range(rows)], dtype=object),
        ts=np.sort(rng.uniform(start, start + HOUR, rows)),
        version=np.ones(rows, dtype=np.int64),
        arm=np.full(rows, "champion", dtype=object),
        status=np.full(rows, 200),
        latency_ms=rng.gamma(2.0, 80.0 if slow else 5.0, rows),
        row_request=np.arange(rows),
        inputs={"a": rng.normal(size=rows) + shift, "b": rng.normal(size=rows)},
        outputs={"score": rng.uniform(size=rows)},
    )


def reference() -> Reference:
    rng = np.random.default_rng(7)
    features = {"a": rng.normal(size=400), "b": rng.normal(size=400)}
    return Reference("fraud", 1, features, {"score": rng.uniform(size=400)}, {"accuracy": 0.9})


def test_drift_checks_go_to_the_series_and_small_windows_are_skipped() -> None:
    repository = InMemoryMonitoringRepository()
    for hour, shift in enumerate([0.0, 3.0]):
        window = traffic(T0 + hour * HOUR, shift=shift)
        assert check_drift(repository, reference(), window, now=window.end) is not None
    assert check_drift(repository, reference(), traffic(T0, rows=10), now=T0) is None
    history = drift_history(repository, "fraud-api")
    assert [r.dataset_drift for r in history] == [False, True]
    assert "a" in history[1].report.drifted_features
    assert [r.window_end for r in drift_history(repository, "fraud-api", limit=1)] == [
        T0 + 2 * HOUR
    ]


def test_cycles_alert_once_per_streak_and_a_restart_keeps_the_cooldown() -> None:
    repository = InMemoryMonitoringRepository()
    rule = AlertRule("fraud-api", "slow", "p99_ms", 150.0, for_windows=2, cooldown_s=6 * HOUR,
                     webhook_url="http://127.0.0.1:9/hooks")  # fmt: skip
    save_rule(repository, rule, now=T0)
    windows = {hour: traffic(T0 + hour * HOUR, slow=hour >= 1) for hour in range(4)}
    seen: list[AlertEvent] = []
    bus = AlertBus()
    bus.subscribe(seen.append)
    state, fired = None, []
    for hour in range(4):
        start = T0 + hour * HOUR
        result = monitor_cycle(
            repository, NoReferences(), "fraud-api", start, start + HOUR,  # type: ignore[arg-type]
            window_reader=lambda _d, s, _e: windows[int((s - T0) // HOUR)], now=start + HOUR,
            model_of={"fraud-api": "fraud"}.get, state=state, bus=bus,
        )  # fmt: skip
        state = result.state
        fired.append([e.alert.rule for e in result.alerts])
        assert result.drift == {}  # no reference: measured, not checked
        assert result.figures[0].values["requests"] == 200
    assert fired == [[], [], ["slow"], []]
    assert [e.id for e in seen] == [e.id for e in repository.alert_events("fraud-api", T0)]
    [delivery] = repository.deliveries(state="pending")
    assert (delivery.event_id, delivery.url) == (seen[0].id, "http://127.0.0.1:9/hooks")

    start = T0 + 3 * HOUR
    restarted = monitor_cycle(
        repository, NoReferences(), "fraud-api", start, start + HOUR,  # type: ignore[arg-type]
        window_reader=lambda *_: windows[3], now=start + HOUR, model="fraud",
    )  # fmt: skip
    assert restarted.alerts == []
    assert restarted.state.get(("fraud-api", "slow", 1)).last_fired == T0 + 3 * HOUR


def test_without_a_model_or_a_source_of_one_the_cycle_says_so() -> None:
    with pytest.raises(NotFoundError, match="no deployment named 'fraud-api', and no traffic"):
        monitor_cycle(
            InMemoryMonitoringRepository(), NoReferences(), "fraud-api", T0, T0 + HOUR,  # type: ignore[arg-type]
            window_reader=lambda *_: traffic(T0), now=T0 + HOUR, model_of=lambda _: None,
        )  # fmt: skip
    assert deployment_model({"fraud-api": "fraud"}.get, "fraud-api") == "fraud"


def test_a_report_reads_the_stored_series_and_alerts() -> None:
    repository = InMemoryMonitoringRepository()
    window = traffic(T0, shift=3.0)
    stored = check_drift(repository, reference(), window, now=window.end)
    assert stored is not None
    save_rule(repository, AlertRule("fraud-api", "busy", "requests", 100.0), now=T0)
    monitor_cycle(
        repository, NoReferences(), "fraud-api", T0, T0 + HOUR,  # type: ignore[arg-type]
        window_reader=lambda *_: window, now=T0 + HOUR, model="fraud",
    )  # fmt: skip
    data = gather_report(
        repository, NoReferences(), "fraud-api", T0, T0 + HOUR,  # type: ignore[arg-type]
        window_reader=lambda *_: window, now=T0 + HOUR, model_of={"fraud-api": "fraud"}.get,
    )  # fmt: skip
    assert data.model == "fraud"
    assert [r.id for r in data.drift_history] == [stored.id]
    assert [a["payload"]["rule"] for a in data.alerts] == ["busy"]
    assert data.drift == {}
