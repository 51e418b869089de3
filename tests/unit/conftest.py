import pytest

from common.auth import Identity
from common.db import Store
from common.migrate import upgrade


@pytest.fixture
def make_store(tmp_path):
    """A migrated SQLite database of the named service, fresh per test."""
    def make(service):
        url = f"sqlite:///{tmp_path / service}.sqlite"
        upgrade(service, url)
        return Store(url)
    return make


@pytest.fixture
def alice():
    return Identity("alice", "alice@example.com", "Alice")


@pytest.fixture
def bob():
    return Identity("bob", "bob@example.com", "Bob")
