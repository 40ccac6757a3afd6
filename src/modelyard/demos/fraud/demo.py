"""``modelyard demo fraud``: the whole loop on one machine, from simulated card history to
a drift, a retrain that is promoted and a broken model that is rolled back.

The composition root of the demo. ``run_demo`` works in a folder of its own
(``<out>/home`` is a modelyard home on the embedded default, ``<out>/report`` the
report), through the same API and processes a user has:

1. **offline**: simulate days of card history, push it to the feature store, build a
   point-in-time training set, train and register the champion, deploy it as ``fraud``
   with its card features fetched at serving, as of each transaction's time;
2. **plan**: a retraining plan triggered by alerts, and (once the first drift check
   window is full of live traffic) an alert rule on input drift;
3. **serve**: start ``modelyard serve`` and ``modelyard worker`` on that home;
4. **live**: stream simulated transactions to the server (labels follow as feedback,
   late); the switches flip mid-way; the server's monitoring raises the alert, the
   worker retrains, gates, and rolls the new version out as a canary, which the server
   promotes. Then a teammate's model trained on inverted labels is rolled out by hand,
   and the server rolls it back;
5. **measure**: a load test of the deployed champion, the server's ``/metrics``;
6. **report**: the portfolio table and the story, as Markdown and HTML.

Ctrl-C (or ``stop``) ends the live phase early: traffic stops, both processes are
stopped, and the home stays readable by ``modelyard`` commands.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelyard.config import Settings, load_settings
from modelyard.demos.fraud.broken_candidate import register_broken_candidate
from modelyard.demos.fraud.features import REQUEST_INPUTS, request_columns
from modelyard.demos.fraud.live import LiveStats, drive
from modelyard.demos.fraud.offline import (
    DEPLOYMENT,
    EVENT_TIME,
    Champion,
    build_champion,
    split_by_time,
    training_data,
)
from modelyard.demos.fraud.report import DemoRecord, gather_report, write_report
from modelyard.demos.fraud.scenario import Scenario, Timeline
from modelyard.demos.fraud.services import Services
from modelyard.demos.fraud.simulator import SimulatorConfig, TransactionSimulator
from modelyard.demos.fraud.watch import Observation, observe
from modelyard.errors import ValidationError
from modelyard.loadtest.generator import LoadPlan, LoadResult, run_load
from modelyard.monitoring.alerts import save_rule
from modelyard.monitoring.rules import AlertRule
from modelyard.pipelines import GatePolicy, RetrainPlan
from modelyard.pipelines.plan import RETRAIN_ROLLOUT
from modelyard.routing import RolloutController, RolloutPolicy
from modelyard.runner.host import RunnerStores
from modelyard.runner.retraining import retraining_loop
from modelyard.yard import Yard

__all__ = ["DemoResult", "Progress", "run_demo"]

PIPELINE = "modelyard.demos.fraud.retraining:pipeline"
_MARKER = ".modelyard-fraud-demo"  # marks a folder this demo made and may replace
_POLL_S = 0.5
_AFTER_ROLLBACK_S = 2.0  # traffic kept after the rollback, so the split shows it


@dataclass(frozen=True)
class Progress:
    """What the live view shows: the phase, the traffic so far and the deployment."""

    phase: str
    elapsed_s: float
    timeline: Timeline
    stats: LiveStats | None = None
    observation: Observation | None = None


@dataclass(frozen=True)
class DemoResult:
    """Where the run left things, and whether its story completed."""

    out: Path
    home: Path
    report_markdown: Path
    report_html: Path
    record: DemoRecord
    interrupted: bool


def prepare_folder(out: Path) -> Path:
    """``out``, emptied if an earlier demo made it; refused if it holds anything else."""
    if out.exists() and any(out.iterdir()):
        if not (out / _MARKER).exists():
            raise ValidationError(
                f"{out} exists and was not made by the fraud demo: choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text("made by `modelyard demo fraud`; replaced by its next run\n")
    return out


def server_settings(scenario: Scenario) -> dict[str, str]:
    """The ``MODELYARD_*`` settings that give the server and worker the demo's pace."""
    return {
        "MODELYARD_MONITORING__CHECK_INTERVAL_S": str(scenario.monitor_interval_s),
        "MODELYARD_MONITORING__CHECK_WINDOW_S": str(scenario.monitor_window_s),
        "MODELYARD_RETRAINING__CHECK_INTERVAL_S": str(scenario.worker_interval_s),
        "MODELYARD_RETRAINING__SHUTDOWN_GRACE_S": "10",
    }


