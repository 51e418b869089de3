#!/usr/bin/env bash
# make test: set up (idempotent, PostgreSQL binaries included), lint, then the whole suite. The fixtures
# start their own RabbitMQ node and PostgreSQL cluster on free ports and stop them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-postgres
export PYTHONWARNINGS=ignore
# Lint first: a tree that ruff refuses does not get a 10-minute suite (configuration: pyproject.toml).
.venv/bin/ruff check .
# The 25 slowest tests are listed at the end of every run, so a test that grows slow is seen in CI's output.
exec .venv/bin/python -m pytest --durations=25 "$@"
