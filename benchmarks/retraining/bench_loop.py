"""Decision quality of the retraining loop (issue 17) on simulated streams; prints a table.

    .venv/bin/python benchmarks/retraining/bench_loop.py [--seeds 50] [--quick] [--jobs 2]
        [--seed 17] [--season-sd 0.3] [--window-days 7] [--json PATH]

No server, database, clock or sleep: the loop's pure decisions are driven hour by
simulated hour. ``triggers.decide`` says when to retrain, ``gate.judge`` whether the
candidate may go out, ``canary.decide`` whether it is promoted; ``detect_drift`` and
``rules.evaluate`` give the signals the monitor would.

The stream: a binary classification with 8 gaussian features and about 2,000 events a
simulated day (the busiest hour three times the quietest). Labels are drawn from
sigmoid(3 * x.w) (the best possible accuracy is about 84%) and arrive one hour after
their event. Feature x0 has a daily cycle (its mean moves by +/- ``--season-sd`` sd
with the hour) that every training window contains but an hourly window does not:
natural movement that may raise false drift alarms. Each stream runs 14 days. On a
change stream the concept changes on day 7 at 10:00: w rotates by 40-90 degrees
(seeded), on even seeds alone ("boundary": the inputs look the same, only the
labels' rule moved), on odd seeds with a 0.6 sd shift of two features' means
("boundary+inputs"). No-change streams are the same without the change.

Every retrain, the loop's and the baseline's, fits a LogisticRegression on the plan's
window (``--window-days``) of events labelled by then, the newest 20% by time held
out. The champion at the start was trained the same way on the window before.

The loop: ``RetrainPlan(on_drift=True, on_alert=True)``, defaults otherwise (two
drifted checks in a row, 6 h cool-down, 4 retrains a day at most) but the window.
Every hour the monitor checks the champion's traffic of the hour against a sample of
at most 5,000 of its training rows (``detect_drift``, ``DriftConfig()``, at least 20
rows), and its accuracy on the previous hour's traffic, now labelled (``AlertRule``
accuracy_drop > 0.10, i.e. 10 points under its held-out accuracy, 3 hours in a row).
A started retrain is judged by ``gate.judge`` (``GatePolicy()``: ROC AUC above the
champion's on the held-out rows at the lower bound of a 95% paired bootstrap,
``evaluation.gain_lower_bound``); a passing candidate goes out as a canary under the
plan's default policy (steps 5/25/50/100, 100 requests an arm, any share of changed
decisions) with one analysis an hour (``interval_s=3600``; the default 60 s sees one
request at this traffic). Its
windows hold what the runner would read: requests, no errors, latencies from one
lognormal for both arms, the served scores, the champion's decisions on the canary's
requests, and 0/1 losses of the rows whose label has arrived. Drift streaks and alerts
count from the last retrain or promotion (a new champion has a new reference). Two
variants: the alert on a fixed floor (hourly accuracy < 0.75, 3 hours in a row)
instead of the drop, and that floor alert alone, without the drift trigger (hourly
drift checks against an all-day reference raise false alarms on a daily cycle).
Training takes no simulated time.

The baseline: a fixed daily schedule (cron ``0 3 * * *`` through ``schedule_due`` and
``decide``), no triggers, the same window and training, its candidate promoted at once.

Measured per configuration. On change streams: the share where a better model (2
points of accuracy more than the model serving at the change, on 5,000 fresh events
of the new concept, by their true probabilities) was promoted after the change, and
how many hours after; the share where a promoted model came within 2 points of the
best possible accuracy; the accuracy of the served decisions (canary's included)
before the change, after it until that promotion, after the promotion, and after the
change in all (medians over streams); retrains and how they ended. On no-change
streams: retrains started and promotions (target: none in 50).

The streams run in ``--jobs`` processes (2 by default: 164 s instead of 279 s with one,
on the shared 2-core machine, the same figures), BLAS held to one thread each.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from modelyard.monitoring import DriftConfig, detect_drift  # noqa: E402
from modelyard.monitoring.live_metrics import score_outputs  # noqa: E402
from modelyard.monitoring.rules import AlertRule, AlertState, Figures, evaluate  # noqa: E402
from modelyard.pipelines.evaluation import gain_lower_bound  # noqa: E402
from modelyard.pipelines.gate import GateEvidence, judge  # noqa: E402
from modelyard.pipelines.plan import RetrainPlan  # noqa: E402
from modelyard.pipelines.triggers import Signals, decide, schedule_due  # noqa: E402
from modelyard.routing import canary  # noqa: E402
from modelyard.routing.analysis import ArmTraffic  # noqa: E402

FloatArray = npt.NDArray[np.float64]
HOUR_S = 3_600.0
DAY_S = 86_400.0
START = datetime(2027, 1, 4, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
DAYS = 14
CHANGE_AT = START + 7 * DAY_S + 10 * HOUR_S
FEATURES = 8
EVENTS_PER_DAY = 2_000
SIGNAL = 3.0  # logit = SIGNAL * x.w
SHIFT_SD = 0.6  # the "boundary+inputs" change also moves two features' means
ANGLES_DEG = (40.0, 90.0)
LABEL_DELAY_S = HOUR_S
HOLDOUT_SHARE = 0.2
REFERENCE_ROWS = 5_000  # what the registry keeps as a version's sample
MIN_WINDOW_ROWS = 20
RESERVOIR = 2_000
LATENCY_MEDIAN_MS, LATENCY_SIGMA = 4.0, 0.4
GATE_LATENCY_MS = 0.5  # the gate's latency check is not what this benchmark judges
EVAL_ROWS = 5_000
BETTER_BY = 0.02
RECOVERED_WITHIN = 0.02
# The loop's alert: the champion's accuracy on an hour's labelled traffic more than 10
# points under its held-out accuracy, 3 hours in a row; or, in the last configuration,
# under a fixed floor of 0.75.
DROP_RULE = AlertRule(
    deployment="bench", name="accuracy", metric="accuracy_drop", threshold=0.10, for_windows=3
)
FLOOR_RULE = AlertRule(
    deployment="bench",
    name="accuracy",
    metric="accuracy",
    threshold=0.75,
    comparison="<",
    for_windows=3,
)


@dataclass(frozen=True)
class Configuration:
    """A plan and the alert rule its ``on_alert`` listens to (None: no monitoring)."""

    plan: RetrainPlan
    rule: AlertRule | None


def configurations(window_days: float) -> dict[str, Configuration]:
    """The loop as a user would first set it up (drift and drop-alert triggers, the plan's
    default gate and canary, one analysis an hour); the same alerting on a fixed accuracy
    floor instead of a drop from the held-out accuracy; the floor alert alone, without the
    drift trigger; the daily cron."""
    loop = RetrainPlan(
        deployment="bench",
        pipeline="bench:pipeline",
        on_drift=True,
        on_alert=True,
        window_days=window_days,
    )
    loop = replace(loop, rollout=replace(loop.rollout, interval_s=HOUR_S))
    alert_only = replace(loop, on_drift=False)
    cron = RetrainPlan(
        deployment="bench",
        pipeline="bench:pipeline",
        schedule="0 3 * * *",
        window_days=window_days,
    )
    return {
        "loop": Configuration(loop, DROP_RULE),
        "loop, floor alert": Configuration(loop, FLOOR_RULE),
        "floor alert, no drift trigger": Configuration(alert_only, FLOOR_RULE),
        "daily cron (baseline)": Configuration(cron, None),
    }


@dataclass(frozen=True)
class Setup:
    """What the command line may change: the daily cycle's size and the training window."""

    season_sd: float = 0.3
    window_days: float = 7.0


