"""``modelyard deploy / rollout / shadow / ab`` on each backend: tables, and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from modelyard.cli.deploy import deploy_app
from modelyard.config import Settings
from modelyard.errors import ConflictError, ModelyardError, ValidationError
from modelyard.features import Entity, Feature, FeatureView, StreamSource
from modelyard.features.definition_set import Definitions
from modelyard.features.registry import FeatureRegistry
from modelyard.features.sql import SqlDefinitionRepository
from modelyard.routing import (
    DeploymentStore,
    FeatureInputs,
    InMemoryMetrics,
    RolloutController,
    RolloutPolicy,
)
from modelyard.yard import Yard


@pytest.fixture
def cli(fraud: Yard, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("MODELYARD_HOME", str(settings.home))
    if settings.database_url:
        monkeypatch.setenv("MODELYARD_DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("MODELYARD_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def ok(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(deploy_app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def refused(cli: CliRunner, *args: str) -> ModelyardError:
    result: Result = cli.invoke(deploy_app, list(args))
    assert isinstance(result.exception, ModelyardError), result.output
    return result.exception


def test_rollout_policy_flags_and_every_check_of_an_analysis(
    cli: CliRunner, store: DeploymentStore
) -> None:
    ok(cli, "deploy", "api", "--model", "fraud", "--version", "1")
    ok(
        cli,
        *("rollout", "start", "api", "--canary", "2", "--interval", "10"),
        *("--max-p99-increase-ms", "8", "--max-decision-change", "0.07", "--alpha", "0.01"),
        *("--max-accuracy-drop", "0.03", "--divergence-gate"),
    )
    policy = store.get("api").rollout.policy  # type: ignore[union-attr]
    assert (policy.max_p99_increase_ms, policy.max_decision_change, policy.alpha) == (8, 0.07, 0.01)
    assert (policy.max_accuracy_drop, policy.divergence_gate) == (0.03, True)
    assert policy.max_error_rate == RolloutPolicy().max_error_rate  # left out: the default
    metrics = InMemoryMetrics()
    started = store.get("api").rollout.checked_at  # type: ignore[union-attr]
    rng = np.random.default_rng(0)
    at = started + np.linspace(0, 9, 2_000)
    metrics.record("api", 1, at, np.zeros(2_000), rng.gamma(2, 1, 2_000))
    metrics.record("api", 2, at[:500], np.zeros(500), rng.gamma(2, 1, 500), changed=np.zeros(500))
    RolloutController(store, metrics).tick(started + 10)
    out = ok(cli, "rollout", "status", "api")
    assert "analysis 1" in out
    assert "advance" in out
    for check in ("p99_vs_champion", "decisions", "live_quality", "prediction_divergence"):
        assert check in out
    assert "max_p99_increase_ms" in out  # the policy in force
    document = json.loads(ok(cli, "rollout", "status", "api", "--json"))
    checks = {c["name"]: c for c in document["analyses"][0]["checks"]}
    assert checks["decisions"]["value"] == 0.0
    assert checks["decisions"]["limit"] == 0.07
    assert checks["decisions"]["outcome"] == "passed"
    assert checks["live_quality"]["outcome"] == "skipped"
    assert document["rollout"]["policy"]["alpha"] == 0.01
    assert document["rollout"]["state"]["analyses"] == 1
    ok(cli, "rollout", "abort", "api")
    refused_policy = refused(
        cli, "rollout", "start", "api", "--canary", "2", "--max-decision-change", "2"
    )
    assert "max_decision_change must be in (0, 1]" in refused_policy.message


def test_deploy_shadow_and_a_rollout_from_the_command_line(
    cli: CliRunner, store: DeploymentStore
) -> None:
    out = ok(cli, "deploy", "api", "--model", "fraud", "--version", "1", "--reason", "launch")
    assert "api: new -> revision 1" in out
    assert "champion" in out
    assert "v1" in out
    out = ok(cli, "shadow", "api", "--version", "2", "--share", "0.2")
    assert "v2 (20%)" in out
    assert "revision 1 -> revision 2" in out
    out = ok(cli, "rollout", "start", "api", "--canary", "2", "--steps", "10,100")
    assert "v2 at 10%" in out
    assert "progressing" in out
    error = refused(cli, "rollout", "start", "api", "--canary", "2")
    assert isinstance(error, ConflictError)
    assert "a rollout of version 2 is progressing at 10%" in error.message
    out = ok(cli, "rollout", "pause", "api", "--reason", "checking")
    assert "paused" in out
    ok(cli, "rollout", "resume", "api")
    out = ok(cli, "rollout", "status", "api")
    assert "rollout decisions" in out
    for decision in ("start", "pause", "resume"):
        assert decision in out
    out = ok(cli, "rollout", "promote", "api")
    assert store.get("api").config.champion == 2
    assert "promoted" in out
    error = refused(cli, "rollout", "abort", "api")
    assert "cannot abort a rollout that is promoted" in error.message
    out = ok(cli, "deployments", "api")
    assert "launch" in out
    assert "history" in out
    assert "api" in ok(cli, "deployments")


def test_a_deployment_sets_its_own_inference_log_policy(
    cli: CliRunner, store: DeploymentStore
) -> None:
    out = ok(cli, "deploy", "api", "--model", "fraud", "--version", "1", "--log-ttl-days", "7")
    assert "sample server default, keep 7 days" in out
    out = ok(cli, "deploy", "api", "--model", "fraud", "--version", "2", "--log-sample-rate", "0.1")
    assert "sample 10%, keep 7 days" in out  # what is not given stays
    config = store.get("api").config
    assert (config.champion, config.log_sample_rate, config.log_ttl_days) == (2, 0.1, 7)
    result = cli.invoke(deploy_app, ["deploy", "api", "--model", "fraud", "--version", "2",
                                     "--log-sample-rate", "1.5"])  # fmt: skip
    assert result.exit_code == 2
    assert "--log-sample-rate" in result.output
    assert "less than or equal to 1" in result.output
    assert store.get("api").config.log_sample_rate == 0.1  # nothing changed


def test_an_ab_test_from_the_command_line(cli: CliRunner, store: DeploymentStore) -> None:
    ok(cli, "deploy", "api", "--model", "fraud", "--version", "1")
    out = ok(cli, "ab", "start", "api", "--arm", "a=1:50", "--arm", "b=2:50", "--tau", "0.05")
    assert "a=v1:50%, b=v2:50% (control a)" in out
    out = ok(cli, "ab", "report", "api")
    assert "continue" in out
    out = ok(cli, "ab", "stop", "api", "--promote", "b")
    assert store.get("api").config.champion == 2
    assert store.get("api").config.experiment is None


def test_bad_input_is_one_modelyard_error_with_a_reason(
    cli: CliRunner, store: DeploymentStore
) -> None:
    ok(cli, "deploy", "api", "--model", "fraud", "--version", "1")
    cases = [
        (["deploy", "x", "--model", "fraud"], "exactly one of --version or --alias"),
        (["deploy", "x", "--model", "fraud", "--version", "9"], "has no version 9"),
        (["rollout", "start", "api", "--canary", "3"], "missing inputs f6, f7"),
        (["rollout", "start", "api", "--canary", "2", "--steps", "5,x"], "--steps must be"),
        (["rollout", "start", "api", "--canary", "2", "--steps", "50,20,100"], "increasing"),
        (["shadow", "api", "--version", "2", "--share", "1.5"], "share must be in (0, 1]"),
        (["ab", "start", "api", "--arm", "a=1:50", "--arm", "b=2:40", "--tau", "1"], "sum to 100"),
        (["ab", "start", "api", "--arm", "a=1:50", "--arm", "b=2:50"], "needs --tau"),
        (["ab", "report", "api"], "runs no experiment"),
        (["rollout", "pause", "api"], "has no rollout to pause"),
    ]
    for args, message in cases:
        error = refused(cli, *args)
        assert message in error.message, (args, error.message)
    assert isinstance(refused(cli, "deploy", "x", "--model", "fraud"), ValidationError)
    assert store.revision("api") == 1


def test_a_deployment_reads_its_features_as_of_a_request_field(
    cli: CliRunner, fraud: Yard, store: DeploymentStore
) -> None:
    card = Entity("card", key="card_id")
    stream = StreamSource("transactions", fields=(Feature("f0", "float64"),))
    view = FeatureView("card_stats", card, stream, features=(Feature("f0", "float64"),))
    FeatureRegistry(SqlDefinitionRepository(fraud.db)).apply(Definitions(views=(view,)))
    features = ("--features", "card_stats:f0")
    out = ok(cli, "deploy", "api", "--model", "fraud", "--version", "1", *features,
             "--event-time", "f1")  # fmt: skip
    assert "field f1" in out
    assert store.get("api").config.features == FeatureInputs(("card_stats:f0",), event_time="f1")
    ok(cli, "deploy", "api", "--model", "fraud", "--version", "1", "--event-time", "")
    assert store.get("api").config.features == FeatureInputs(("card_stats:f0",))
    needs = refused(cli, "deploy", "new", "--model", "fraud", "--version", "1", "--event-time", "t")
    assert "--event-time needs --features" in needs.message
    key = refused(cli, "deploy", "new", "--model", "fraud", "--version", "1", *features,
                  "--event-time", "card_id")  # fmt: skip
    assert "--event-time 'card_id' is the entity's key" in key.message
