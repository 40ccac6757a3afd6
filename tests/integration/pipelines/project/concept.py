"""A small project the pipeline tests retrain: a generated stream whose concept changes,
and training pipelines over it (imported by reference, ``concept:from_file``).

The stream: five standard-normal features; the label is 1 when ``w . x + noise > 0``.
Concept A weighs the first two features, concept B the last two, so a model of A is
near chance on B. The pipelines read ``data.npz`` in the working directory (the "table"
a team would read), or the deployment's labelled inference log.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from modelyard.pipelines import Candidate, PipelineContext, step

FEATURES = [f"x{i}" for i in range(5)]
CONCEPTS = {
    "A": np.array([2.0, -1.5, 0.0, 0.0, 0.0]),
    "B": np.array([0.0, 0.0, 0.0, 2.0, -1.5]),
}


def generate(concept: str, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` events of ``concept``: features (float32) and labels (0/1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    y = (x @ CONCEPTS[concept] + rng.normal(scale=0.3, size=rows) > 0).astype(np.int64)
    return x, y


def write_table(path: Path, concept: str, rows: int, seed: int) -> None:
    x, y = generate(concept, rows, seed)
    np.savez(path, x=x, y=y)


@step(cache=False)
def read_table(path: str) -> dict[str, np.ndarray]:
    """The training table as it is now (cache=False: a table changes under its name)."""
    with np.load(path) as data:
        return {"x": data["x"], "y": data["y"]}


@step
def split(table: dict[str, np.ndarray], holdout_fraction: float) -> dict[str, np.ndarray]:
    """The newest rows are held out: the gate judges on data the model never saw."""
    cut = int(len(table["y"]) * (1 - holdout_fraction))
    return {
        "x_train": table["x"][:cut],
        "y_train": table["y"][:cut],
        "x_holdout": table["x"][cut:],
        "y_holdout": table["y"][cut:],
    }


@step
def train(x: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    hold = os.environ.get("CONCEPT_HOLD_FILE")
    if hold:  # the kill test: stay inside the step while the file exists
        Path(hold + ".entered").write_text("in train")
        while Path(hold).exists():
            time.sleep(0.05)
    return LogisticRegression(C=1.0, random_state=seed).fit(x, y)


@step
def broken_train(x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    raise RuntimeError("the training data has no positive class")


def _candidate(ctx: PipelineContext, parts: dict[str, np.ndarray], model: Any) -> Candidate:
    return Candidate(
        model=model,
        features=parts["x_train"],
        holdout=parts["x_holdout"],
        holdout_labels=parts["y_holdout"],
        feature_names=FEATURES,
    )


def from_file(ctx: PipelineContext) -> Candidate:
    parts = ctx.run(split, ctx.run(read_table, "data.npz"), holdout_fraction=0.25)
    model = ctx.run(train, parts["x_train"], parts["y_train"], seed=ctx.seed)
    return _candidate(ctx, parts, model)


def shuffled(ctx: PipelineContext) -> Candidate:
    """A worse candidate: trained on labels shuffled out of their rows."""
    parts = ctx.run(split, ctx.run(read_table, "data.npz"), holdout_fraction=0.25)
    rng = np.random.default_rng(ctx.seed)
    model = ctx.run(train, parts["x_train"], rng.permutation(parts["y_train"]), seed=ctx.seed)
    return _candidate(ctx, parts, model)


def failing(ctx: PipelineContext) -> Candidate:
    parts = ctx.run(split, ctx.run(read_table, "data.npz"), holdout_fraction=0.25)
    model = ctx.run(broken_train, parts["x_train"], parts["y_train"], seed=ctx.seed)
    return _candidate(ctx, parts, model)


def from_log(ctx: PipelineContext) -> Candidate:
    """Trains on the deployment's labelled predictions of the run's window, newest last."""
    logged = ctx.source("labelled_log")(ctx.window_start, ctx.window_end)
    table = ctx.run(labelled_table, logged)
    parts = ctx.run(split, table, holdout_fraction=0.25)
    model = ctx.run(train, parts["x_train"], parts["y_train"], seed=ctx.seed)
    return _candidate(ctx, parts, model)


@step
def labelled_table(logged: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    order = np.argsort(logged["ts"], kind="stable")
    x = np.column_stack([logged[name].astype(np.float32) for name in FEATURES])[order]
    return {"x": x, "y": np.asarray(logged["label"][order], dtype=np.int64)}
