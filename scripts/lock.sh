#!/usr/bin/env bash
# make lock: the lock files from pyproject.toml's tiers, made by pip-compile (pip-tools, the dev tier). A version
# already locked is kept while it still fits, so a new dependency adds its own packages and moves nothing else.
#   make lock                                    after changing a dependency in pyproject.toml
#   make lock ARGS="--upgrade-package stripe"    move one package (and what it needs) to its newest release
#   make lock ARGS=--upgrade                     move everything (then the whole suite: make test)
# Each file is compiled with the one before as a constraint, so a package has one version in all three.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pip-compile ] || bash scripts/setup.sh --dev
export CUSTOM_COMPILE_COMMAND="make lock"   # named in each file's header instead of the pip-compile command
compile() {
  # Emits no index or find-links lines: those are this machine's pip configuration, not the project's.
  .venv/bin/pip-compile --quiet --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links "$@" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
compile "$@" -o requirements.txt pyproject.toml
compile "$@" --extra local --extra test -c requirements.txt -o requirements-test.txt pyproject.toml
compile "$@" --extra local --extra test --extra dev -c requirements-test.txt -o requirements-dev.txt pyproject.toml
echo "lock: requirements.txt, requirements-test.txt, requirements-dev.txt; then: bash scripts/setup.sh --with-postgres"
