#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine, and nothing twice:
#   - rabbitmq-server (Debian package), without letting the package start its own system node
#   - PostgreSQL server binaries (only with --with-postgres: the test suite needs a throwaway cluster)
#   - chromium and chromium-driver (only with --with-postgres, i.e. for the tests: tests/browser/ drives the
#     console in Debian's headless Chromium; `make run` does not need them)
#   - a virtualenv in .venv with the exact pins of requirements.txt, and the project itself installed
#     editable (pyproject.toml), so no command needs PYTHONPATH
set -euo pipefail
cd "$(dirname "$0")/.."
# Two `make run`s (or a run and a test) started together would build .venv at the same time.
exec 9>.setup.lock
flock 9

with_postgres=0
[ "${1:-}" = "--with-postgres" ] && with_postgres=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  # policy-rc.d answering 101 stops the package's post-install script from starting a system-wide
  # rabbitmq node on port 5672, which would collide with the one `make run` starts.
  local had_policy=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  if [ $had_policy = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
  fi
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@"
  [ $had_policy = 1 ] || as_root rm -f /usr/sbin/policy-rc.d
}

missing=()
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
if [ $with_postgres = 1 ] && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ $with_postgres = 1 ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} from Debian's packages"
  apt_install "${missing[@]}"
fi

# The virtualenv is rebuilt only when requirements.txt changes, and the project reinstalled (editable)
# when pyproject.toml does; their hashes are kept beside them.
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv from requirements.txt"
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > .venv/.requirements.sha256
fi
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat .venv/.project.sha256 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the project into .venv (editable)"
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > .venv/.project.sha256
fi