# --- the stream ---------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """Events sorted by time (the training history first), and what the change did.

    ``hours[h]`` is the index of the first event of simulated hour ``h`` (``hours[-1]``:
    the end). ``u`` draws each event's arm; ``eval_x`` / ``eval_p`` are fresh events of
    the concept after the change, with their true probabilities.
    """

    seed: int
    kind: str  # "none", "boundary" or "boundary+inputs"
    t: FloatArray
    x: FloatArray
    y: npt.NDArray[np.int64]
    u: FloatArray
    latency_ms: FloatArray
    hours: npt.NDArray[np.intp]
    eval_x: FloatArray
    eval_p: FloatArray

    @property
    def change_at(self) -> float | None:
        return None if self.kind == "none" else CHANGE_AT


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def _features(
    rng: np.random.Generator, t: FloatArray, season_sd: float, shift: FloatArray | None
) -> FloatArray:
    x = rng.normal(size=(t.size, FEATURES))
    x[:, 0] += season_sd * np.sin(2 * np.pi * (t - START) / DAY_S)
    if shift is not None:
        x += shift
    return x


def make_stream(seed: int, kind: str, history_days: float, season_sd: float) -> Stream:
    """One stream of ``DAYS`` days after ``history_days`` of training history."""
    rng = np.random.default_rng(seed)
    hours = np.arange(-round(history_days * 24), DAYS * 24)
    rate = EVENTS_PER_DAY / 24 * (1 + 0.5 * np.sin(2 * np.pi * ((hours % 24) - 9) / 24))
    counts = rng.poisson(rate)
    starts = START + np.repeat(hours * HOUR_S, counts)
    t = np.sort(starts + rng.uniform(0.0, HOUR_S, starts.size))

    before = rng.normal(size=FEATURES)
    before /= np.linalg.norm(before)
    across = rng.normal(size=FEATURES)
    across -= (across @ before) * before
    across /= np.linalg.norm(across)
    angle = np.radians(rng.uniform(*ANGLES_DEG))
    after = np.cos(angle) * before + np.sin(angle) * across
    shift = np.zeros(FEATURES)
    moved = rng.choice(FEATURES, size=2, replace=False)
    shift[moved] = SHIFT_SD * rng.choice([-1.0, 1.0], size=2)
    if kind != "boundary+inputs":
        shift[:] = 0.0
    if kind == "none":
        after = before

    changed = t >= CHANGE_AT
    x = _features(rng, t, season_sd, None)
    x[changed] += shift
    logit = SIGNAL * np.where(changed, x @ after, x @ before)
    y = (rng.random(t.size) < _sigmoid(logit)).astype(np.int64)

    eval_t = CHANGE_AT + rng.uniform(0.0, DAY_S, EVAL_ROWS)
    eval_x = _features(rng, eval_t, season_sd, shift)
    first = np.searchsorted(t, START)
    edges = first + np.concatenate([[0], np.cumsum(counts[hours >= 0])])
    return Stream(
        seed=seed,
        kind=kind,
        t=t,
        x=x,
        y=y,
        u=rng.random(t.size),
        latency_ms=rng.lognormal(np.log(LATENCY_MEDIAN_MS), LATENCY_SIGMA, t.size),
        hours=edges.astype(np.intp),
        eval_x=eval_x,
        eval_p=_sigmoid(SIGNAL * (eval_x @ after)),
    )


# --- models and the gate ------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """A fitted logistic regression, with what the registry keeps of it: a reference
    sample of its training rows and its held-out accuracy."""

    version: int
    trained_at: float
    coef: FloatArray
    intercept: float
    reference: dict[str, FloatArray]
    holdout_accuracy: float

    def score(self, x: FloatArray) -> FloatArray:
        return _sigmoid(x @ self.coef + self.intercept)


@dataclass(frozen=True)
class Training:
    model: Model
    holdout_x: FloatArray
    holdout_y: npt.NDArray[np.int64]


def train(stream: Stream, plan: RetrainPlan, now: float, version: int) -> Training:
    """Fit on the labelled events of ``plan``'s window ending ``now``; newest 20% held out."""
    lo = np.searchsorted(stream.t, now - plan.window_s)
    hi = np.searchsorted(stream.t, now - LABEL_DELAY_S, side="right")
    x, y = stream.x[lo:hi], stream.y[lo:hi]
    cut = round(x.shape[0] * (1 - HOLDOUT_SHARE))
    fitted = LogisticRegression().fit(x[:cut], y[:cut])
    rows = np.random.default_rng([stream.seed, version]).permutation(cut)[:REFERENCE_ROWS]
    model = Model(
        version=version,
        trained_at=now,
        coef=fitted.coef_[0].astype(np.float64),
        intercept=float(fitted.intercept_[0]),
        reference={f"x{j}": x[rows, j] for j in range(FEATURES)},
        holdout_accuracy=0.0,
    )
    accuracy = float(np.mean((model.score(x[cut:]) >= 0.5) == y[cut:]))
    return Training(replace(model, holdout_accuracy=accuracy), x[cut:], y[cut:])


