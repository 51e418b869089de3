#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine, and nothing twice. The Python packages come in the
# tiers of pyproject.toml, at the versions of its lock files (made by `make lock`):
#   bash scripts/setup.sh                   `make run`: the runtime tier (requirements.txt) and localstripe, the fake
#                                           Stripe that `make run` starts (its version from requirements-test.txt)
#   bash scripts/setup.sh --with-postgres   `make test`: the test tier (requirements-test.txt), and from Debian's
#                                           packages what the tests start: the PostgreSQL server binaries (a
#                                           throwaway cluster), chromium and chromium-driver (tests/browser/ drive the
#                                           console in headless Chromium), prometheus and promtool (a real Prometheus
#                                           scraping the running system)
#   bash scripts/setup.sh --dev             the test tier and the lock tool, pip-tools (requirements-dev.txt)
# Every tier also gets rabbitmq-server (Debian package), without letting the package start its own system node,
# and a virtualenv in .venv with the project itself installed editable (pyproject.toml), so no command needs
# PYTHONPATH. One .venv serves every tier: a larger tier already installed satisfies a smaller one.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two `make run`s (or a run and a test) started together would build .venv at the same time.
exec 9>.setup.lock
flock 9

with_postgres=0
tier=run
for arg in "$@"; do
  case "$arg" in
    --with-postgres) with_postgres=1; tier=test ;;
    --dev) tier=dev ;;
    *) echo "setup: unknown option $arg (--with-postgres, --dev)" >&2; exit 2 ;;
  esac
done

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
  { [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; } || missing+=(prometheus)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} from Debian's packages"
  apt_install "${missing[@]}"
fi

# The tier is installed when .venv has no tier at least as large stamped with the current hash of pyproject.toml
# and the lock files (kept in .venv/.tier as "TIER HASH"); otherwise nothing is run, so a second setup is instant.
# pip installs over what is there (a package dropped from a lock stays until .venv is removed).
rank() { case "$1" in run) echo 1 ;; test) echo 2 ;; dev) echo 3 ;; *) echo 0 ;; esac; }
want=$(cat pyproject.toml requirements.txt requirements-test.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
have_tier="" have_hash=""
[ ! -f .venv/.tier ] || read -r have_tier have_hash < .venv/.tier || true
if [ ! -x .venv/bin/python ] || [ "$have_hash" != "$want" ] \
   || [ "$(rank "$have_tier")" -lt "$(rank "$tier")" ]; then
  [ -x .venv/bin/python ] || python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
  pip=(.venv/bin/pip install -q --disable-pip-version-check)
  case "$tier" in
    run)  echo "setup: installing the runtime tier and localstripe into .venv (requirements.txt)"
          "${pip[@]}" -r requirements.txt -c requirements-test.txt -e '.[local]' ;;
    test) echo "setup: installing the test tier into .venv (requirements-test.txt)"
          "${pip[@]}" -r requirements-test.txt -e '.[local,test]' ;;
    dev)  echo "setup: installing the dev tier into .venv (requirements-dev.txt)"
          "${pip[@]}" -r requirements-dev.txt -e '.[local,test,dev]' ;;
  esac
  .venv/bin/pip check --disable-pip-version-check >/dev/null || { .venv/bin/pip check; exit 1; }
  echo "$tier $want" > .venv/.tier
  rm -f .venv/.requirements.sha256 .venv/.project.sha256   # the stamps of the single-tier setup before
fi
