"""The recommender demo's composition root: simulate, train, serve, A/B test, close the loop.

1. A ``World`` of users with hidden tastes; its pre-period is the training log, each
   user's latest two interactions held out for offline NDCG@10 / recall@10.
2. Popularity (v1) and implicit ALS (v2) registered as ``shop``, both exploring with a
   small epsilon so each shown item's propensity is logged; deployment ``shop`` runs an
   A/B test between them, sticky by the request's ``user``.
3. ``modelyard serve`` answers ``:recommend``; each simulated day every visitor asks,
   clicks with position bias, and posts the clicks by request id. After each day the
   test is looked at (always-valid, so daily looks are fine); it stops when it may.
4. The winner is promoted. The lists and clicks are read back from the server's
   inference log: per-arm figures, and MF judged off-policy on the popularity arm's logs.
5. The loop: the logged clicks join the training log, MF is retrained (v3) and enters
   an A/B test against the champion, promoted only if it wins.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from modelyard.config import load_settings
from modelyard.demos.fraud.services import Services
from modelyard.demos.recommender.traffic import Day, visit_day
from modelyard.monitoring.feedback_join import request_outcomes
from modelyard.recommend import (
    AbReport,
    InteractionLog,
    OfflineQuality,
    OffPolicyEstimate,
    RecommenderModel,
    Served,
    World,
    arm_figures,
    estimate,
    evaluate,
    example_requests,
    join_clicks,
    judge_lists,
    train_mf,
    train_popularity,
)
from modelyard.recommend.feedback import ArmFigures, Click
from modelyard.recommend.logged import clicks_as_interactions, logged_lists
from modelyard.routing import LoggedOutcomes, Sequential
from modelyard.routing.experiment_reports import ExperimentReporter
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.yard import Yard

__all__ = ["FAST", "SMOKE", "OffPolicyCheck", "Phase", "RecommenderDemo", "Scenario", "run_demo"]

MODEL = DEPLOYMENT = "shop"  # one name: `serve --model shop` serves the deployment
DESIGN = Sequential(tau=0.05, min_samples_per_arm=200)


@dataclass(frozen=True)
class Scenario:
    users: int = 4000
    items: int = 300
    history: int = 12
    visitors_per_day: int = 600
    k: int = 10
    max_days: int = 10
    loop_days: int = 4
    epsilon: float = 0.1
    seed: int = 7


FAST = Scenario(users=1500, items=150, visitors_per_day=300, max_days=6, loop_days=2)
# The smallest world where MF still wins the first test in two looks: for tests.
SMOKE = Scenario(users=800, items=100, history=10, visitors_per_day=300, max_days=4, loop_days=1)


@dataclass
class Phase:
    """One A/B test: its arms, each day's traffic and look, and how it ended."""

    title: str
    control: str
    treatment: str
    weights: dict[str, float]
    days: list[Day] = field(default_factory=list)
    looks: list[AbReport] = field(default_factory=list)
    promoted: str | None = None
    logged: dict[str, Any] = field(default_factory=dict)
    # what the server's inference log holds of this phase: its lists and their clicks
    log_served: list[Served] = field(default_factory=list)
    log_clicks: list[Click] = field(default_factory=list)

    @property
    def served(self) -> list[Served]:
        return [s for day in self.days for s in day.served]

    def lists(self) -> tuple[list[Served], list[Click]]:
        """Lists and clicks from the inference log (the client's record until it is read)."""
        if self.log_served:
            return self.log_served, self.log_clicks
        return self.served, [c for day in self.days for c in day.clicks]

    def figures(self, catalogue: int) -> list[ArmFigures]:
        served, clicks = self.lists()
        return arm_figures(served, join_clicks(served, clicks), catalogue)


@dataclass(frozen=True)
class OffPolicyCheck:
    """A candidate's clicks per list estimated on another arm's logs, and what it got live."""

    candidate: str
    logs: str
    estimate: OffPolicyEstimate
    truth: float  # the simulator's expected top-slot clicks of the candidate on those lists
    live: float  # the candidate's own arm, top slot, with its exploration


