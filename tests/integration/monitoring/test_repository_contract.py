"""One contract for monitoring's repository: the in-memory fake, SQLite and PostgreSQL.

The drift series, alert rules, alert events with their webhook deliveries (one
transaction, all or nothing), and the leases of claimed deliveries behave the
same on every backend; the unit tests that run monitoring on the fake rely on it.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from modelyard.errors import RejectedWriteError, ValidationError
from modelyard.monitoring.drift import DriftReport, detect_drift
from modelyard.monitoring.memory import InMemoryMonitoringRepository
from modelyard.monitoring.repository import MonitoringRepository, StoredEvent
from modelyard.monitoring.rules import Alert, AlertRule
from modelyard.monitoring.sql import SqlMonitoringRepository
from modelyard.store.database import Database

T0 = 1_790_000_000.0
HOOK = "https://hooks.example/alerts"


@pytest.fixture
def repository(contract_db: Database | None) -> MonitoringRepository:
    """The fake, then the SQL adapter on each backend (``contract_db``)."""
    return (
        InMemoryMonitoringRepository()
        if contract_db is None
        else SqlMonitoringRepository(contract_db)
    )


@pytest.fixture(scope="module")
def report() -> DriftReport:
    rng = np.random.default_rng(0)
    reference = {"a": rng.normal(size=300), "b": rng.integers(0, 3, 300).astype(str)}
    live = {"a": rng.normal(size=120) + 1.5, "b": rng.integers(0, 3, 120).astype(str)}
    return detect_drift(reference, live)


def alert(rule: str, at: float, deployment: str = "fraud-api", version: int = 1) -> Alert:
    return Alert(deployment, rule, version, "p99_ms", 180.0, ">", 100.0, 2, at, {"p99_ms": 180.0})


def event_of(repository: MonitoringRepository, at: float = T0) -> int:
    """An alert event without deliveries, for ``enqueue``."""
    [event_id] = repository.record_alerts([alert("slow", at)], {}, "monitor")
    return event_id


# -- drift results -------------------------------------------------------------------------


def test_drift_results_are_a_series_read_back_oldest_first(
    repository: MonitoringRepository, report: DriftReport
) -> None:
    added = [
        repository.add_drift_result(
            "fraud-api", "fraud", version, T0 + hour * 3600, T0 + (hour + 1) * 3600, report,
            T0 + (hour + 1) * 3600 + 5,
        )
        for hour, version in [(2, 1), (0, 1), (1, 2), (3, 1)]
    ]  # fmt: skip
    repository.add_drift_result("other-api", "other", 1, T0, T0 + 3600, report, T0)
    assert len({r.id for r in added}) == 4
    assert added[0].rows == report.n_live
    assert added[0].report == report

    history = repository.drift_results("fraud-api")
    assert [r.window_end for r in history] == [T0 + h * 3600 for h in (1, 2, 3, 4)]
    assert [r.id for r in history] == [added[i].id for i in (1, 2, 0, 3)]
    assert history[0] == added[1]  # the JSON round trip loses nothing
    assert (history[0].model, history[0].version, history[0].computed_at) == (
        "fraud", 1, T0 + 3600 + 5,
    )  # fmt: skip
    assert history[0].dataset_drift == report.dataset_drift
    window = repository.drift_results("fraud-api", T0 + 2 * 3600, T0 + 3 * 3600)
    assert [r.window_end for r in window] == [T0 + 2 * 3600, T0 + 3 * 3600]
    newest = repository.drift_results("fraud-api", limit=2)
    assert [r.window_end for r in newest] == [T0 + 3 * 3600, T0 + 4 * 3600]
    assert [r.version for r in repository.drift_results("fraud-api", version=2)] == [2]
    assert repository.drift_results("fraud-api", since=T0 + 5 * 3600) == []
    assert repository.drift_results("search-api") == []


def test_one_drift_result_is_read_back_by_its_id(
    repository: MonitoringRepository, report: DriftReport
) -> None:
    stored = repository.add_drift_result("fraud-api", "fraud", 2, T0, T0 + 60, report, T0 + 61)
    found = repository.drift_result("fraud-api", stored.id)
    assert found == stored
    assert repository.drift_result("other-api", stored.id) is None
    assert repository.drift_result("fraud-api", stored.id + 1) is None


def test_drift_results_of_the_same_window_end_come_in_the_order_they_were_added(
    repository: MonitoringRepository, report: DriftReport
) -> None:
    first = repository.add_drift_result("fraud-api", "fraud", 1, T0, T0 + 60, report, T0 + 60)
    second = repository.add_drift_result("fraud-api", "fraud", 2, T0, T0 + 60, report, T0 + 61)
    assert [r.id for r in repository.drift_results("fraud-api")] == [first.id, second.id]
    assert [r.id for r in repository.drift_results("fraud-api", limit=1)] == [second.id]


# -- alert rules ---------------------------------------------------------------------------


def test_rules_are_saved_replaced_listed_and_deleted(repository: MonitoringRepository) -> None:
    drift = AlertRule("fraud-api", "drift", "drift_share", 0.2, for_windows=2, cooldown_s=600)
    slow = AlertRule("search-api", "slow", "p99_ms", 300.0, "<=", version=4, enabled=False)
    errors = AlertRule("fraud-api", "errors", "error_rate", 0.05, webhook_url=HOOK)
    for rule in (drift, slow, errors):
        repository.save_rule(rule, T0)
    assert repository.rules() == [drift, errors, slow]
    assert repository.rules("search-api") == [slow]
    assert repository.rules("nobody") == []

    replaced = AlertRule("fraud-api", "drift", "drift_share", 0.3, ">=", webhook_url=HOOK)
    repository.save_rule(replaced, T0 + 1)
    assert repository.rules("fraud-api") == [replaced, errors]
    assert repository.delete_rule("fraud-api", "drift")
    assert not repository.delete_rule("fraud-api", "drift")
    assert not repository.delete_rule("search-api", "drift")
    assert repository.rules() == [errors, slow]


# -- alert events and their deliveries -----------------------------------------------------


def test_each_alert_is_an_event_with_a_delivery_where_its_rule_has_a_hook(
    repository: MonitoringRepository,
) -> None:
    alerts = [alert("drift", T0 + 5), alert("slow", T0), alert("drift", T0 + 9, "search-api")]
    hooks = {("fraud-api", "drift"): HOOK, ("search-api", "slow"): "http://127.0.0.1:9/x"}
    ids = repository.record_alerts(alerts, hooks, "monitor")
    assert len(set(ids)) == 3

    found = repository.alert_events("fraud-api", since=T0)
    assert found == [  # by time, not by insertion
        StoredEvent(ids[1], T0, "alert", "fraud-api", alerts[1].reason, alerts[1].payload(),
                    "monitor"),
        StoredEvent(ids[0], T0 + 5, "alert", "fraud-api", alerts[0].reason, alerts[0].payload(),
                    "monitor"),
    ]  # fmt: skip
    assert [e.id for e in repository.alert_events("fraud-api", since=T0 + 1)] == [ids[0]]
    assert [e.subject for e in repository.alert_events("search-api", since=0.0)] == ["search-api"]

    [delivery] = repository.deliveries()
    assert (delivery.event_id, delivery.url, delivery.attempts, delivery.state) == (
        ids[0], HOOK, 0, "pending",
    )  # fmt: skip
    assert (delivery.next_attempt_at, delivery.last_error) == (T0 + 5, None)
    assert repository.deliveries(event_id=ids[1]) == []
    assert repository.deliveries(state="delivered") == []


def test_events_at_the_same_time_come_in_the_order_they_were_stored(
    repository: MonitoringRepository,
) -> None:
    first = repository.record_alerts([alert("a", T0)], {}, "monitor")
    second = repository.record_alerts([alert("b", T0), alert("c", T0)], {}, "ops")
    events = repository.alert_events("fraud-api", since=T0)
    assert [e.id for e in events] == first + second
    assert [e.actor for e in events] == ["monitor", "ops", "ops"]
    assert repository.record_alerts([], {}, "monitor") == []


def test_a_bad_hook_stores_none_of_the_alerts_nor_their_deliveries(
    repository: MonitoringRepository,
) -> None:
    alerts = [alert("drift", T0), alert("slow", T0 + 1)]
    hooks = {("fraud-api", "drift"): HOOK, ("fraud-api", "slow"): "ftp://example/a"}
    with pytest.raises(ValidationError, match="must start with http:// or https://, got 'ftp"):
        repository.record_alerts(alerts, hooks, "monitor")
    assert repository.alert_events("fraud-api", since=0.0) == []
    assert repository.deliveries() == []

    # the store is still usable, and ids stay unique
    ids = repository.record_alerts(alerts, {("fraud-api", "drift"): HOOK}, "monitor")
    assert [e.id for e in repository.alert_events("fraud-api", since=0.0)] == ids
    assert [d.event_id for d in repository.deliveries()] == ids[:1]


# -- webhook deliveries --------------------------------------------------------------------


def test_enqueue_adds_one_pending_delivery_per_url_or_none(
    repository: MonitoringRepository,
) -> None:
    event_id = event_of(repository)
    ids = repository.enqueue(event_id, [HOOK, "http://127.0.0.1:9/b"], T0 + 30)
    assert [d.id for d in repository.deliveries(event_id=event_id)] == ids
    assert {(d.url, d.state, d.next_attempt_at) for d in repository.deliveries()} == {
        (HOOK, "pending", T0 + 30), ("http://127.0.0.1:9/b", "pending", T0 + 30),
    }  # fmt: skip
    with pytest.raises(ValidationError, match="got 'mailto:ops@example.com'"):
        repository.enqueue(event_id, [HOOK, "mailto:ops@example.com"], T0)
    assert len(repository.deliveries()) == 2
    with pytest.raises(RejectedWriteError, match="refused the write"):
        repository.enqueue(event_id + 1000, [HOOK], T0)
    assert len(repository.deliveries()) == 2


def test_a_claim_leases_the_due_deliveries_earliest_first(
    repository: MonitoringRepository,
) -> None:
    event_id = event_of(repository)
    late = repository.enqueue(event_id, [HOOK], T0 + 10)[0]
    early = repository.enqueue(event_id, ["http://a.example/1", "http://a.example/2"], T0)

    claimed = repository.claim(T0, limit=10, lease_s=60.0)
    assert [c.id for c in claimed] == early  # `late` is not due yet
    assert [(c.url, c.attempts) for c in claimed] == [
        ("http://a.example/1", 0), ("http://a.example/2", 0),
    ]  # fmt: skip
    assert claimed[0].event == repository.alert_events("fraud-api", since=0.0)[0]
    # leased: a second deliverer gets nothing of them until the lease ends
    assert repository.claim(T0, limit=10, lease_s=60.0) == []
    assert [c.id for c in repository.claim(T0 + 10, limit=10, lease_s=60.0)] == [late]
    assert repository.claim(T0 + 59, limit=10, lease_s=60.0) == []
    assert {d.id: d.next_attempt_at for d in repository.deliveries()} == {
        early[0]: T0 + 60, early[1]: T0 + 60, late: T0 + 70,
    }  # fmt: skip
    # an attempt never recorded (a crashed deliverer): due again when the lease ends
    again = repository.claim(T0 + 60, limit=1, lease_s=60.0)
    assert [(c.id, c.attempts) for c in again] == [(early[0], 0)]
    assert [c.id for c in repository.claim(T0 + 60, limit=5, lease_s=60.0)] == [early[1]]
    assert all(d.state == "pending" and d.attempts == 0 for d in repository.deliveries())


def test_complete_records_the_attempt_and_what_comes_next(
    repository: MonitoringRepository,
) -> None:
    event_id = event_of(repository)
    done, retry, failed = repository.enqueue(
        event_id, ["http://a.example/1", "http://a.example/2", "http://a.example/3"], T0
    )
    assert len(repository.claim(T0, limit=10, lease_s=60.0)) == 3
    repository.complete(done, 1, "delivered", None)
    repository.complete(retry, 1, "pending", "HTTP 503: not now", T0 + 15)
    repository.complete(failed, 1, "failed", "HTTP 400: no")
    rows = {d.id: d for d in repository.deliveries()}
    assert (rows[done].state, rows[done].attempts, rows[done].last_error) == ("delivered", 1, None)
    assert rows[done].next_attempt_at == T0 + 60  # untouched
    assert (rows[retry].state, rows[retry].next_attempt_at) == ("pending", T0 + 15)
    assert rows[retry].last_error == "HTTP 503: not now"
    assert (rows[failed].state, rows[failed].last_error) == ("failed", "HTTP 400: no")
    assert [d.id for d in repository.deliveries(state="failed")] == [failed]

    assert repository.claim(T0 + 14, limit=10, lease_s=60.0) == []
    [claimed] = repository.claim(T0 + 15, limit=10, lease_s=60.0)
    assert (claimed.id, claimed.attempts) == (retry, 1)
    repository.complete(retry, 2, "delivered", None)
    # delivered and failed deliveries are never claimed again
    assert repository.claim(T0 + 10**6, limit=10, lease_s=60.0) == []


def test_deliverers_claiming_at_once_never_share_a_delivery(
    repository: MonitoringRepository,
) -> None:
    event_id = event_of(repository)
    ids = repository.enqueue(event_id, [f"http://a.example/{i}" for i in range(24)], T0)
    claims: list[list[int]] = []
    start = threading.Barrier(4)

    def deliverer() -> None:
        start.wait()
        claims.append([c.id for c in repository.claim(T0, limit=5, lease_s=60.0)])

    threads = [threading.Thread(target=deliverer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken = [i for claim in claims for i in claim]
    assert len(taken) == len(set(taken))
    rest = [c.id for c in repository.claim(T0, limit=100, lease_s=60.0)]
    assert sorted(taken + rest) == ids