def gate(plan: RetrainPlan, training: Training, champion: Model) -> tuple[bool, str]:
    """``gate.judge`` on the held-out rows: the candidate's metrics against the champion's."""
    x, y = training.holdout_x, training.holdout_y
    ours = training.model.score(x)
    theirs = champion.score(x)
    metrics = score_outputs({"score": ours}, y)
    baseline = score_outputs({"score": theirs}, y)
    assert metrics is not None
    assert baseline is not None
    evidence = GateEvidence(
        candidate=metrics.metrics,
        champion=baseline.metrics,
        holdout_rows=int(y.size),
        non_finite_outputs=int((~np.isfinite(ours)).sum()),
        latency_p99_ms=GATE_LATENCY_MS,
        gain_lower_bound=gain_lower_bound(plan.gate, {"score": ours}, {"score": theirs}, y),
    )
    result = judge(plan.gate, evidence)
    return result.passed, result.reason


def expected_accuracy(model: Model, stream: Stream) -> float:
    """The model's accuracy on the concept after the change (true probabilities)."""
    decided = model.score(stream.eval_x) >= 0.5
    return float(np.mean(np.where(decided, stream.eval_p, 1 - stream.eval_p)))


# --- serving and monitoring ---------------------------------------------------------


@dataclass
class Served:
    """Per event of the horizon: who answered and how (history rows stay unset)."""

    version: npt.NDArray[np.int64]
    canary: npt.NDArray[np.bool_]
    score: FloatArray
    correct: npt.NDArray[np.bool_]
    changed: npt.NDArray[np.bool_]  # the champion would have decided otherwise

    @classmethod
    def empty(cls, n: int) -> Served:
        return cls(
            np.full(n, -1, dtype=np.int64),
            np.zeros(n, dtype=bool),
            np.zeros(n),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=bool),
        )


