"""Several processes registering and logging at once: no lock errors, no lost writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from modelyard.config import Settings
from modelyard.yard import Yard

PROCESSES = 4
VERSIONS_EACH = 3

_WORKER = """
import json, sys
import numpy as np
from sklearn.linear_model import LogisticRegression
from modelyard.yard import Yard

seed, count = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(seed)
features = rng.normal(size=(200, 4)).astype(np.float32)
model = LogisticRegression().fit(features, (features[:, 0] > 0).astype(int))
numbers = []
with Yard() as yard:
    for i in range(count):
        with yard.start_run(f"p{seed}-{i}") as run:
            run.log_metric("loss", float(i))
        numbers.append(yard.register_model("shared", model, features, run=run).version)
        yard.registry.set_alias("shared", "champion", numbers[-1])
print(json.dumps(numbers))
"""


def test_concurrent_registrations_get_distinct_versions(settings: Settings) -> None:
    Yard(settings).close()  # migrate once, as `modelyard init` would
    env = dict(os.environ, MODELYARD_HOME=str(settings.home))
    if settings.database_url:
        env["MODELYARD_DATABASE_URL"] = settings.database_url
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(seed), str(VERSIONS_EACH)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(PROCESSES)
    ]
    numbers = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err
        assert "locked" not in err
        numbers += json.loads(out)
    assert sorted(numbers) == list(range(1, PROCESSES * VERSIONS_EACH + 1))
    with Yard(settings) as yard:
        assert len(yard.tracking.search_runs()) == PROCESSES * VERSIONS_EACH
        assert len(yard.registry.alias_history("shared", "champion")) == PROCESSES * VERSIONS_EACH