def _off_policy(
    name: str, model: RecommenderModel, world: World, seen: dict[str, list[str]],
    logged_in: Phase, arm: str, live_in: Phase, live_arm: str,
) -> OffPolicyCheck:  # fmt: skip
    """``seen``: what each user had seen when the logs were served; the candidate must rank
    as it would have then (its own training may include the very clicks being replayed)."""
    greedy = model.with_epsilon(0.0)
    everything, clicks = logged_in.lists()
    logged = [s for s in everything if s.arm == arm]

    def candidate(served: Served, k: int) -> list[str]:
        hidden = seen.get(served.user, [])
        return greedy.recommend(served.user, k, hidden, exclude_seen=False).items

    found = estimate(logged, join_clicks(logged, clicks), candidate, slots=1)
    truth = np.mean([world.appeal(int(s.user[1:]))[int(candidate(s, 1)[0][1:])] for s in logged])
    served, posted = live_in.lists()
    live = [s for s in served if s.arm == live_arm]
    live_clicks = join_clicks(live, posted).clicks
    rate = sum(0 in p for p in live_clicks.values()) / max(len(live), 1)
    return OffPolicyCheck(name, arm, found, float(truth), rate)


@dataclass
class RecommenderDemo:
    """Everything the report shows."""

    scenario: Scenario
    offline: dict[str, OfflineQuality]
    phases: list[Phase]
    off_policy: list[OffPolicyCheck]
    retrained_rows: int
    seconds: float


def _look_every_day(
    phase: Phase, client: httpx.Client, world: World, scenario: Scenario,
    rng: np.random.Generator, days: int, show: Callable[[str], None],
) -> None:  # fmt: skip
    for number in range(days):
        visitors = rng.choice(world.n_users, scenario.visitors_per_day, replace=False)
        at = time.time()
        phase.days.append(visit_day(client, DEPLOYMENT, world, visitors, scenario.k, rng, at))
        clicks = [c for d in phase.days for c in d.clicks]
        previous = phase.looks[-1].report if phase.looks else None
        look = judge_lists(phase.served, clicks, phase.control, phase.weights, DESIGN, previous)
        phase.looks.append(look)
        show(f"{phase.title}: day {number + 1}: {look.reason}")
        if look.may_stop:
            return


