"""SQL that the two databases spell differently: INSERT with ON CONFLICT comes from each dialect's own
`insert` (SQLAlchemy has no portable one)."""
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

DIALECT_INSERTS = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}


def conflict_insert(session):
    """The `insert` (with on_conflict_do_nothing/do_update) of the database `session` is bound to."""
    return DIALECT_INSERTS[session.get_bind().dialect.name]