def serve(
    stream: Stream,
    served: Served,
    hour: int,
    champion: Model,
    candidate: Model | None,
    weight: float,
) -> None:
    """Answer the events of ``hour``: the canary gets the share ``weight`` (percent)."""
    rows = slice(stream.hours[hour], stream.hours[hour + 1])
    x = stream.x[rows]
    ours = champion.score(x)
    to_canary = np.zeros(ours.size, dtype=bool)
    theirs = ours
    if candidate is not None:
        theirs = candidate.score(x)
        to_canary = stream.u[rows] < weight / 100.0
    score = np.where(to_canary, theirs, ours)
    served.version[rows] = np.where(
        to_canary, candidate.version if candidate else 0, champion.version
    )
    served.canary[rows] = to_canary
    served.score[rows] = score
    served.correct[rows] = (score >= 0.5) == (stream.y[rows] == 1)
    served.changed[rows] = to_canary & ((theirs >= 0.5) != (ours >= 0.5))


def arm_traffic(
    stream: Stream, served: Served, since: float, now: float, canary_arm: bool
) -> ArmTraffic:
    """One arm's window ``[since, now)`` as the runner would hand it to ``canary.decide``."""
    lo, hi = np.searchsorted(stream.t, since), np.searchsorted(stream.t, now)
    mine = served.canary[lo:hi] == canary_arm
    labelled = mine & (stream.t[lo:hi] + LABEL_DELAY_S <= now)
    latencies = stream.latency_ms[lo:hi][mine][-RESERVOIR:]
    n = int(mine.sum())
    return ArmTraffic(
        request_count=n,
        error_count=0,
        latency_samples_ms=latencies,
        prediction_sample=served.score[lo:hi][mine][-RESERVOIR:],
        decisions_compared=n if canary_arm else 0,
        decisions_changed=int(served.changed[lo:hi][mine].sum()) if canary_arm else 0,
        losses=(~served.correct[lo:hi][labelled]).astype(np.float64),
        task="classification",
    )


@dataclass
class Monitor:
    """The champion's monitoring signals since the last retrain or promotion."""

    drifted_in_a_row: int = 0
    drift_reason: str = ""
    alert: str | None = None
    alerts: AlertState = field(default_factory=AlertState)

    def reset(self) -> None:
        self.drifted_in_a_row, self.drift_reason, self.alert = 0, "", None