def _wait_for_version(client: httpx.Client, version: int, deadline_s: float = 30.0) -> None:
    """Until the server routes some users to ``version`` (it polls the deployment)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for probe in range(20):
            answer = client.post(
                f"/v1/models/{DEPLOYMENT}:recommend", json={"user": f"probe{probe}", "k": 1}
            )
            if answer.status_code == 200 and answer.json()["model_version"] == str(version):
                return
        time.sleep(0.2)
    raise TimeoutError(f"the server did not route to version {version} within {deadline_s:g} s")


def _read_log(yard: Yard, phase: Phase, deadline_s: float = 30.0) -> None:
    """The phase's lists and clicks from the inference log, once it holds them all (it
    runs about a second behind the answers)."""
    start = min(s.at for s in phase.served) - 1.0
    end = time.monotonic() + deadline_s
    while True:
        served, clicks = logged_lists(yard.inference_log, DEPLOYMENT, start, time.time() + 1)
        ids = {s.request_id for s in phase.served}
        phase.log_served = [s for s in served if s.request_id in ids]
        phase.log_clicks = [c for c in clicks if c.request_id in ids]
        if len(phase.log_served) >= len(ids) or time.monotonic() > end:
            return
        time.sleep(0.5)


def _logged_report(yard: Yard, served: int, deadline_s: float = 30.0) -> dict[str, Any]:
    """The deployment's own experiment report, from the inference log joined to feedback
    (what ``modelyard ab report`` shows), once the log holds what the phase served."""
    deployment = yard.deployments.get(DEPLOYMENT)
    experiment = deployment.config.experiment
    assert experiment is not None
    source = LoggedOutcomes(partial(request_outcomes, yard.inference_log))
    reporter = ExperimentReporter(SqlDeploymentRepository(yard.db), source)
    end = time.monotonic() + deadline_s
    while True:
        report = reporter.report(DEPLOYMENT, experiment, actor="demo")
        logged = sum(arm.n for arm in report.arms)
        if logged >= served or time.monotonic() > end:
            return {"logged_lists": logged, "verdict": report.verdict.value,
                    "winner": report.winner, "reason": report.reason}  # fmt: skip
        time.sleep(0.5)


def _register(
    yard: Yard, model: RecommenderModel, quality: OfflineQuality, train: InteractionLog
) -> int:
    """A tracked run (its data fingerprint, offline figures) and the version it registers."""
    metrics = {"ndcg_at_10": quality.ndcg, "recall_at_10": quality.recall}
    with yard.start_run(f"{MODEL}-{model.kind}") as run:
        run.log_params({"kind": model.kind, "epsilon": model.epsilon, "rows": len(train)})
        run.log_dataset("interactions", {"user": train.users, "item": train.items})
        run.log_metrics(metrics)
        version = yard.register_model(
            MODEL, model, example_requests(model), metrics=metrics, run=run
        )
    return version.version


def run_demo(out: Path, scenario: Scenario, show: Callable[[str], None] = print) -> RecommenderDemo:
    """Run the whole story in ``out`` (replaced), return its figures."""
    began = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    home = out / "home"
    home.mkdir(parents=True)
    rng = np.random.default_rng(scenario.seed)
    world = World.create(scenario.users, scenario.items, seed=scenario.seed)
    catalogue = world.catalogue()
    train, held = world.history(scenario.history, rng).split_last(2)

    def quality(model: RecommenderModel) -> OfflineQuality:
        greedy = model.with_epsilon(0.0)
        return evaluate(lambda u, k: greedy.recommend(u, k).items, held, 10, len(catalogue))

    popularity = train_popularity(train, items=catalogue, epsilon=scenario.epsilon)
    mf = train_mf(train, items=catalogue, epsilon=scenario.epsilon, seed=scenario.seed)
    offline = {"popularity": quality(popularity), "mf": quality(mf)}
    show(
        f"offline NDCG@10: popularity {offline['popularity'].ndcg:.3f}, MF {offline['mf'].ndcg:.3f}"
    )

    settings = {"MODELYARD_SERVING__POLL_INTERVAL_S": "0.5"}
    with Yard(load_settings(home=home, environ={})) as yard:
        v_pop = _register(yard, popularity, offline["popularity"], train)
        v_mf = _register(yard, mf, offline["mf"], train)
        yard.deployments.create(DEPLOYMENT, MODEL, v_pop, routing_key="field:user")
        yard.deployments.start_experiment(
            DEPLOYMENT, [("popularity", v_pop, 50.0), ("mf", v_mf, 50.0)], DESIGN,
            metric="clicked", actor="demo",
        )  # fmt: skip
        first = Phase("popularity vs MF", "popularity", "mf", {"popularity": 50.0, "mf": 50.0})
        with (
            Services(home, DEPLOYMENT, settings) as services,
            httpx.Client(base_url=services.url, timeout=30) as client,
        ):
            services.start()
            _look_every_day(first, client, world, scenario, rng, scenario.max_days, show)
            first.logged = _logged_report(yard, len(first.served))
            _read_log(yard, first)
            winner = first.looks[-1].winner if first.looks[-1].may_stop else None
            yard.deployments.stop_experiment(
                DEPLOYMENT, promote=winner, actor="demo", reason=first.looks[-1].reason
            )
            first.promoted = winner
            show(f"promoted: {winner or 'nothing (no decision)'}")

            # Off-policy: MF judged on the popularity arm's logs, before its live figure counts.
            seen: dict[str, list[str]] = {}
            for user, item in zip(train.users.tolist(), train.items.tolist(), strict=True):
                seen.setdefault(user, []).append(item)
            checks = [_off_policy("MF", mf, world, seen, first, "popularity", first, "mf")]

            # The loop: the clicks the server logged become training rows; the retrained MF
            # must win an A/B test to ship.
            grown = train.extend(clicks_as_interactions(first.log_served, first.log_clicks))
            retrained = train_mf(
                grown, items=catalogue, epsilon=scenario.epsilon, seed=scenario.seed + 1
            )
            v_new = _register(yard, retrained, quality(retrained), grown)
            champion = yard.deployments.get(DEPLOYMENT).config.champion
            yard.deployments.start_experiment(
                DEPLOYMENT, [("champion", champion, 50.0), ("challenger", v_new, 50.0)], DESIGN,
                metric="clicked", actor="demo",
            )  # fmt: skip
            _wait_for_version(client, v_new)
            second = Phase("champion vs retrained", "champion", "challenger",
                           {"champion": 50.0, "challenger": 50.0})  # fmt: skip
            _look_every_day(second, client, world, scenario, rng, scenario.loop_days, show)
            last = second.looks[-1]
            promote = "challenger" if last.may_stop and last.winner == "challenger" else None
            second.logged = _logged_report(yard, len(second.served))
            _read_log(yard, second)
            yard.deployments.stop_experiment(
                DEPLOYMENT, promote=promote, actor="demo",
                reason=last.reason if promote else f"challenger not promoted: {last.reason}",
            )  # fmt: skip
            second.promoted = promote
            show(f"retrained model: {'promoted' if promote else 'kept out: it did not win'}")
            # The retrained model judged on the champion's logs of the first test, then live.
            checks.append(
                _off_policy(
                    "retrained MF", retrained, world, seen, first, "mf", second, "challenger"
                )
            )
    return RecommenderDemo(
        scenario, offline, [first, second], checks,
        len(grown) - len(train), time.monotonic() - began,
    )  # fmt: skip
