"""Dependencies in tiers (pyproject.toml): `pip install .` brings the runtime lock (requirements.txt) and no test,
lint or lock tool nor the fake payment provider; the lock files agree with pyproject.toml and with each other.

What `pip install .` installs is walked from pyproject.toml's [project] dependencies through the installed
distributions' metadata (importlib.metadata, markers evaluated for this Python): at the locked versions that is
the set pip resolves in a fresh venv, found without a network. The lock files are pip-compile's (`make lock`)."""
import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCKS = {"runtime": "requirements.txt", "test": "requirements-test.txt", "dev": "requirements-dev.txt"}
EXTRAS = {"runtime": (), "test": ("local", "test"), "dev": ("local", "test", "dev")}

# What only the tests, the lint, the lock or `make run`'s fake Stripe need: never installed by `pip install .`.
NOT_RUNTIME = {"pytest", "schemathesis", "hypothesis", "selenium", "trio", "ruff", "pip-tools", "build", "localstripe",
               "aiohttp"}


def pins(lock):
    text = (ROOT / LOCKS[lock]).read_text()
    return {canonicalize_name(name): version
            for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.MULTILINE)}


def applies(requirement, extras):
    return requirement.marker is None or any(requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras))


def closure(tier):
    """The distributions that installing the project with the tier's extras brings, the project left out."""
    extras = PROJECT["optional-dependencies"]
    texts = PROJECT["dependencies"] + [text for extra in EXTRAS[tier] for text in extras[extra]]
    todo = [needed for text in texts if applies(needed := Requirement(text), ())]
    found, seen = set(), set()
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        found.add(key[0])
        try:
            distribution = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:   # make test installs the test tier, not the dev one
            pytest.skip(f"{requirement.name} is not installed: the {tier} tier is not this venv's")
        todo += [needed for text in distribution.requires or []
                 if applies(needed := Requirement(text), requirement.extras)]
    return found


def test_pip_install_dot_brings_the_runtime_lock_and_no_test_package():
    runtime = closure("runtime")
    assert runtime == set(pins("runtime")), (
        "requirements.txt is not what pyproject.toml's dependencies bring: run `make lock`")
    test_only = set(pins("dev")) - runtime
    assert NOT_RUNTIME <= test_only, "NOT_RUNTIME names a package that no lock file holds any more"
    print(f"\n`pip install .`: {len(runtime)} packages; left out ({len(test_only)}): {', '.join(sorted(test_only))}")
    assert not runtime & test_only


@pytest.mark.parametrize("tier", ["test", "dev"])
def test_each_lock_is_what_its_tier_brings(tier):
    assert closure(tier) == set(pins(tier)), f"{LOCKS[tier]} is not what its tier brings: run `make lock`"


def test_a_package_has_one_version_in_every_lock():
    runtime, test, dev = pins("runtime"), pins("test"), pins("dev")
    assert {name: test[name] for name in runtime} == runtime
    assert {name: dev[name] for name in test} == test


def test_the_installed_versions_are_the_locked_ones():
    locked = pins("test")
    installed = {name: importlib.metadata.version(name) for name in locked}
    assert installed == locked, "the venv is not the test tier's lock: run `bash scripts/setup.sh --with-postgres`"
