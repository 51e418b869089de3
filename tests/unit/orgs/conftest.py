"""Fixtures of the orgs service's tests: its migrated SQLite store and a Collective organization in it."""
import pytest

from services.orgs import organizations
from tests.unit.orgs.helpers import committed


@pytest.fixture
def store(make_store):
    return make_store("orgs")


@pytest.fixture
def org(store, alice):
    """A Collective organization created by alice (its id)."""
    return committed(store, organizations.create_collective, alice, "Clinic")["id"]
