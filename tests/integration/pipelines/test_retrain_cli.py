"""``modelyard retraining set``, ``retrain`` and ``history`` as a user runs them, each a new
process in a project directory: the candidate gated, registered once, rolled out; a
worse one stopped; a failing step recorded; a SIGKILL mid-way and a re-run leave exactly
one version; two retrains at once run one."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import Project, make_project

PLAN = ("retraining", "set", "scoring", "--min-delta", "0.02", "--interval", "5")


def versions(project: Project) -> list[int]:
    with project.yard() as yard:
        return [v.version for v in yard.registry.list_versions("concept")]


def test_a_retrain_is_gated_registered_rolled_out_and_told_in_history(project: Project) -> None:
    project.cli(*PLAN, "--pipeline", "concept:from_file", "--on-drift")
    record = project.json("retrain", "scoring")
    assert (record["status"], record["version"], record["champion"]) == ("rolled_out", 2, 1)
    assert record["gate"]["passed"] is True
    with project.yard() as yard:
        version = yard.registry.get_version("concept", 2)
        run = yard.tracking.get_run(version.run_id or "")
    assert version.parent_version == 1
    assert run.tags["step.read_table"] == "uncached"
    assert run.tags["step.train"] == "computed"
    assert run.seed == 0
    assert run.tags["parent_run"]
    (story,) = project.json("history", "scoring")
    assert story["outcome"] == "canary out"
    assert "v2 beat v1 on roc_auc" in story["story"]
    shown = project.cli("history", "scoring").stdout
    assert "canary at 5%" in shown
    # the canary is out: a second retrain waits for it
    refused = project.cli("retrain", "scoring", expect=2)
    assert "cannot retrain 'scoring' now: a rollout is in progress" in refused.stderr


def test_same_seed_and_same_data_give_a_byte_identical_model(tmp_path: Path) -> None:
    digests = []
    for name in ("one", "two"):
        project = make_project(tmp_path / name)
        project.cli(*PLAN, "--pipeline", "concept:from_file", "--seed", "11")
        assert project.json("retrain", "scoring")["version"] == 2
        with project.yard() as yard:
            digests.append(yard.registry.get_version("concept", 2).artifact_digest)
    assert digests[0] == digests[1]


def test_a_worse_candidate_is_stopped_at_the_gate(project: Project) -> None:
    project.cli(*PLAN, "--pipeline", "concept:shuffled")
    record = project.json("retrain", "scoring")
    assert record["status"] == "gate_failed"
    checks = {c["name"]: c["passed"] for c in record["gate"]["checks"]}
    assert checks["beats_champion"] is False
    assert versions(project) == [1]
    (story,) = project.json("history", "scoring")
    assert story["outcome"] == "gate failed"
    assert "does not beat the champion by 0.02" in story["story"]


def test_a_failing_step_fails_the_attempt_and_leaves_the_champion(project: Project) -> None:
    project.cli(*PLAN, "--pipeline", "concept:failing")
    record = project.json("retrain", "scoring")
    assert record["status"] == "failed"
    assert record["error"] == (
        "step 'broken_train' failed: RuntimeError: the training data has no positive class"
    )
    assert versions(project) == [1]
    shown = project.json("retraining", "show", "scoring")
    assert shown["retrains"][0]["status"] == "failed"


def test_bad_input_is_one_clear_line_and_nothing_written(project: Project) -> None:
    unknown = project.cli("retrain", "nope", expect=2)
    assert (
        unknown.stderr == "error: no deployment named 'nope'; create it with `modelyard deploy`\n"
    )
    cron = project.cli(
        *PLAN, "--pipeline", "concept:from_file", "--schedule", "0 25 * * *", expect=2
    )
    assert "schedule '0 25 * * *' is not a cron expression" in cron.stderr
    no_plan = project.cli("retraining", "show", "scoring", expect=2)
    assert "has no retraining plan" in no_plan.stderr
    reference = project.cli(*PLAN, "--pipeline", "concept.py", expect=2)
    assert "pipeline must be 'module:function'" in reference.stderr
    missing = project.cli("retraining", "set", "nope", "--pipeline", "concept:from_file", expect=2)
    assert "nope" in missing.stderr
    with project.yard() as yard:
        assert [e.kind for e in yard_events(yard)] == []


def yard_events(yard: object) -> list[object]:
    from modelyard.routing.sql import SqlDeploymentRepository

    return SqlDeploymentRepository(yard.db).events("scoring", "retrain.")  # type: ignore[attr-defined]


def test_a_retrain_killed_mid_way_and_run_again_registers_exactly_one_version(
    project: Project, wait_until: Callable[..., Any]
) -> None:
    project.cli(*PLAN, "--pipeline", "concept:from_file")
    hold = project.root / "hold"
    hold.write_text("")
    killed = project.popen("retrain", "scoring", CONCEPT_HOLD_FILE=str(hold))
    assert wait_until(Path(str(hold) + ".entered").exists, 60)
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    hold.unlink()
    assert versions(project) == [1]
    record = project.json("retrain", "scoring")
    assert (record["status"], record["version"]) == ("rolled_out", 2)
    assert versions(project) == [1, 2]
    attempts = project.json("retraining", "show", "scoring")["retrains"]
    assert [a["status"] for a in attempts] == ["rolled_out", "abandoned"]
    with project.yard() as yard:
        (dead,) = yard.tracking.search_runs("tags.retrain = '1'")
        assert dead.status == "KILLED"


def test_two_retrains_at_once_run_one(project: Project, wait_until: Callable[..., Any]) -> None:
    project.cli(*PLAN, "--pipeline", "concept:from_file")
    hold = project.root / "hold"
    hold.write_text("")
    first = project.popen("retrain", "scoring", "--json", CONCEPT_HOLD_FILE=str(hold))
    assert wait_until(Path(str(hold) + ".entered").exists, 60)
    second = project.cli("retrain", "scoring", expect=2)
    assert "a retrain of this deployment is running" in second.stderr
    hold.unlink()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert versions(project) == [1, 2]
    assert len(project.json("retraining", "show", "scoring")["retrains"]) == 1
