"""The quickstart: generated fraud-like data -> tracked training run -> registered ONNX
version -> loaded by alias in a brand-new process -> predictions checked against the
original estimator.

Needs the ``sklearn`` extra (scikit-learn, skl2onnx).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

from modelyard import Yard

FEATURES = ["amount", "hour", "merchant_risk", "card_age_days", "distance_km"] + [
    f"v{i}" for i in range(1, 26)
]

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import modelyard
rows = np.array(json.loads(sys.stdin.read()), dtype=np.float32)
home, database_url, artifacts_url = sys.argv[1], sys.argv[2] or None, sys.argv[3] or None
settings = modelyard.load_settings(
    home=home, database_url=database_url, artifacts_url=artifacts_url
)
model = modelyard.load_model("fraud@champion", settings=settings)
out = model.predict(rows)
print(json.dumps({"version": model.version, "probabilities": out["probabilities"][:, 1].tolist(),
                  "seconds": time.perf_counter() - t0}))
"""


def make_data(rows: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A 30-feature, imbalanced binary problem shaped like card fraud."""
    features, labels = make_classification(
        n_samples=rows,
        n_features=30,
        n_informative=12,
        n_redundant=6,
        weights=[0.9, 0.1],
        class_sep=1.0,
        random_state=seed,
    )
    return features.astype(np.float32), labels


def run_quickstart(yard: Yard, *, rows: int = 20_000, console: Console | None = None) -> None:
    """Train, track, register, move the champion alias, and check a fresh process's answers."""
    console = console or Console()
    features, labels = make_data(rows)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.25, random_state=0, stratify=labels
    )
    params = {"n_estimators": 100, "max_depth": 10, "random_state": 42, "n_jobs": 1}
    with (
        console.status("training a random forest (tracked run)..."),
        yard.start_run("quickstart-rf", seed=42, experiment="fraud") as run,
    ):
        run.log_params(params)
        run.log_dataset("train", x_train)
        run.log_dataset("test", x_test)
        model = RandomForestClassifier(**params).fit(x_train, y_train)
        scores = model.predict_proba(x_test)[:, 1]
        metrics = {
            "roc_auc": float(roc_auc_score(y_test, scores)),
            "accuracy": float(accuracy_score(y_test, scores > 0.5)),
        }
        run.log_metrics(metrics)
    with console.status("registering (ONNX conversion, signature, reference profile)..."):
        version = yard.registry.register(
            "fraud",
            model,
            x_train,
            feature_names=FEATURES,
            run=run,
            metrics=metrics,
            description="quickstart random forest on generated card-fraud data",
        )
        yard.registry.set_alias("fraud", "champion", version.version, reason="quickstart")
    with console.status("loading fraud@champion in a new process..."):
        started = time.perf_counter()
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHILD,
                str(yard.settings.home),
                yard.settings.database_url or "",
                yard.settings.artifacts_url or "",
            ],
            input=json.dumps(x_test[:200].tolist()),
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
    answer = json.loads(child.stdout)
    difference = float(np.abs(np.array(answer["probabilities"]) - scores[:200]).max())
    table = Table(title="modelyard quickstart", title_justify="left")
    table.add_column("step")
    table.add_column("result")
    table.add_row("tracked run", f"{run.id[:12]}  roc_auc={metrics['roc_auc']:.4f}")
    table.add_row(
        "registered",
        f"fraud v{version.version} ({version.flavour}), sha256 {version.artifact_digest[:12]}",
    )
    table.add_row("alias", f"fraud@champion -> v{version.version}")
    table.add_row(
        "fresh process", f"loaded v{answer['version']} and predicted 200 rows in {wall:.2f} s"
    )
    table.add_row("agreement", f"max |onnx - scikit-learn| = {difference:.2e} on 200 rows")
    console.print(table)
    if difference > 1e-4:
        raise SystemExit(f"ONNX predictions differ from scikit-learn's by {difference:.2e}")
    console.print("next: [bold]modelyard versions fraud[/bold], [bold]modelyard runs list[/bold]")
