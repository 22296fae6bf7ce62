#!/usr/bin/env bash
# Create .venv and install the project with pinned versions. Idempotent: a second run is fast.
# llama-cpp-python has no wheel on PyPI for this platform: the first install compiles it (~3.5 min on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.incibot-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]" 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import bot, llama_cpp, chromadb, onnxruntime" # fail here, not later, if the install broke
  echo "$want" > "$stamp"
fi
