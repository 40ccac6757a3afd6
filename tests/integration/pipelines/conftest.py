"""A project on disk for the retraining tests: ``concept.py`` (its pipelines), a table
``data.npz``, and a modelyard home serving ``concept`` v1 (trained on concept A) as
deployment ``scoring``. ``project.cli(...)`` runs ``modelyard`` in it as a new process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression

from modelyard.config import Settings, load_settings
from modelyard.routing import DeploymentStore
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.yard import Yard

from .project.concept import FEATURES, generate, write_table

PROJECT = Path(__file__).parent / "project"


@dataclass
class Project:
    root: Path
    settings: Settings

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
        env["MODELYARD_HOME"] = str(self.settings.home)
        env["COLUMNS"] = "200"
        return env

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "modelyard", *args], cwd=self.root, env={**self.env, **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def cli(self, *args: str, expect: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "modelyard", *args], cwd=self.root, env={**self.env, **env},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == expect, (done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def yard(self) -> Yard:
        return Yard(self.settings)


def make_project(root: Path) -> Project:
    root.mkdir(parents=True)
    shutil.copy(PROJECT / "concept.py", root / "concept.py")
    write_table(root / "data.npz", "B", rows=4_000, seed=2)
    project = Project(root, load_settings(home=root / ".modelyard", environ={}))
    x, y = generate("A", 4_000, seed=1)
    with project.yard() as yard:
        with yard.start_run("first", seed=0) as run:
            model = LogisticRegression(random_state=0).fit(x, y)
        yard.register_model("concept", model, x, feature_names=FEATURES, run=run)
        DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry).create(
            "scoring", "concept", 1
        )
    return project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "project")
