"""The credits unit tests' databases: SQLite by default; `credits_store` also on PostgreSQL, where a spend takes
another path (services/credits/spend_batches.py) that must decide exactly as the SQLite one does."""
import pytest
from sqlalchemy import text

from common.db import Store
from common.migrate import upgrade

_KEPT = ("alembic_version",)


@pytest.fixture(scope="session")
def credits_postgres_url(postgres):
    """One migrated credits database on the session's PostgreSQL cluster, emptied before each test that uses it."""
    url = postgres.create_database("credits_unit")
    upgrade("credits", url)
    return url


def emptied_postgres_store(url):
    """The Store of the session's credits database on PostgreSQL, every table emptied."""
    store = Store(url)
    with store.write() as session:
        tables = session.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
        session.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables if t not in _KEPT)
                             + " RESTART IDENTITY"))
    return store


@pytest.fixture(params=["sqlite", "postgres"])
def credits_store(request, make_store):
    """A fresh credits database on each backend."""
    if request.param == "sqlite":
        return make_store("credits")
    return emptied_postgres_store(request.getfixturevalue("credits_postgres_url"))
