"""A candidate a real team could ship: trained on an export whose label column was
inverted (1 meant "legitimate" in the new table, 0 "fraud"), a one-line bug in a join
or a schema change. Offline it looks fine on the same broken labels; live it flags
almost every transaction, and the canary's decision check rolls it back."""

from __future__ import annotations

from modelyard.demos.fraud.offline import TrainingData, fit_classifier, register, score_holdout
from modelyard.registry import ModelVersion
from modelyard.yard import Yard

__all__ = ["register_broken_candidate"]


def register_broken_candidate(
    yard: Yard, train: TrainingData, holdout: TrainingData, *, seed: int
) -> ModelVersion:
    """Train on ``train`` with its labels inverted, in a tracked run, and register it as
    the next version of ``MODEL``; its recorded metrics are those its author saw (on
    the equally inverted hold-out)."""
    inverted = TrainingData(train.x, 1 - train.y, train.times)
    inverted_holdout = TrainingData(holdout.x, 1 - holdout.y, holdout.times)
    with yard.start_run("fraud-label-bug", seed=seed, experiment="fraud") as run:
        run.log_params({"labels": "inverted by an export bug", "train_rows": len(train.y)})
        run.log_dataset("train", train.x)
        model = fit_classifier(inverted, seed)
        metrics = score_holdout(model, inverted_holdout)
        run.log_metrics(metrics)
        return register(
            yard, model, train, run, metrics, "Trained on an export with the labels inverted."
        )
