#!/usr/bin/env bash
# Set up .venv (first run only) and run the fraud pipeline end to end on the embedded
# default (SQLite + files under ./fraud-demo): simulated card traffic -> features ->
# model -> server -> drift -> retrain -> canary -> rollback -> report.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[sklearn,lightgbm]'
.venv/bin/modelyard demo fraud "$@"
