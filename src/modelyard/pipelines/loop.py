"""The retraining loop: trigger -> pipeline -> gate -> register -> canary or A/B test.

``RetrainingLoop.check(now)`` gathers each plan's signals (drift checks, alerts and
labels from monitoring, the cron schedule, the deployment's rollout, recent retrains),
asks ``triggers.decide`` and runs the retrains that are due; ``retrain`` runs one now
(a person's request, ``modelyard retrain``). One retrain of a deployment at a time
(``leases``).

Nothing is half-done after a crash: the pipeline writes only cache entries and its
tracked run; the version is registered in one transaction, tagged with the attempt
that made it; and an attempt whose holder died is marked ``abandoned`` by the next
one (its tracked run ``KILLED``), which resumes from its version if it had registered
one (starting its rollout) instead of registering a second. Every transition is an
event on the deployment (``retrain.*``), carrying the attempt's id, so ``history``
tells the story; the rollout then speaks through the controller's ``rollout.*`` events.

A plan with ``rollout_kind="ab"`` starts an A/B test ``champion`` vs ``candidate``
instead of a canary, and each ``check`` looks at it first (``pipelines.ab``): the
candidate is promoted only when the test says it won, and the test is stopped when it
lost, found no difference, or ran past the plan's ``max_days`` (``retrain.ab_*``
events). No retrain of the deployment starts while it runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from modelyard.errors import ConflictError, ModelyardError, NotFoundError, StepFailedError
from modelyard.monitoring.feedback_join import joined, request_outcomes
from modelyard.monitoring.inference_log.repository import LabelledLogRepository
from modelyard.monitoring.repository import MonitoringRepository
from modelyard.monitoring.window import SHADOW_ARM
from modelyard.pipelines.ab import (
    CANDIDATE_ARM,
    CHAMPION_ARM,
    CTR_FIELD,
    ExperimentJudge,
    ab_decision,
    logged_judge,
)
from modelyard.pipelines.cache import StepCache
from modelyard.pipelines.evaluation import measure
from modelyard.pipelines.execution import run_pipeline
from modelyard.pipelines.gate import judge
from modelyard.pipelines.leases import held_lease, holder_gone, holder_identity
from modelyard.pipelines.loading import load_pipeline
from modelyard.pipelines.plan import DAY_S, AbPolicy, RetrainPlan
from modelyard.pipelines.repository import PipelineRepository, RetrainRecord
from modelyard.pipelines.triggers import Signals, TriggerDecision, decide, schedule_due
from modelyard.registry import ModelVersion
from modelyard.registry.registry import Registry
from modelyard.routing.abtest import Sequential
from modelyard.routing.controller import RolloutController
from modelyard.routing.deployment import Deployment, Event
from modelyard.routing.deployment_store import DeploymentStore
from modelyard.routing.experiment_reports import last_report, report_to_dict
from modelyard.routing.experiments import LoggedOutcomes
from modelyard.routing.repository import EventLog
from modelyard.tracking import Tracker

__all__ = ["CheckResult", "RetrainingLoop"]

log = logging.getLogger(__name__)

ACTOR = "retraining"
LEASE_TTL_S = 300.0
RETRAIN_TAG = "modelyard.retrain"


@dataclass(frozen=True)
class CheckResult:
    """What one check did for one plan: its decision, and the attempt it ran, if any."""

    deployment: str
    decision: TriggerDecision
    retrain: RetrainRecord | None = None
    error: str | None = None


class RetrainingLoop:
    """Runs retraining plans over one home's stores (wired by the caller)."""

    def __init__(
        self,
        *,
        plans: PipelineRepository,
        deployments: DeploymentStore,
        events: EventLog,
        registry: Registry,
        tracker: Tracker,
        cache: StepCache,
        monitoring: MonitoringRepository,
        inference_log: LabelledLogRepository,
        features: Callable[[], Any] | None = None,
        trusted: bool = False,
        clock: Callable[[], float] = time.time,
        lease_ttl_s: float = LEASE_TTL_S,
        load: Callable[[str], Callable[[Any], Any]] = load_pipeline,
        judges: Mapping[str, ExperimentJudge] | None = None,
    ) -> None:
        """``judges``: the A/B judge of a metric (``ctr``: the recommender's), beside the
        generic one over the inference log that judges any other."""
        self._plans = plans
        self._deployments = deployments
        self._events = events
        self._registry = registry
        self._tracker = tracker
        self._cache = cache
        self._monitoring = monitoring
        self._log = inference_log
        self._features = features
        self._trusted = trusted
        self._clock = clock
        self._lease_ttl_s = lease_ttl_s
        self._load = load
        self._controller = RolloutController(deployments, clock=clock, actor=ACTOR)
        self._judges = dict(judges or {})
        self._logged_judge = logged_judge(LoggedOutcomes(partial(request_outcomes, inference_log)))

    # -- plans ------------------------------------------------------------------------

    def configure(self, plan: RetrainPlan, *, actor: str | None = None) -> RetrainPlan:
        """Keep ``plan`` for its deployment (which must exist), as an event too."""
        self._deployments.get(plan.deployment)
        now = self._clock()
        self._plans.save_plan(plan, now)
        if self._plans.checked_at(plan.deployment) is None:
            self._plans.mark_checked(plan.deployment, now)
        triggers = ", ".join(plan.triggers) or "manual only"
        self._event(
            plan.deployment,
            "retrain.plan",
            f"retraining plan set: {triggers}",
            {"plan": plan.to_dict()},
            actor=actor,
        )
        return plan

    def plan(self, deployment: str) -> RetrainPlan:
        found = self._plans.plan(deployment)
        if found is None:
            self._deployments.get(deployment)  # NotFoundError for an unknown deployment
            raise NotFoundError(
                f"deployment {deployment!r} has no retraining plan; set one with "
                f"`modelyard retraining set {deployment} --pipeline module:function`"
            )
        return found

    def remove(self, deployment: str, *, actor: str | None = None) -> bool:
        """Forget ``deployment``'s plan (its attempts and events stay)."""
        removed = self._plans.delete_plan(deployment)
        if removed:
            self._event(
                deployment, "retrain.plan_removed", "retraining plan removed", {}, actor=actor
            )
        return removed

    def attempts(self, deployment: str, limit: int = 50) -> list[RetrainRecord]:
        """``deployment``'s retraining attempts, newest first."""
        return self._plans.retrains(deployment, limit)

    # -- the automatic side -------------------------------------------------------------

    def check(self, now: float | None = None) -> list[CheckResult]:
        """Evaluate every plan's triggers at ``now`` and run the retrains that are due.
        One plan's failure is reported in its result; the others still run."""
        now = self._clock() if now is None else now
        results = []
        for plan in self._plans.plans():
            try:
                if plan.rollout_kind == "ab":
                    self.judge_experiment(plan, now)
                signals = self.signals(plan, now)
                decision = decide(plan, signals)
                self._plans.mark_checked(plan.deployment, now)
                record = None
                if decision.start:
                    record = self._retrain(plan, decision.trigger or "?", decision.reason)
                results.append(CheckResult(plan.deployment, decision, record))
            except Exception as error:  # one deployment's problem must not stop the others
                text = error.message if isinstance(error, ModelyardError) else repr(error)
                log.exception("retraining check of %s failed", plan.deployment)
                results.append(CheckResult(plan.deployment, TriggerDecision(False), error=text))
        return results

    def signals(self, plan: RetrainPlan, now: float) -> Signals:
        """What the triggers of ``plan`` see at ``now``."""
        deployment = self._deployments.get(plan.deployment)
        champion = deployment.config.champion
        recent = self._plans.retrains(plan.deployment, limit=100)
        starts = tuple(sorted(r.started_at for r in recent if now - r.started_at < 2 * DAY_S))
        since = recent[0].started_at if recent else 0.0
        drifted, drift_reason = self._drift(plan, champion, since, now)
        lease = self._plans.lease(plan.deployment)
        return Signals(
            now=now,
            retrain_starts=starts,
            retrain_running=lease is not None and lease.expires_at > now and not holder_gone(lease),
            rollout_active=deployment.rollout_active,
            experiment_active=deployment.config.experiment is not None,
            drifted_in_a_row=drifted,
            drift_reason=drift_reason,
            alert=self._alert(plan, champion, since) if plan.on_alert else None,
            new_labels=self._new_labels(plan, since, now) if plan.min_new_labels else 0,
            schedule_due_at=schedule_due(plan, self._plans.checked_at(plan.deployment), now),
        )

    def _drift(self, plan: RetrainPlan, champion: int, since: float, now: float) -> tuple[int, str]:
        if not plan.on_drift:
            return 0, ""
        checks = self._monitoring.drift_results(
            plan.deployment, since, now, version=champion, limit=plan.drift_checks
        )
        in_a_row = 0
        for check in reversed(checks):
            if not check.dataset_drift:
                break
            in_a_row += 1
        if not in_a_row:
            return 0, ""
        newest = checks[-1]
        drifted = list(newest.report.drifted_features[:3])
        at = time.strftime("%H:%M", time.gmtime(newest.window_end))
        return (
            in_a_row,
            f"drift in {', '.join(drifted) or 'the inputs'} at {at} UTC ({in_a_row} checks)",
        )

    def _alert(self, plan: RetrainPlan, champion: int, since: float) -> str | None:
        """The first alert on the champion since the last retrain (alerts on a version that
        no longer serves say nothing about the one that does)."""
        events = self._monitoring.alert_events(plan.deployment, since)
        mine = [e for e in events if e.payload.get("version") == champion]
        return mine[0].reason if mine else None

    def _new_labels(self, plan: RetrainPlan, since: float, now: float) -> int:
        window = joined(self._log, plan.deployment, max(since, now - plan.window_s), now)
        if window.labels is None or not window.rows:
            return 0
        answered = window.arm[window.row_request] != SHADOW_ARM
        return int(sum(1 for label in window.labels[answered].tolist() if label is not None))

    # -- one retrain ----------------------------------------------------------------------

    def retrain(
        self, deployment: str, *, reason: str = "", actor: str | None = None
    ) -> RetrainRecord:
        """Retrain ``deployment`` now, as a person asked (ConflictError while a retrain or
        a rollout of it runs). Returns the attempt as it ended."""
        plan = self.plan(deployment)
        decision = decide(plan, self.signals(plan, self._clock()), manual=True)
        if not decision.start:
            raise ConflictError(f"cannot retrain {deployment!r} now: {decision.held}")
        return self._retrain(plan, "manual", reason or f"asked by {actor or 'an operator'}")

    def _retrain(self, plan: RetrainPlan, trigger: str, reason: str) -> RetrainRecord:
        holder = holder_identity()
        with held_lease(self._plans, plan.deployment, holder, self._clock, self._lease_ttl_s):
            deployment = self._deployments.get(plan.deployment)
            abandoned = self._abandon_dead(plan.deployment)
            record = self._plans.start_retrain(
                plan.deployment, trigger, reason, holder, self._clock(), deployment.config.champion
            )
            self._event(
                plan.deployment,
                "retrain.started",
                f"{trigger}: {reason}",
                {"trigger": trigger, "champion": deployment.config.champion},
                record,
            )
            try:
                return self._continue(plan, deployment, record, abandoned)
            except Exception as error:  # a bug: the attempt must not stay "running"
                self._fail(record, "failed", f"{type(error).__name__}: {error}", {})
                raise

    def _continue(
        self,
        plan: RetrainPlan,
        deployment: Deployment,
        record: RetrainRecord,
        abandoned: list[RetrainRecord],
    ) -> RetrainRecord:
        resumed = self._resumable(deployment, abandoned)
        if resumed is not None:
            record = self._plans.update_retrain(record.id, version=resumed.version)
            self._event(
                plan.deployment,
                "retrain.resumed",
                f"version {resumed.version} was registered by attempt "
                f"{resumed.tags.get(RETRAIN_TAG)}, which died before its rollout",
                {"version": resumed.version},
                record,
            )
            return self._roll_out(plan, record, resumed.version)
        return self._train_and_gate(plan, deployment, record)

    def _train_and_gate(
        self, plan: RetrainPlan, deployment: Deployment, record: RetrainRecord
    ) -> RetrainRecord:
        model = deployment.config.model
        now = self._clock()
        start = now - plan.window_s
        champion_version = self._registry.get_version(model, deployment.config.champion)
        try:
            outcome = run_pipeline(
                self._load(plan.pipeline),
                name=f"retrain-{plan.deployment}",
                tracker=self._tracker,
                seed=plan.seed,
                window_start=start,
                window_end=now,
                cache=self._cache,
                sources=self._sources(plan.deployment),
                parent_run=champion_version.run_id,
                tags={"deployment": plan.deployment, "retrain": record.id},
            )
        except ModelyardError as error:
            step = error.step if isinstance(error, StepFailedError) else None
            return self._fail(record, "failed", error.message, {"step": step})
        record = self._plans.update_retrain(record.id, run_id=outcome.run_id)
        steps = [f"{s.step} {s.outcome}" for s in outcome.steps]
        self._event(
            plan.deployment,
            "retrain.trained",
            f"run {outcome.run_id[:8]}: " + ", ".join(steps),
            {
                "run_id": outcome.run_id,
                "code_version": outcome.code_version,
                "steps": [s.__dict__ for s in outcome.steps],
            },
            record,
        )
        candidate = outcome.candidate
        try:
            prepared = self._registry.prepare(
                candidate.model, candidate.features, feature_names=candidate.feature_names
            )
            champion = self._registry.load(
                f"{model}/{champion_version.version}", trusted=self._trusted
            )
            evidence = measure(
                plan.gate,
                prepared.predictor,
                champion.predictor,
                candidate.holdout,
                candidate.holdout_labels,
                feature_names=candidate.feature_names,
            )
        except ModelyardError as error:
            return self._fail(record, "failed", f"evaluating the candidate: {error.message}", {})
        verdict = judge(plan.gate, evidence)
        figures = {
            "gate": verdict.to_dict(),
            "candidate": dict(evidence.candidate),
            "champion": evidence.champion,
            "holdout_rows": evidence.holdout_rows,
        }
        if not verdict.passed:
            self._event(
                plan.deployment,
                "retrain.gate_failed",
                f"candidate stopped at the gate: {verdict.reason}",
                figures,
                record,
            )
            return self._end(record, "gate_failed", gate=verdict.to_dict())
        existing = self._same_artifact(model, prepared.digest)
        if existing is not None:
            why = f"the candidate is identical to version {existing.version}"
            return self._fail(record, "gate_failed", why, figures, kind="retrain.unchanged")
        version = self._registry.register_prepared(
            model,
            prepared,
            run=outcome.run_id,
            # the held-out figures under the names the monitor's drop alerts compare with
            metrics=dict(evidence.candidate),
            tags={RETRAIN_TAG: str(record.id), "modelyard.trigger": record.trigger},
            description=f"retrained ({record.trigger}: {record.reason})",
            parent_version=champion_version.version,
        )
        record = self._plans.update_retrain(
            record.id, status="registered", version=version.version, gate=verdict.to_dict()
        )
        self._event(
            plan.deployment,
            "retrain.registered",
            f"v{version.version} " + verdict.reason.replace("the champion", f"v{champion.version}"),
            {**figures, "version": version.version},
            record,
        )
        return self._roll_out(plan, record, version.version)

    def _roll_out(self, plan: RetrainPlan, record: RetrainRecord, version: int) -> RetrainRecord:
        if plan.rollout_kind == "ab":
            return self._start_ab(plan, record, version)
        try:
            self._controller.start(
                plan.deployment,
                version,
                plan.rollout,
                actor=ACTOR,
                reason=f"retrain {record.id}: canary of v{version} "
                f"(steps {', '.join(f'{w:g}' for w in plan.rollout.step_weights)})",
            )
        except ModelyardError as error:
            why = f"the rollout did not start: {error.message}"
            return self._fail(record, "registered", why, {"version": version}, kind="retrain.held")
        self._event(
            plan.deployment,
            "retrain.rolled_out",
            f"canary of v{version} started",
            {"version": version},
            record,
        )
        return self._end(record, "rolled_out")

    # -- the A/B test a retrain starts ---------------------------------------------------------

    def _start_ab(self, plan: RetrainPlan, record: RetrainRecord, version: int) -> RetrainRecord:
        policy = plan.ab
        champion = self._deployments.get(plan.deployment).config.champion
        try:
            self._deployments.start_experiment(
                plan.deployment,
                [
                    (CHAMPION_ARM, champion, 100.0 - policy.weight),
                    (CANDIDATE_ARM, version, policy.weight),
                ],
                Sequential(tau=policy.tau, min_samples_per_arm=policy.min_samples_per_arm),
                metric=CTR_FIELD if policy.metric == "ctr" else policy.metric,
                actor=ACTOR,
                reason=f"retrain {record.id}: A/B test of v{version} against v{champion} "
                f"on {policy.metric} ({policy.weight:g}% to v{version})",
            )
        except ModelyardError as error:
            why = f"the A/B test did not start: {error.message}"
            return self._fail(record, "registered", why, {"version": version}, kind="retrain.held")
        self._event(
            plan.deployment,
            "retrain.ab_started",
            f"A/B test of v{version} against v{champion} started",
            {"version": version, "champion": champion},
            record,
        )
        return self._end(record, "rolled_out")

    def judge_experiment(self, plan: RetrainPlan, now: float | None = None) -> str | None:
        """Look at the A/B test a retrain of ``plan`` started, if one runs: promote the
        candidate when it won, stop the test when it lost or ran too long. Returns the
        action taken (``continue``, ``promote``, ``stop``), None when no such test runs."""
        now = self._clock() if now is None else now
        deployment = self._deployments.get(plan.deployment)
        experiment = deployment.config.experiment
        if experiment is None or {a.name for a in experiment.arms} != {CHAMPION_ARM, CANDIDATE_ARM}:
            return None
        candidate = experiment.arm(CANDIDATE_ARM).version
        tag = self._registry.get_version(deployment.config.model, candidate).tags.get(RETRAIN_TAG)
        if tag is None or not tag.isdigit():
            return None  # a person's experiment with these arm names: not ours to end
        look = self._judge(plan.ab)(
            plan.deployment, experiment, now, last_report(self._events, plan.deployment, experiment)
        )
        payload = {"started_at": experiment.started_at, "report": report_to_dict(look.report)}
        self._events.record(
            Event(now, "experiment.report", plan.deployment, look.reason,
                  {**payload, **look.figures}, ACTOR)
        )  # fmt: skip
        decision = ab_decision(look, started_at=experiment.started_at, now=now, max_s=plan.ab.max_s)
        if decision.action == "continue":
            return decision.action
        promote = decision.action == "promote"
        self._deployments.stop_experiment(
            plan.deployment,
            promote=CANDIDATE_ARM if promote else None,
            actor=ACTOR,
            reason=decision.reason,
            figures={"report": report_to_dict(look.report), **look.figures},
        )
        body = {"version": candidate, "retrain": int(tag)}
        kind = "retrain.ab_promoted" if promote else "retrain.ab_stopped"
        self._events.record(Event(now, kind, plan.deployment, decision.reason, body, ACTOR))
        return decision.action

    def _judge(self, policy: AbPolicy) -> ExperimentJudge:
        return self._judges.get(policy.metric, self._logged_judge)

    # -- helpers ----------------------------------------------------------------------------

    def _sources(self, deployment: str) -> dict[str, Any]:
        def labelled_log(start: float, end: float) -> dict[str, np.ndarray]:
            """The deployment's answered, labelled predictions in ``[start, end)``: the
            logged inputs, ``label`` and ``ts`` (request time)."""
            window = joined(self._log, deployment, start, end)
            if window.labels is None or not window.rows:
                return {"label": np.array([], dtype=object), "ts": np.array([], dtype=np.float64)}
            keep = (window.arm[window.row_request] != SHADOW_ARM) & np.array(
                [label is not None for label in window.labels.tolist()], dtype=bool
            )
            columns = {name: values[keep] for name, values in window.inputs.items()}
            columns["label"] = window.labels[keep]
            columns["ts"] = window.ts[window.row_request][keep]
            return columns

        sources: dict[str, Any] = {"labelled_log": labelled_log}
        if self._features is not None:
            sources["features"] = self._features()
        return sources

    def _abandon_dead(self, deployment: str) -> list[RetrainRecord]:
        """Mark attempts left ``running`` by a dead holder as abandoned (we hold the lease,
        so no live holder is left)."""
        abandoned = []
        for record in self._plans.retrains(deployment, limit=20):
            if record.status == "running":
                updated = self._plans.update_retrain(
                    record.id,
                    status="abandoned",
                    ended_at=self._clock(),
                    error="its process ended before it did",
                )
                for run in self._tracker.search_runs(
                    f"tags.retrain = '{record.id}'", status="RUNNING"
                ):
                    self._tracker.end_run(run.id, "KILLED")
                self._event(
                    deployment,
                    "retrain.abandoned",
                    f"attempt {record.id} ended with its process",
                    {},
                    record,
                )
                abandoned.append(updated)
        return abandoned

    def _resumable(
        self, deployment: Deployment, abandoned: list[RetrainRecord]
    ) -> ModelVersion | None:
        """A version a dead attempt registered and never rolled out, if any."""
        ids = {str(r.id) for r in abandoned}
        if not ids:
            return None
        for version in reversed(self._registry.list_versions(deployment.config.model)):
            if (
                version.tags.get(RETRAIN_TAG) in ids
                and version.version not in deployment.config.versions
            ):
                return version
        return None

    def _same_artifact(self, model: str, digest: str) -> ModelVersion | None:
        return next(
            (v for v in self._registry.list_versions(model) if v.artifact_digest == digest), None
        )

    def _fail(
        self,
        record: RetrainRecord,
        status: str,
        error: str,
        payload: Mapping[str, Any],
        *,
        kind: str | None = None,
    ) -> RetrainRecord:
        """End the attempt with ``status`` and ``error``, as an event (``retrain.<status>``
        unless ``kind`` names another)."""
        self._event(record.deployment, kind or f"retrain.{status}", error, dict(payload), record)
        return self._end(record, status, error=error)

    def _end(self, record: RetrainRecord, status: str, **changes: Any) -> RetrainRecord:
        return self._plans.update_retrain(
            record.id, status=status, ended_at=self._clock(), **changes
        )

    def _event(
        self,
        deployment: str,
        kind: str,
        reason: str,
        payload: Mapping[str, Any],
        record: RetrainRecord | None = None,
        *,
        actor: str | None = None,
    ) -> None:
        body = dict(payload)
        if record is not None:
            body["retrain"] = record.id
        self._events.record(Event(self._clock(), kind, deployment, reason, body, actor or ACTOR))