def retraining_plan(scenario: Scenario) -> RetrainPlan:
    """Retrain when an alert of the deployment fires, on the labelled traffic of the last
    ``retrain_window_days`` simulated days, at most once per run; the canary steps at
    the demo's pace."""
    rollout = replace(
        RETRAIN_ROLLOUT,
        step_weights=(10.0, 50.0, 100.0),
        interval_s=scenario.rollout_interval_s,
        min_requests=scenario.rollout_min_requests,
    )
    return RetrainPlan(
        DEPLOYMENT,
        PIPELINE,
        on_alert=True,
        window_days=scenario.retrain_window_days / scenario.speedup,  # in wall days
        seed=scenario.seed,
        cooldown_s=3_600.0,
        max_per_day=1,
        gate=GatePolicy(metric="roc_auc"),
        rollout=rollout,
    )


def drift_rule(scenario: Scenario) -> AlertRule:
    """Input drift in ``alert_after_checks`` checks in a row raises an alert (the plan's
    trigger): a drift that lasts, with the labels of the new traffic coming in."""
    return AlertRule(
        DEPLOYMENT,
        "input-drift",
        "dataset_drift",
        1.0,
        ">=",
        for_windows=scenario.alert_after_checks,
    )


def guarded_rollout(scenario: Scenario) -> RolloutPolicy:
    """A hand-started canary's policy: the defaults (at most 5% changed decisions), at the
    demo's pace."""
    return RolloutPolicy(
        step_weights=(10.0, 50.0, 100.0),
        interval_s=scenario.rollout_interval_s,
        min_requests=scenario.rollout_min_requests,
    )


class _Story:
    """The orchestrator's reading of the observations: which acts have happened."""

    def __init__(self, champion: int) -> None:
        self.first_champion = champion
        self.broken: int | None = None

    def promoted(self, seen: Observation) -> bool:
        return seen.champion != self.first_champion

    def rolled_back(self, seen: Observation) -> bool:
        return self.broken is not None and (
            seen.first("rollout.rollback", canary=self.broken) is not None
        )

    def phase(self, seen: Observation, simulated: float, timeline: Timeline) -> str:
        if self.broken is not None:
            if self.rolled_back(seen):
                return f"v{self.broken} rolled back"
            weight = f" at {seen.canary_weight:g}%" if seen.canary == self.broken else ""
            return f"broken candidate v{self.broken}: canary{weight}"
        if self.promoted(seen):
            return f"retrained v{seen.champion} promoted"
        if seen.canary is not None:
            return f"canary v{seen.canary} at {seen.canary_weight:g}%"
        if seen.first("retrain.started") is not None:
            return "retraining"
        if seen.first("alert") is not None:
            return "drift alert"
        if simulated >= timeline.drift_at:
            return "drift: the world changed"
        return "live: before the drift"


def run_demo(
    out: Path,
    scenario: Scenario,
    *,
    stop: threading.Event | None = None,
    show: Callable[[Progress], None] = lambda _: None,
    clock: Callable[[], float] = time.time,
) -> DemoResult:
    """Run the demo in ``out`` (see the module's docstring); ``show`` is called with the
    progress about twice a second. Returns the report's paths and figures."""
    stop = stop if stop is not None else threading.Event()
    began = clock()
    out = prepare_folder(out)
    home = out / "home"
    settings = load_settings(home=home, environ={})
    timeline = scenario.timeline(began)

    def progress(phase: str, **parts: Any) -> None:
        show(Progress(phase, clock() - began, timeline, **parts))

    config = SimulatorConfig(
        cards=scenario.cards,
        merchants=scenario.merchants,
        fraud_rate=scenario.fraud_rate,
        start=timeline.history_start,
        seed=scenario.seed,
        concept_drift_at=timeline.drift_at,
        data_drift_at=timeline.drift_at,
    )
    simulator = TransactionSimulator(config)
    progress("offline: simulating history, training the champion")
    with Yard(settings) as yard:
        champion = build_champion(
            yard,
            simulator,
            timeline.history_start,
            timeline.live_start,
            seed=scenario.seed,
            warm_up_s=timeline.train_start - timeline.history_start,
        )
    _plan(settings, scenario)
    progress("starting the server and the retraining worker")
    services = Services(home, DEPLOYMENT, server_settings(scenario))
    interrupted = False
    stats: LiveStats | None = None
    load: LoadResult | None = None
    metrics_text = ""
    live_ended = began
    try:
        services.start()
        stats, interrupted = _live(
            settings, services, simulator, scenario, timeline, champion, stop, progress
        )
        live_ended = clock()
        if not interrupted:
            progress("measuring throughput under load")
            load = _load_test(services.url, simulator, scenario, timeline)
            metrics_text = services.metrics_text()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress("stopping the server and the worker")
        services.stop()
    progress("writing the report")
    with Yard(settings) as yard:
        record = gather_report(
            yard,
            scenario=scenario,
            timeline=timeline,
            simulator=config,
            champion=champion,
            began=began,
            live_ended=live_ended,
            stats=stats,
            load=load,
            metrics_text=metrics_text,
            interrupted=interrupted,
        )
    markdown, page = write_report(out / "report", record)
    return DemoResult(out, home, markdown, page, record, interrupted)


