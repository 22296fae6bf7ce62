#!/usr/bin/env bash
# Set up, then triage a sample ticket end to end on embedded defaults (offline, no API key, no Slack).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/incibot demo "$@"