DriftCache = dict[tuple[int, float, int, bytes], tuple[str, ...] | None]


def drift_check(
    stream: Stream, champion: Model, hour: int, mine: npt.NDArray[np.bool_], cache: DriftCache
) -> tuple[str, ...] | None:
    """``detect_drift`` of the champion's rows of ``hour`` against its reference sample:
    the drifted features (``("joint",)`` for the multivariate test alone), None if no
    drift. The configurations of one stream often ask the same question: asked once."""
    key = (champion.version, champion.trained_at, hour, np.packbits(mine).tobytes())
    if key not in cache:
        live = stream.x[stream.hours[hour] : stream.hours[hour + 1]][mine]
        report = detect_drift(
            champion.reference,
            {f"x{j}": live[:, j] for j in range(FEATURES)},
            DriftConfig(),
            rng=hour,
        )
        drifted = report.drifted_features or ("joint",)
        cache[key] = drifted if report.dataset_drift else None
    return cache[key]


def monitor(
    stream: Stream,
    served: Served,
    hour: int,
    champion: Model,
    state: Monitor,
    rule: AlertRule,
    cache: DriftCache,
) -> None:
    """The hourly monitoring pass over the champion's traffic: drift of the hour's rows,
    accuracy of the previous hour's (their labels have just arrived)."""
    now = START + (hour + 1) * HOUR_S
    rows = slice(stream.hours[hour], stream.hours[hour + 1])
    mine = served.version[rows] == champion.version
    if mine.sum() >= MIN_WINDOW_ROWS:
        drifted = drift_check(stream, champion, hour, mine, cache)
        if drifted is not None:
            state.drifted_in_a_row += 1
            state.drift_reason = "drifted: " + ", ".join(drifted)
        else:
            state.drifted_in_a_row = 0
    if hour == 0:
        return
    rows = slice(stream.hours[hour - 1], stream.hours[hour])
    mine = served.version[rows] == champion.version
    if mine.sum() < MIN_WINDOW_ROWS:
        return
    accuracy = float(served.correct[rows][mine].mean())
    values = {"accuracy": accuracy, "accuracy_drop": champion.holdout_accuracy - accuracy}
    seen = Figures("bench", champion.version, values)
    fired, state.alerts = evaluate([rule], [seen], state.alerts, now)
    if fired and state.alert is None:
        state.alert = fired[0].reason


# --- one run of a plan over a stream ------------------------------------------------


@dataclass(frozen=True)
class Retrain:
    """One retrain: when it started, why, and how it ended (``outcome``: "gate failed",
    "promoted", "rolled back", "running at the end" or, for the cron, "promoted
    directly"); ``canary_h``: how long its canary ran."""

    at: float
    trigger: str
    outcome: str
    detail: str = ""
    canary_h: float | None = None


@dataclass
class Run:
    retrains: list[Retrain]
    promotions: list[tuple[float, Model]]
    served: Served
    initial: Model


