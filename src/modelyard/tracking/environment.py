"""What a run ran on: interpreter, platform, package versions and the git commit."""

from __future__ import annotations

import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

_PACKAGES = (
    "modelyard",
    "numpy",
    "scipy",
    "scikit-learn",
    "onnx",
    "onnxruntime",
    "skl2onnx",
    "lightgbm",
    "xgboost",
    "torch",
    "pandas",
)


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide what a model computes."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@lru_cache(maxsize=8)
def git_commit(cwd: Path | None = None) -> str | None:
    """The commit checked out in ``cwd`` (with ``-dirty`` if files changed), or None.

    Read once per process and directory: a training script does not change
    commits mid-run, and the ``git`` subprocess costs 10-20 ms per run started.
    """
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


@lru_cache(maxsize=1)
def capture_environment() -> dict[str, object]:
    """Interpreter, platform and package versions, as stored with every run (read once)."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": package_versions(),
    }
