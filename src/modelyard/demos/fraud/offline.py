"""The fraud demo's offline phase: from simulated history to a champion behind a deployment.

``build_champion`` pushes a window of simulated transactions to the feature store,
builds a point-in-time training set from it, trains a seeded gradient-boosting
classifier in a tracked run, registers it (ONNX) and deploys it as ``fraud``, which
fetches the card's aggregates from the online store: a request carries the card id and
the transaction (``REQUEST_INPUTS``), nothing precomputed.

Each label is placed just before its own transaction (``LABEL_OFFSET_S``), so its
features are those of the card's *earlier* transactions: what the online store holds
when the request for that transaction arrives, before the transaction is pushed.

The history is a backfill: every event is pushed now, long after its event time, so
the training set reads it without the leakage guard (``created_time <= t`` would hide
all of it). The label's place before its transaction is what keeps the transaction's
own event, and every later one, out of its features.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import lightgbm
import numpy as np
import pyarrow as pa
from sklearn.metrics import average_precision_score, roc_auc_score

from modelyard.demos.fraud.features import (
    MODEL_INPUTS,
    definitions,
    model_refs,
    request_columns,
    stream_events,
)
from modelyard.demos.fraud.simulator import TransactionSimulator
from modelyard.errors import ValidationError
from modelyard.registry import ModelVersion
from modelyard.routing import FeatureInputs
from modelyard.tracking import Run
from modelyard.yard import Yard

__all__ = [
    "DEPLOYMENT",
    "EVENT_TIME",
    "LABEL_OFFSET_S",
    "MODEL",
    "Champion",
    "TrainingData",
    "build_champion",
    "fit_classifier",
    "push_history",
    "register",
    "score_holdout",
    "split_by_time",
    "training_data",
]

MODEL = "fraud"
DEPLOYMENT = "fraud"
# The request field with the transaction's time: the server reads the card's features
# as of it, as the training set did (a replay of past traffic then sees the past).
EVENT_TIME = "event_time"
# What a card the store has never seen gets: no activity (time since last stays NaN).
NEW_CARD: dict[str, int | float | str | bool | None] = {
    name: 0 for name in MODEL_INPUTS if name.startswith(("count_", "amount_sum_", "merchants_"))
}
LABEL_OFFSET_S = 0.001
PUSH_CHUNK = 5_000  # events per push, under the default ``features.push_max_events``
HOLDOUT_FRACTION = 0.25
PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 10,
    # Fraud is 2% of the rows: its errors weigh ten times, so that a pattern seen a few
    # dozen times reaches the 0.5 decision (measured on the demo's drift: recall on the
    # new pattern 0.13 -> 0.41 at precision 0.48, the old patterns unchanged).
    "scale_pos_weight": 10.0,
}


@dataclass(frozen=True)
class TrainingData:
    """Model inputs (``MODEL_INPUTS`` columns, oldest first), labels and times."""

    x: np.ndarray  # float32, one row per transaction
    y: np.ndarray  # int64, 1 for fraud
    times: np.ndarray  # float64, the transactions' event times

    def since(self, t: float) -> TrainingData:
        """The rows of transactions at ``t`` or later."""
        keep = self.times >= t
        return TrainingData(self.x[keep], self.y[keep], self.times[keep])


@dataclass(frozen=True)
class Champion:
    """What ``build_champion`` made: the registered version, its run and its figures."""

    version: ModelVersion
    run_id: str
    metrics: dict[str, float]
    refs: tuple[str, ...]


def push_history(yard: Yard, transactions: dict[str, np.ndarray], chunk: int = PUSH_CHUNK) -> int:
    """Push ``transactions`` (oldest first) to the ``transactions`` stream in chunks of at
    most ``chunk`` (and the home's ``features.push_max_events``); the number accepted (a
    replay accepts none)."""
    events = stream_events(transactions)
    limit = yard.settings.features.push_max_events
    chunk = max(1, min(chunk, limit))
    accepted = 0
    for low in range(0, len(events["event_id"]), chunk):
        part = {name: values[low : low + chunk] for name, values in events.items()}
        result = yard.features.push("transactions", part)
        if result.too_late:
            raise ValidationError(
                f"{len(result.too_late)} history events were refused as too late: "
                "push the history oldest first"
            )
        accepted += result.accepted
    return accepted


def training_data(yard: Yard, transactions: dict[str, np.ndarray]) -> TrainingData:
    """The point-in-time training set of ``transactions``: each row's card features as of
    just before it, then its request-side inputs."""
    times = np.asarray(transactions["event_time"], dtype=np.float64)
    labels = pa.table(
        {
            "card_id": [str(v) for v in transactions["card_id"]],
            "event_timestamp": times - LABEL_OFFSET_S,
        }
    )
    table = yard.features.get_training_set(labels, model_refs(), leakage_guard=False)
    columns = {**_numeric(table), **request_columns(transactions)}
    x = np.column_stack([columns[name] for name in MODEL_INPUTS]).astype(np.float32)
    y = np.asarray(transactions["is_fraud"], dtype=np.int64)
    return TrainingData(x, y, times)


def _numeric(table: Any) -> dict[str, np.ndarray]:
    names = [ref.split(":")[1] for ref in model_refs()]
    return {
        name: np.array(
            [np.nan if v is None else float(v) for v in table.column(name).to_pylist()],
            dtype=np.float64,
        )
        for name in names
    }


def split_by_time(
    data: TrainingData, holdout_fraction: float = HOLDOUT_FRACTION
) -> tuple[TrainingData, TrainingData]:
    """The older rows to train on and the newest ``holdout_fraction`` held out."""
    order = np.argsort(data.times, kind="stable")
    cut = int(len(order) * (1 - holdout_fraction))
    head, tail = order[:cut], order[cut:]
    return (
        TrainingData(data.x[head], data.y[head], data.times[head]),
        TrainingData(data.x[tail], data.y[tail], data.times[tail]),
    )


def fit_classifier(data: TrainingData, seed: int) -> Any:
    """A LightGBM classifier of ``data``, all its randomness from ``seed``. LightGBM
    converts to ONNX and agrees with it; scikit-learn's ``HistGradientBoostingClassifier``
    fails skl2onnx's conversion (its ``TreeEnsembleClassifier`` node is refused) and
    would be stored as skops."""
    model = lightgbm.LGBMClassifier(
        **PARAMS, random_state=seed, deterministic=True, force_row_wise=True, n_jobs=1, verbose=-1
    )
    return model.fit(data.x, data.y)


def score_holdout(model: Any, holdout: TrainingData) -> dict[str, float]:
    """ROC AUC and average precision of ``model`` on held-out rows."""
    if len(np.unique(holdout.y)) < 2:
        raise ValidationError(
            f"the held-out rows hold one class only ({len(holdout.y)} rows): simulate more days"
        )
    scores = model.predict_proba(holdout.x)[:, 1]
    return {
        "roc_auc": float(roc_auc_score(holdout.y, scores)),
        "average_precision": float(average_precision_score(holdout.y, scores)),
        "holdout_rows": float(len(holdout.y)),
        "holdout_fraud_rate": float(holdout.y.mean()),
    }


def register(
    yard: Yard, model: Any, train: TrainingData, run: Run, metrics: dict[str, float], about: str
) -> ModelVersion:
    """Register ``model``, trained on ``train`` in ``run``, as the next version of ``MODEL``
    (its reference profile from ``train``, its ROC AUC from ``metrics``)."""
    return yard.register_model(
        MODEL,
        model,
        train.x,
        feature_names=list(MODEL_INPUTS),
        run=run,
        metrics={"roc_auc": metrics["roc_auc"]},
        description=about,
    )


def build_champion(
    yard: Yard,
    simulator: TransactionSimulator,
    start: float,
    end: float,
    *,
    seed: int = 0,
    warm_up_s: float = 0.0,
    deployment: str = DEPLOYMENT,
) -> Champion:
    """Apply the features, push the transactions of ``[start, end)``, train on those after
    the first ``warm_up_s`` in a tracked run with ``seed``, register the model as
    ``MODEL`` and deploy it as ``deployment`` with its card features fetched from the
    store. (In the warm-up the windows are not yet full: a card's count over 24 hours
    an hour after ``start`` counts one hour. Serving never sees such rows.)"""
    yard.features.apply(definitions())
    transactions = simulator.generate(start, end)
    push_history(yard, transactions)
    data = training_data(yard, transactions).since(start + warm_up_s)
    train, holdout = split_by_time(data)
    config = simulator.config
    with yard.start_run("fraud-champion", seed=seed, experiment="fraud") as run:
        run.log_params(
            {
                **PARAMS,
                "model": "LGBMClassifier",
                "features": ",".join(MODEL_INPUTS),
                "window_start": start + warm_up_s,
                "window_end": end,
                "holdout_fraction": HOLDOUT_FRACTION,
                "simulator_seed": config.seed,
                "simulator_cards": config.cards,
                "simulator_fraud_rate": config.fraud_rate,
            }
        )
        run.log_dataset("train", train.x)
        run.log_dataset("holdout", holdout.x)
        began = time.perf_counter()
        model = fit_classifier(train, seed)
        metrics = score_holdout(model, holdout)
        metrics["train_seconds"] = time.perf_counter() - began
        metrics["train_rows"] = float(len(train.y))
        run.log_metrics(metrics)
        version = register(
            yard, model, train, run, metrics, "Fraud champion: card aggregates from the store."
        )
    refs = tuple(model_refs())
    deployments = yard.deployments
    deployments.create(
        deployment,
        MODEL,
        version.version,
        reason="fraud demo: offline champion",
        features=FeatureInputs(refs, "defaults", NEW_CARD, event_time=EVENT_TIME),
    )
    return Champion(version, run.id, metrics, refs)
