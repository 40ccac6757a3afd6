#!/usr/bin/env bash
# Set up .venv (first run only) and run the quickstart on the embedded default
# (SQLite + files under ./.modelyard): train -> track -> register -> load -> predict.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[sklearn]'
.venv/bin/modelyard demo
.venv/bin/modelyard versions fraud
