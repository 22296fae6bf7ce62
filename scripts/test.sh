#!/usr/bin/env bash
# Set up, lint, then run the whole test suite (unit + end-to-end with the real Chroma, embeddings and local LLM).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system-deps.sh
.venv/bin/ruff check bot evals tests scripts benchmarks
.venv/bin/ruff format --check bot evals tests scripts benchmarks
exec .venv/bin/python -m pytest "$@"
