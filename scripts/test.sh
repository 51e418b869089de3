#!/usr/bin/env bash
# make test: set up (idempotent, PostgreSQL binaries included), then the whole suite. The fixtures
# start their own RabbitMQ node and PostgreSQL cluster on free ports and stop them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-postgres
export PYTHONPATH="$PWD" PYTHONWARNINGS=ignore
exec .venv/bin/python -m pytest "$@"