def _plan(settings: Settings, scenario: Scenario) -> None:
    stores = RunnerStores(settings)
    try:
        retraining_loop(stores).configure(retraining_plan(scenario), actor="fraud-demo")
    finally:
        stores.close()


def _live(
    settings: Settings,
    services: Services,
    simulator: TransactionSimulator,
    scenario: Scenario,
    timeline: Timeline,
    champion: Champion,
    stop: threading.Event,
    progress: Callable[..., None],
) -> tuple[LiveStats | None, bool]:
    """Stream traffic until the story is told, the time limit or ``stop``; the traffic's
    figures, and whether the run was interrupted."""
    latest: list[LiveStats] = []
    finished: list[LiveStats] = []
    traffic_stop = threading.Event()

    def traffic() -> None:
        finished.append(
            drive(
                services.url,
                simulator,
                timeline.live_start,
                timeline.live_end,
                speedup=scenario.speedup,
                threads=scenario.threads,
                legit_delay_s=scenario.legit_label_delay_s,
                fraud_delay_s=scenario.fraud_label_delay_s,
                event_time=EVENT_TIME,
                split_at=timeline.drift_at,
                stop=traffic_stop,
                progress=latest.append,
            )
        )

    driver = threading.Thread(target=traffic, name="fraud-demo-traffic", daemon=True)
    story = _Story(champion.version.version)
    interrupted = False
    ends_at: float | None = None
    promoted_at: float | None = None
    # The first drift checks see a few seconds of traffic: a few simulated hours, whose
    # mix of hours is not the training days'. Alerts start once a check window is full.
    alerting = False
    warm_up_s = scenario.monitor_window_s + scenario.monitor_interval_s
    started = time.monotonic()
    driver.start()
    with Yard(settings) as yard:
        stores = RunnerStores(settings)
        try:
            while driver.is_alive():
                driver.join(_POLL_S)
                if stop.is_set():
                    interrupted = True
                    break
                seen = observe(yard.deployments, stores.monitoring, DEPLOYMENT, timeline.live_end)
                stats = latest[-1] if latest else None
                simulated = stats.simulated_time if stats else timeline.live_start
                progress(story.phase(seen, simulated, timeline), stats=stats, observation=seen)
                if not alerting and stats is not None and stats.elapsed_s >= warm_up_s:
                    save_rule(stores.monitoring, drift_rule(scenario), time.time())
                    alerting = True
                if story.broken is None and story.promoted(seen) and seen.canary is None:
                    promoted_at = promoted_at or time.monotonic()
                    # the new champion serves alone a while first: its figures are its own
                    if time.monotonic() - promoted_at >= scenario.rollout_interval_s:
                        story.broken = _ship_broken(yard, simulator, timeline, scenario)
                if ends_at is None and story.rolled_back(seen):
                    ends_at = time.monotonic() + _AFTER_ROLLBACK_S
                over_time = time.monotonic() - started > scenario.time_limit_s
                if over_time or (ends_at is not None and time.monotonic() >= ends_at):
                    break
        except KeyboardInterrupt:
            interrupted = True
        finally:
            traffic_stop.set()
            driver.join()
            stores.close()
    return (finished[-1] if finished else (latest[-1] if latest else None)), interrupted


def _ship_broken(
    yard: Yard, simulator: TransactionSimulator, timeline: Timeline, scenario: Scenario
) -> int:
    """Register the label-bug model and start its canary under the default guards."""
    history = simulator.generate(timeline.history_start, timeline.live_start)
    train, holdout = split_by_time(training_data(yard, history).since(timeline.train_start))
    version = register_broken_candidate(yard, train, holdout, seed=scenario.seed)
    RolloutController(yard.deployments).start(
        DEPLOYMENT,
        version.version,
        guarded_rollout(scenario),
        actor="teammate",
        reason=f"v{version.version}: retrained from the new labels export",
    )
    return version.version


def _load_test(
    url: str, simulator: TransactionSimulator, scenario: Scenario, timeline: Timeline
) -> LoadResult:
    """Closed-loop load on the deployment, with real transactions of the live window's
    last hour as bodies (their card features fetched as of their own times)."""
    recent = simulator.generate(timeline.live_end - 3_600.0, timeline.live_end)
    inputs = request_columns(recent)
    variants = []
    for i in range(min(200, len(recent["card_id"]))):
        row = {
            "card_id": str(recent["card_id"][i]),
            EVENT_TIME: float(recent["event_time"][i]),
            **{name: float(inputs[name][i]) for name in REQUEST_INPUTS},
        }
        body = json.dumps({"instances": [row]}).encode()
        variants.append((f"/v1/models/{DEPLOYMENT}:predict", body))
    plan = LoadPlan(
        url=url,
        path=variants[0][0],
        body=variants[0][1],
        connections=scenario.load_connections,
        duration_s=scenario.load_seconds,
        warmup_s=1.0,
        headers={"content-type": "application/json"},
        variants=tuple(variants),
    )
    return run_load(plan)
