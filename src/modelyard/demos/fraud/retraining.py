"""The fraud model's retraining pipeline (``modelyard retraining set fraud --pipeline
modelyard.demos.fraud.retraining:pipeline``).

It trains on the deployment's labelled inference log over the run's window. Each logged
row is the vector the model saw: the card's aggregates as the online store gave them
when the request arrived, and the transaction's own fields. That is the point-in-time
training row by construction, so the pipeline does not join the feature store again.
(It could not: serving drops the entity key from the model's input, so the log has no
``card_id`` to join on.) The newest rows are held out for the gate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.demos.fraud.features import MODEL_INPUTS
from modelyard.demos.fraud.offline import HOLDOUT_FRACTION, TrainingData, fit_classifier
from modelyard.errors import ValidationError
from modelyard.pipelines import Candidate, PipelineContext, step

__all__ = ["labelled_table", "pipeline", "split", "train"]


@step
def labelled_table(logged: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The log's rows as model inputs (``MODEL_INPUTS``), labels and times, oldest first."""
    missing = [name for name in (*MODEL_INPUTS, "label", "ts") if name not in logged]
    if missing:
        raise ValidationError(f"the labelled log lacks {missing}: is it the fraud deployment's?")
    order = np.argsort(np.asarray(logged["ts"], dtype=np.float64), kind="stable")
    x = np.column_stack(
        [np.asarray(logged[name], dtype=np.float64) for name in MODEL_INPUTS]
    ).astype(np.float32)
    return {
        "x": x[order],
        "y": np.asarray(logged["label"], dtype=np.int64)[order],
        "ts": np.asarray(logged["ts"], dtype=np.float64)[order],
    }


@step
def split(table: dict[str, np.ndarray], holdout_fraction: float) -> dict[str, np.ndarray]:
    """The older rows to train on, the newest ``holdout_fraction`` held out for the gate."""
    cut = int(len(table["y"]) * (1 - holdout_fraction))
    return {
        "x_train": table["x"][:cut],
        "y_train": table["y"][:cut],
        "x_holdout": table["x"][cut:],
        "y_holdout": table["y"][cut:],
    }


@step(version="2")  # bump when offline.fit_classifier changes
def train(x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    """The champion's learner on the log's rows."""
    return fit_classifier(TrainingData(x, y, np.zeros(len(y))), seed)


def pipeline(ctx: PipelineContext) -> Candidate:
    """A candidate trained on the fraud deployment's labelled log of ``ctx``'s window."""
    logged = ctx.source("labelled_log")(ctx.window_start, ctx.window_end)
    table = ctx.run(labelled_table, logged)
    if len(np.unique(table["y"])) < 2:
        raise ValidationError(
            f"the labelled log of the window holds {len(table['y'])} rows of one class "
            "at most: wait for more labels or widen the window"
        )
    parts = ctx.run(split, table, holdout_fraction=HOLDOUT_FRACTION)
    model = ctx.run(train, parts["x_train"], parts["y_train"], seed=ctx.seed)
    return Candidate(
        model,
        parts["x_train"],
        parts["x_holdout"],
        parts["y_holdout"],
        feature_names=list(MODEL_INPUTS),
    )
