"""How long the documentation checks take: ``mkdocs build --strict`` of the whole site
(the generated CLI, configuration and Python API pages included), and the pytest run of
every example in ``docs/`` (tests/integration/docs/test_examples.py: each page in a fresh
home, two pages with a real ``modelyard serve``). Wall-clock seconds, best of ``--rounds``.

    .venv/bin/python benchmarks/docs/bench_docs.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _timed(args: list[str]) -> float:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    start = time.perf_counter()
    subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    builds, examples = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as site:
            builds.append(_timed([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", site]))
        examples.append(
            _timed(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "tests/integration/docs/test_examples.py",
                ]
            )
        )
    print(f"mkdocs build --strict: best {min(builds):.1f} s, worst {max(builds):.1f} s")
    print(f"docs examples (pytest): best {min(examples):.1f} s, worst {max(examples):.1f} s")


if __name__ == "__main__":
    main()
