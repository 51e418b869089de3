#!/usr/bin/env bash
# make test: set up (idempotent, PostgreSQL binaries included), lint, then the whole suite. The fixtures
# start their own RabbitMQ node and PostgreSQL cluster on free ports and stop them afterwards.
#   make test                        the whole suite, as two lanes side by side (below)
#   bash scripts/test.sh ARGS...     pytest with these arguments, one process (e.g. a file, -k NAME)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-postgres
export PYTHONWARNINGS=ignore
# Lint first: a tree that ruff refuses does not get a 10-minute suite (configuration: pyproject.toml).
.venv/bin/ruff check .
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest --durations=25 "$@"
fi
# Two pytest processes at once, each with its own broker and systems (tests/conftest.py, "two lanes"): the
# suite mostly waits, on one lane it took 19 minutes on 2 cores. The PostgreSQL lane's output is printed
# after the other's. The slowest tests of each lane are listed at the end of its output, so a test that
# grows slow is seen in CI's output.
lanes=$(mktemp -d)
trap 'rm -rf "$lanes"' EXIT
.venv/bin/python -m pytest --lane postgres --durations=15 --basetemp="$lanes/tmp-postgres" \
  -o cache_dir=.pytest_cache/lane-postgres > "$lanes/postgres.log" 2>&1 &
postgres_lane=$!
others=0
.venv/bin/python -m pytest --lane others --durations=25 --basetemp="$lanes/tmp-others" || others=$?
postgres=0
wait "$postgres_lane" || postgres=$?
echo
echo "==================== the PostgreSQL lane (pytest --lane postgres) ===================="
cat "$lanes/postgres.log"
echo "make test: the other lane exited $others, the PostgreSQL lane $postgres"
[ "$others" -eq 0 ] && [ "$postgres" -eq 0 ]
