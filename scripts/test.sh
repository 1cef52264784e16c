#!/usr/bin/env bash
# Install everything the tests need into .venv, then lint, type-check and run the tests.
#   bash scripts/test.sh            # the default suite (a few minutes)
#   bash scripts/test.sh -m slow    # only the slow tests
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check vqaudio tests benchmarks
.venv/bin/mypy
.venv/bin/pytest -q "$@"