def run(stream: Stream, setting: Configuration, initial: Model, cache: DriftCache) -> Run:
    """Drive one configuration over the stream, hour by hour."""
    plan = setting.plan
    served = Served.empty(stream.t.size)
    result = Run([], [], served, initial)
    champion, candidate = initial, None
    rollout: canary.RolloutState | None = None
    state = Monitor()
    starts: list[float] = []
    pending: tuple[float, str] | None = None  # the retrain whose canary runs
    last_checked = START
    versions = iter(range(initial.version + 1, 1_000_000))
    for hour in range(len(stream.hours) - 1):
        now = START + (hour + 1) * HOUR_S
        weight = rollout.weight if rollout is not None and rollout.active else 0.0
        serve(stream, served, hour, champion, candidate, weight)

        if rollout is not None and rollout.active and candidate is not None and pending:
            since = rollout.window_started_at
            verdict = canary.decide(
                plan.rollout,
                rollout,
                arm_traffic(stream, served, since, now, canary_arm=False),
                arm_traffic(stream, served, since, now, canary_arm=True),
                now,
            )
            rollout = verdict.new_state
            if rollout.phase is canary.Phase.PROMOTED:
                champion, candidate = candidate, None
                result.promotions.append((now, champion))
                hours = (now - pending[0]) / HOUR_S
                result.retrains.append(Retrain(*pending, "promoted", canary_h=hours))
                state.reset()
            elif not rollout.active:
                candidate = None
                hours = (now - pending[0]) / HOUR_S
                harmful = (canary.Outcome.FAILED, canary.Outcome.BREACHED)
                checks = ", ".join(c.name for c in verdict.checks if c.outcome in harmful)
                result.retrains.append(Retrain(*pending, "rolled back", checks, hours))

        if setting.rule is not None:
            monitor(stream, served, hour, champion, state, setting.rule, cache)
        due = schedule_due(plan, last_checked, now)
        last_checked = now
        signals = Signals(
            now=now,
            retrain_starts=tuple(starts),
            rollout_active=rollout is not None and rollout.active,
            drifted_in_a_row=state.drifted_in_a_row,
            drift_reason=state.drift_reason,
            alert=state.alert,
            schedule_due_at=due,
        )
        decision = decide(plan, signals)
        if not decision.start:
            continue
        assert decision.trigger is not None
        starts.append(now)
        state.reset()
        training = train(stream, plan, now, next(versions))
        if plan.schedule is not None:  # the baseline: promoted as soon as trained
            champion = training.model
            result.promotions.append((now, champion))
            result.retrains.append(Retrain(now, decision.trigger, "promoted directly"))
            continue
        passed, reason = gate(plan, training, champion)
        if not passed:
            result.retrains.append(Retrain(now, decision.trigger, "gate failed", reason))
            continue
        candidate, pending = training.model, (now, decision.trigger)
        rollout = canary.start_rollout(plan.rollout, now)
    if candidate is not None and pending:
        result.retrains.append(Retrain(*pending, "running at the end"))
    return result


# --- figures --------------------------------------------------------------------------


def _accuracy(stream: Stream, served: Served, since: float, until: float) -> float | None:
    lo, hi = np.searchsorted(stream.t, since), np.searchsorted(stream.t, until)
    return float(served.correct[lo:hi].mean()) if hi > lo else None


def figures(stream: Stream, outcome: Run) -> dict[str, Any]:
    """What one run did on one stream, as plain data."""
    end = START + DAYS * DAY_S
    found: dict[str, Any] = {
        "seed": stream.seed,
        "kind": stream.kind,
        "retrains": len(outcome.retrains),
        "promotions": len(outcome.promotions),
        "outcomes": dict(Counter(r.outcome for r in outcome.retrains)),
        "triggers": dict(Counter(r.trigger for r in outcome.retrains)),
        "promoted_canary_h": [r.canary_h for r in outcome.retrains if r.outcome == "promoted"],
        "rolled_back_by": dict(
            Counter(r.detail for r in outcome.retrains if r.outcome == "rolled back")
        ),
    }
    change = stream.change_at
    if change is None:
        found["accuracy"] = _accuracy(stream, outcome.served, START, end)
        return found
    serving = outcome.initial
    for at, model in outcome.promotions:
        if at <= change:
            serving = model
    before = expected_accuracy(serving, stream)
    best = float(np.mean(np.maximum(stream.eval_p, 1 - stream.eval_p)))
    better_at = recovered_at = None
    for at, model in outcome.promotions:
        if at <= change:
            continue
        accuracy = expected_accuracy(model, stream)
        if better_at is None and accuracy >= before + BETTER_BY:
            better_at = at
        if recovered_at is None and accuracy >= best - RECOVERED_WITHIN:
            recovered_at = at
    found.update(
        {
            "retrains_before_change": sum(r.at < change for r in outcome.retrains),
            "retrains_after_change": sum(r.at >= change for r in outcome.retrains),
            "serving_at_change_accuracy": before,
            "best_possible_accuracy": best,
            "better_after_h": None if better_at is None else (better_at - change) / HOUR_S,
            "recovered_after_h": None if recovered_at is None else (recovered_at - change) / HOUR_S,
            "accuracy_before": _accuracy(stream, outcome.served, START, change),
            "accuracy_after_before_promotion": _accuracy(
                stream, outcome.served, change, better_at or end
            ),
            "accuracy_after_promotion": (
                None if better_at is None else _accuracy(stream, outcome.served, better_at, end)
            ),
            "accuracy_after": _accuracy(stream, outcome.served, change, end),
        }
    )
    return found


