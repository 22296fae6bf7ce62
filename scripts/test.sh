#!/usr/bin/env bash
# Set up, lint, check the layering, then run the whole test suite (unit + end-to-end with the real Chroma, embeddings and local LLM).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system-deps.sh
.venv/bin/ruff check bot evals tests scripts benchmarks testkit
.venv/bin/ruff format --check bot evals tests scripts benchmarks testkit
.venv/bin/lint-imports  # the stage layering (pyproject.toml [tool.importlinter])
# Two workers (the machine has 2 cores); a file's tests stay on one worker, so module fixtures (a model server,
# PostgreSQL, a Chroma server) start once per file.
exec .venv/bin/python -m pytest -n "${INCIBOT_TEST_WORKERS:-2}" --dist loadfile "$@"
