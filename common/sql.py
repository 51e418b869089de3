"""SQL that the two databases spell differently: INSERT with ON CONFLICT comes from each dialect's own
`insert` (SQLAlchemy has no portable one); text in code-point order."""
from sqlalchemy import String
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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
