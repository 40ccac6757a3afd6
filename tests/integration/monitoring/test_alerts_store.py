"""Alert rules and alert events in the database, on both backends."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select

from modelyard.errors import ValidationError
from modelyard.monitoring.alerts import (
    delete_rule,
    load_rules,
    recent_alerts,
    record_alerts,
    restore_state,
    save_rule,
)
from modelyard.monitoring.rules import Alert, AlertRule
from modelyard.monitoring.sql import SqlMonitoringRepository
from modelyard.monitoring.webhooks import deliveries
from modelyard.store.schema import alert_rules, events
from modelyard.yard import Yard

T0 = 1_790_000_000.0


def test_rules_are_saved_replaced_listed_and_deleted(yard: Yard) -> None:
    db, repo = yard.db, SqlMonitoringRepository(yard.db)
    drift = AlertRule("fraud-api", "drift", "drift_share", 0.2, for_windows=2, cooldown_s=600)
    save_rule(repo, drift, now=T0)
    save_rule(repo, AlertRule("search-api", "slow", "p99_ms", 300.0, version=4), now=T0)
    replaced = AlertRule(
        "fraud-api", "drift", "drift_share", 0.3, ">=", webhook_url="https://hooks.example/a"
    )
    save_rule(repo, replaced, now=T0 + 1)
    assert load_rules(repo, "fraud-api") == [replaced]
    assert [r.name for r in load_rules(repo)] == ["drift", "slow"]
    assert load_rules(repo, "search-api")[0].version == 4
    with db.read() as conn:
        stored = conn.execute(select(alert_rules.c.rule, alert_rules.c.created_at)).all()
    assert orjson.loads(stored[0][0])["threshold"] in (0.3, 300.0)
    assert delete_rule(repo, "fraud-api", "drift")
    assert not delete_rule(repo, "fraud-api", "drift")
    assert load_rules(repo, "fraud-api") == []


def test_each_alert_is_an_event_with_deliveries_for_its_rule_hook(yard: Yard) -> None:
    db, repo = yard.db, SqlMonitoringRepository(yard.db)
    rules = [
        AlertRule("fraud-api", "drift", "drift_share", 0.1, webhook_url="http://127.0.0.1:9/a"),
        AlertRule("fraud-api", "slow", "p99_ms", 100.0),
    ]
    alerts = [
        Alert("fraud-api", "drift", 3, "drift_share", 0.4, ">", 0.1, 1, T0, {"drift_share": 0.4}),
        Alert("fraud-api", "slow", 3, "p99_ms", 180.0, ">", 100.0, 2, T0 + 5, {"p99_ms": 180.0}),
    ]
    stored = record_alerts(repo, alerts, rules)
    assert [e.alert for e in stored] == alerts
    with db.read() as conn:
        rows = conn.execute(select(events).order_by(events.c.id)).mappings().all()
    assert [r["id"] for r in rows] == [e.id for e in stored]
    assert [r["reason"] for r in rows] == [
        "drift: drift_share = 0.4 > 0.1 (v3)",
        "slow: p99_ms = 180 > 100 for 2 windows (v3)",
    ]
    assert orjson.loads(rows[1]["payload"])["figures"] == {"p99_ms": 180.0}
    pending = deliveries(repo, state="pending")
    assert [(d.event_id, d.url, d.attempts, d.next_attempt_at) for d in pending] == [
        (stored[0].id, "http://127.0.0.1:9/a", 0, T0)
    ]

    found = recent_alerts(repo, "fraud-api", since=T0 + 1)
    assert [a["id"] for a in found] == [stored[1].id]
    assert found[0]["payload"]["metric"] == "p99_ms"
    state = restore_state(repo, "fraud-api", since=T0 - 60)
    assert state.get(("fraud-api", "drift", 3)).last_fired == T0
    assert state.get(("fraud-api", "slow", 3)).last_fired == T0 + 5
    assert state.get(("fraud-api", "slow", 4)).last_fired is None


def test_a_rule_with_a_bad_webhook_url_stores_nothing(yard: Yard) -> None:
    rule = AlertRule("fraud-api", "drift", "drift_share", 0.1, webhook_url="ftp://example/a")
    alert = Alert("fraud-api", "drift", 1, "drift_share", 0.4, ">", 0.1, 1, T0, {})
    with pytest.raises(ValidationError, match="must start with http:// or https://, got 'ftp"):
        record_alerts(SqlMonitoringRepository(yard.db), [alert], [rule])
    assert recent_alerts(SqlMonitoringRepository(yard.db), "fraud-api", since=0.0) == []