def simulate(task: tuple[int, str, Setup]) -> dict[str, dict[str, Any]]:
    """Every configuration on one stream (the same events, the same initial champion)."""
    seed, kind, setup = task
    plans = configurations(setup.window_days)
    stream = make_stream(seed, kind, setup.window_days, setup.season_sd)
    initial = train(stream, plans["loop"].plan, START, 1).model
    cache: DriftCache = {}
    return {
        name: figures(stream, run(stream, setting, initial, cache))
        for name, setting in plans.items()
    }


# --- the table ----------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _p90(values: list[float]) -> float | None:
    return float(np.quantile(values, 0.9)) if values else None


def _fmt(value: float | None, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's figures over every stream."""
    changed = [r for r in rows if r["kind"] != "none"]
    steady = [r for r in rows if r["kind"] == "none"]

    def values(key: str, among: list[dict[str, Any]] = changed) -> list[float]:
        return [r[key] for r in among if r.get(key) is not None]

    by_kind = {
        kind: (sum(r["better_after_h"] is not None for r in group), len(group))
        for kind in ("boundary", "boundary+inputs")
        if (group := [r for r in changed if r["kind"] == kind])
    }
    canary_h = [h for r in rows for h in r["promoted_canary_h"]]
    rolled_back_by: Counter[str] = Counter()
    for r in rows:
        rolled_back_by.update(r["rolled_back_by"])
    outcomes: Counter[str] = Counter()
    triggers: Counter[str] = Counter()
    for r in changed:
        outcomes.update(r["outcomes"])
        triggers.update(r["triggers"])
    steady_outcomes: Counter[str] = Counter()
    steady_triggers: Counter[str] = Counter()
    for r in steady:
        steady_outcomes.update(r["outcomes"])
        steady_triggers.update(r["triggers"])
    return {
        "change_streams": len(changed),
        "better_promoted": len(values("better_after_h")),
        "better_by_kind": by_kind,
        "better_after_h_median": _median(values("better_after_h")),
        "better_after_h_p90": _p90(values("better_after_h")),
        "recovered": len(values("recovered_after_h")),
        "recovered_after_h_median": _median(values("recovered_after_h")),
        "accuracy_before": _median(values("accuracy_before")),
        "accuracy_after_before_promotion": _median(values("accuracy_after_before_promotion")),
        "accuracy_after_promotion": _median(values("accuracy_after_promotion")),
        "accuracy_after": _median(values("accuracy_after")),
        "serving_at_change_accuracy": _median(values("serving_at_change_accuracy")),
        "best_possible_accuracy": _median(values("best_possible_accuracy")),
        "retrains_per_change_stream": _median(values("retrains")),
        "retrains_after_change_total": sum(values("retrains_after_change")),
        "retrains_before_change_total": sum(values("retrains_before_change")),
        "change_outcomes": dict(outcomes),
        "change_triggers": dict(triggers),
        "promoted_canary_h_median": _median(canary_h),
        "rolled_back_by": dict(rolled_back_by),
        "steady_streams": len(steady),
        "steady_retrains": sum(values("retrains", steady)),
        "steady_streams_with_retrain": sum(r["retrains"] > 0 for r in steady),
        "steady_promotions": sum(values("promotions", steady)),
        "steady_outcomes": dict(steady_outcomes),
        "steady_triggers": dict(steady_triggers),
        "steady_accuracy": _median(values("accuracy", steady)),
    }


def table(summary: dict[str, dict[str, Any]]) -> str:
    names = list(summary)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]

    def row(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(summary[n]) for n in names) + " |")

    def share(s: dict[str, Any], key: str) -> str:
        return f"{s[key]}/{s['change_streams']}"

    row(
        "change streams: better model promoted after the change",
        lambda s: share(s, "better_promoted"),
    )
    row(
        "  of which boundary only / boundary+inputs",
        lambda s: " / ".join(f"{a}/{b}" for a, b in s["better_by_kind"].values()),
    )
    row(
        "  hours from the change to that promotion, median / p90 of those",
        lambda s: (
            f"{_fmt(s['better_after_h_median'], '{:.0f}')} / "
            f"{_fmt(s['better_after_h_p90'], '{:.0f}')}"
        ),
    )
    row(
        "  promoted within 2 points of the best possible (hours, median)",
        lambda s: (
            f"{s['recovered']}/{s['change_streams']} "
            f"({_fmt(s['recovered_after_h_median'], '{:.0f}')})"
        ),
    )
    row("  accuracy before the change", lambda s: _fmt(s["accuracy_before"]))
    row(
        "  accuracy after the change, before that promotion",
        lambda s: _fmt(s["accuracy_after_before_promotion"]),
    )
    row("  accuracy after that promotion", lambda s: _fmt(s["accuracy_after_promotion"]))
    row("  accuracy after the change, all of it", lambda s: _fmt(s["accuracy_after"]))
    row(
        "  retrains per change stream (median)",
        lambda s: _fmt(s["retrains_per_change_stream"], "{:g}"),
    )
    row(
        "  retrains started before / after the change (all streams)",
        lambda s: f"{s['retrains_before_change_total']} / {s['retrains_after_change_total']}",
    )
    row(
        "  retrain outcomes",
        lambda s: ", ".join(f"{n} {k}" for k, n in sorted(s["change_outcomes"].items())),
    )
    row(
        "  triggers",
        lambda s: ", ".join(f"{n} {k}" for k, n in sorted(s["change_triggers"].items())),
    )
    row(
        "  hours from a retrain to its canary's promotion, median (all streams)",
        lambda s: _fmt(s["promoted_canary_h_median"], "{:.0f}"),
    )
    row(
        "  canaries rolled back (all streams), by the checks that failed",
        lambda s: "; ".join(f"{n}: {k}" for k, n in sorted(s["rolled_back_by"].items())) or "0",
    )
    row(
        "no-change streams: retrains started (streams with one)",
        lambda s: (
            f"{s['steady_retrains']} ({s['steady_streams_with_retrain']}/{s['steady_streams']})"
        ),
    )
    row(
        "  their triggers",
        lambda s: ", ".join(f"{n} {k}" for k, n in sorted(s["steady_triggers"].items())),
    )
    row("  promotions", lambda s: str(s["steady_promotions"]))
    row("  accuracy", lambda s: _fmt(s["steady_accuracy"]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50, help="streams with, and without, change")
    parser.add_argument("--quick", action="store_true", help="10 seeds of each")
    parser.add_argument("--seed", type=int, default=17, help="base seed")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (1: none)")
    parser.add_argument("--season-sd", type=float, default=Setup.season_sd, help="daily cycle")
    parser.add_argument("--window-days", type=float, default=Setup.window_days)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    seeds = 10 if args.quick else args.seeds
    setup = Setup(season_sd=args.season_sd, window_days=args.window_days)

    started = time.perf_counter()
    base = args.seed * 10_000
    tasks = [
        (base + i, "boundary" if i % 2 == 0 else "boundary+inputs", setup) for i in range(seeds)
    ]
    tasks += [(base + 5_000 + i, "none", setup) for i in range(seeds)]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(simulate, tasks))
    else:
        results = [simulate(task) for task in tasks]
    plans = configurations(setup.window_days)
    summary = {name: summarise([r[name] for r in results]) for name in plans}
    elapsed = time.perf_counter() - started

    print(table(summary))
    print(
        f"\n{seeds} change and {seeds} no-change streams, base seed {args.seed}, daily cycle "
        f"{setup.season_sd:g} sd, window {setup.window_days:g} days: {elapsed:.0f} s with "
        f"{args.jobs} process(es)"
    )
    if args.json:
        document = {
            "seeds": seeds,
            "seed": args.seed,
            "setup": setup.__dict__,
            "seconds": elapsed,
            "plans": {name: c.plan.to_dict() for name, c in plans.items()},
            "alert_rules": {name: c.rule and c.rule.to_dict() for name, c in plans.items()},
            "summary": summary,
            "streams": results,
        }
        args.json.write_text(json.dumps(document, indent=1, default=str))


if __name__ == "__main__":
    main()
