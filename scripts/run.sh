#!/usr/bin/env bash
# make run: set up (idempotent), then run everything in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONWARNINGS=ignore
exec .venv/bin/python -m devtools.run
