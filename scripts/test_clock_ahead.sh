#!/usr/bin/env bash
# The suite (or the tests named as arguments) with every clock moved 30 minutes ahead between collection
# and the first test: a value a test module makes at import or collection time that depends on the time
# (a token's expiry, "yesterday") is then stale, as it would be at the end of a long CI run. Uses Debian's
# libfaketime on the pytest process and everything it starts (the services and PostgreSQL; RabbitMQ keeps the
# real clock, scripts/rabbitmq.sh). Two clients cannot run under libfaketime and are left out: headless
# Chromium (tests/browser) and the schemathesis command (its Hypothesis run sleeps forever); neither makes
# anything at collection time, and what they test does not depend on the client's clock.
#   bash scripts/test_clock_ahead.sh [pytest arguments]      (TEST_CLOCK_JUMP=+2h to move further)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-postgres
library=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
if [ ! -e "$library" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends faketime
  library=$(dpkg -L libfaketime | grep '/libfaketime.so.1$')
fi
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
echo "+0" > "$stamp"                      # the real time until tests/conftest.py moves it
export PYTHONWARNINGS=ignore LD_PRELOAD="$library" FAKETIME_TIMESTAMP_FILE="$stamp" FAKETIME_NO_CACHE=1
export TEST_CLOCK_JUMP="${TEST_CLOCK_JUMP:-+30m}"
.venv/bin/python -m pytest --durations=10 --deselect tests/browser --deselect tests/e2e/test_schemathesis.py "$@"
