"""SQL that the two databases spell differently: INSERT with ON CONFLICT comes from each dialect's own
`insert` (SQLAlchemy has no portable one); text in code-point order. And PostgreSQL's one-statement writes
(a spend's batch, an audit delivery): `one_statement`, in autocommit, without the pool's ping."""
from sqlalchemy import String, create_engine
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

DIALECT_INSERTS = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}


def conflict_insert(session):
    """The `insert` (with on_conflict_do_nothing/do_update) of the database `session` is bound to."""
    return DIALECT_INSERTS[session.get_bind().dialect.name]


class code_point_order(FunctionElement):
    """A text expression compared and sorted by code point, as Python compares strings. SQLite's default
    (BINARY) already is that order; PostgreSQL's is the database's collation (en_US ignores case and
    punctuation at first), so there it is `COLLATE "C"`, byte order, which in UTF-8 is code-point order."""
    type = String()
    name = "code_point_order"
    inherit_cache = True


@compiles(code_point_order)
def _code_point_order(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(code_point_order, "postgresql")
def _code_point_order_postgresql(element, compiler, **kw):
    return f'({compiler.process(element.clauses, **kw)}) COLLATE "C"'


# ---- PostgreSQL: one statement, one round trip ---------------------------------------------------------------
_autocommit_engines = {}


def autocommit_engine(url):
    """An engine whose statements are their own transactions (no BEGIN or COMMIT round trips) and whose pool
    does not ping each connection it hands out (common.db's does): see `one_statement` for a dead one."""
    if url not in _autocommit_engines:
        _autocommit_engines[url] = create_engine(url, pool_size=10, max_overflow=20, isolation_level="AUTOCOMMIT")
    return _autocommit_engines[url]


def one_statement(url, statement, params):
    """Run one statement (a server-side function that writes all or nothing, say) and give its one value. A
    pooled connection found dead (the database restarted since it was used) is replaced and the statement sent
    once more: the caller's statement must be safe to send again when it failed (its own checks refuse to write
    twice). SQLAlchemy then renews the whole pool, so the next statements do not meet another dead one."""
    for attempt in (1, 2):
        try:
            with autocommit_engine(url).connect() as connection:
                return connection.execute(statement, params).scalar_one()
        except DBAPIError as error:
            if attempt == 2 or not error.connection_invalidated:
                raise
