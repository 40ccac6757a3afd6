#!/usr/bin/env bash
# Set up .venv (first run only) and Debian's chromium (for the dashboard's browser tests),
# and run exactly what CI runs: ruff, mypy, the import contracts of docs/ARCHITECTURE.md
# (import-linter), and the whole pytest suite, including the PostgreSQL backend at
# 127.0.0.1:5432/test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, alone: it then resolves to the CPU build that lies on the project's
# machines (/opt/wheels), which the whole dev set's resolution kept (measured: resolved
# together, pip backtracked to PyPI's CUDA build, 6 GB of nvidia wheels).
.venv/bin/python -m pip install --quiet 'torch==2.13.0'
.venv/bin/python -m pip install --quiet -e '.[dev]'
# The dashboard's browser tests drive Debian's chromium through Playwright (Playwright's
# own browser download is not reachable here): install it once if it is missing.
if ! command -v chromium >/dev/null; then
    sudo_if_needed=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo_if_needed apt-get update -q >/dev/null
    $sudo_if_needed apt-get install -y -q chromium >/dev/null
fi
export MODELYARD_TEST_POSTGRES_URL="${MODELYARD_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
.venv/bin/pytest -q "$@"
