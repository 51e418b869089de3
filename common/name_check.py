"""Stored names that break the readable-name rule (common.schemas.name_problem), reported, never rewritten.

The rule applies to new input only (SPEC §10, issue 25): rows stored before it may still hold a name with a line
break (which forges a log line), a direction override or only invisible characters. common.migrate.upgrade runs
this check once a service's database is at head; each such row is one WARNING of the logger `common.name_check`
naming the table, the column, the row's id, the problem and the name escaped as repr() escapes it (no control
character, direction override or invisible character reaches the log), then one summary line. Nothing is
rewritten: people rename through the API (users' display names come from their tokens: the next sign-in
with a readable name replaces one).

    python -m common.name_check [service ...]     print the findings of each service (all by default)

NAME_COLUMNS is the one list of the checked columns. The tables are read with plain SQL, never through a
service's models (common does not depend on services): one SELECT of the id and the name per table, filtered
here. A missing table or column is logged and skipped; the check never fails a migration. Findings never
change the exit code (0 either way).
"""
import logging
import sys
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import inspect, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from common.schemas import name_problem

# Named explicitly: run as `python -m common.name_check` the module is __main__.
log = logging.getLogger("common.name_check")

RENAME = "rename it through the API"


class NameColumn(NamedTuple):
    """A human-facing name column: its service, table, the table's id column, and what fixes a bad name."""
    service: str
    table: str
    id_column: str
    column: str
    remedy: str = RENAME


# The names people see, in the tables that own them. Copies kept elsewhere (read models of organizations,
# an invitation's organization_name) follow or were taken from these and are not listed twice.
NAME_COLUMNS = (
    NameColumn("orgs", "organizations", "id", "name"),
    NameColumn("orgs", "agents", "id", "name"),
    NameColumn("credits", "budget_groups", "id", "name"),
    NameColumn("members", "api_keys", "id", "name"),
    NameColumn("members", "users", "id", "name",
               remedy="the user's next sign-in with a readable name in their token replaces it"),
)


class Finding(NamedTuple):
    """One stored row whose name breaks the rule."""
    service: str
    table: str
    column: str
    row_id: object
    name: str
    problem: str
    remedy: str

    def message(self):
        return (f"{self.service}: {self.table}.{self.column} of id {_escaped(self.row_id)} breaks the "
                f"readable-name rule ({self.problem}): {_escaped(self.name)}; not rewritten: {self.remedy}")


def _escaped(value):
    """`value` as repr() writes a text (quoted, with every non-printable character escaped): safe on one line."""
    return repr(value) if isinstance(value, str) else repr(str(value))


def columns_of(service_name):
    return [column for column in NAME_COLUMNS if column.service == service_name]


def find(connection, service_name, skipped=None):
    """The Findings of `service_name`'s name columns over `connection` (a SQLAlchemy Connection). A table
    or column that cannot be read is passed over, appended to `skipped` (when given) as (NameColumn, reason)."""
    findings = []
    for name_column in columns_of(service_name):
        reason = _unreadable(connection, name_column)
        if reason is None:
            try:
                findings.extend(_find_in(connection, name_column))
            except SQLAlchemyError as exc:
                connection.rollback()       # PostgreSQL refuses every statement of a failed transaction
                first_line = (str(exc).splitlines() or [""])[0]
                reason = f"could not be read ({type(exc).__name__}: {_escaped(first_line)})"
        if reason is not None and skipped is not None:
            skipped.append((name_column, reason))
    return findings


def _unreadable(connection, name_column):
    """Why the table or its columns are missing, or None."""
    try:
        inspector = inspect(connection)
        if not inspector.has_table(name_column.table):
            return "the table does not exist"
        present = {column["name"] for column in inspector.get_columns(name_column.table)}
    except SQLAlchemyError as exc:
        connection.rollback()
        return f"could not be inspected ({type(exc).__name__})"
    missing = [c for c in (name_column.id_column, name_column.column) if c not in present]
    return f"no column {', '.join(missing)}" if missing else None


def _find_in(connection, name_column):
    quote = connection.dialect.identifier_preparer.quote
    statement = text(f"SELECT {quote(name_column.id_column)}, {quote(name_column.column)} "
                     f"FROM {quote(name_column.table)}")
    # Streamed in batches (a server-side cursor on PostgreSQL): a big table is never held in memory at once.
    result = connection.execute(statement, execution_options={"stream_results": True, "yield_per": 1000})
    for row_id, name in result:
        problem = name_problem(name) if isinstance(name, str) else None
        if problem is not None:
            yield Finding(name_column.service, name_column.table, name_column.column, row_id, name, problem,
                          name_column.remedy)


def report(connection, service_name):
    """Log each Finding of `service_name` as a WARNING and a summary; the Findings. A service without
    name columns logs nothing."""
    if not columns_of(service_name):
        return []
    skipped = []
    findings = find(connection, service_name, skipped)
    for name_column, reason in skipped:
        log.warning("%s: %s.%s not checked for unreadable names: %s", service_name,
                    name_column.table, name_column.column, reason)
    for finding in findings:
        log.warning("%s", finding.message())
    if findings or skipped:
        log.warning("%s", summary(service_name, findings, skipped))
    else:
        log.info("%s", summary(service_name, findings))
    return findings


def report_after_migration(connection, service_name):
    """common.migrate's call: report, in a read transaction of its own that is ended here, and never raise
    (the migration is committed already; a failing check must not stop a deployment)."""
    try:
        return report(connection, service_name)
    except Exception:       # noqa: BLE001  (logged with its traceback; the migration stands)
        log.exception("%s: the check of stored names failed; the migration is done", service_name)
        return []
    finally:
        try:
            connection.rollback()
        except Exception:   # noqa: BLE001
            log.debug("rollback after the name check failed", exc_info=True)


def summary(service_name, findings, skipped=()):
    """One line: how many stored names break the rule, per column; and how many columns were not checked."""
    unchecked = f"; {len(skipped)} column(s) not checked" if skipped else ""
    if not findings:
        return f"{service_name}: every checked stored name is readable{unchecked}"
    counts = {}
    for finding in findings:
        key = f"{finding.table}.{finding.column}"
        counts[key] = counts.get(key, 0) + 1
    each = ", ".join(f"{key}: {count}" for key, count in counts.items())
    return (f"{service_name}: {len(findings)} stored name(s) break the readable-name rule ({each}); "
            f"none rewritten{unchecked}")


def check(service_name, url=None, skipped=None):
    """The Findings of `service_name`'s database (`url`, or common.config.database_url), without logging them.
    A SQLite file that does not exist is not created: FileNotFoundError."""
    from common.config import database_url
    from common.db import get_engine

    url = url or database_url(service_name)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).exists():
        raise FileNotFoundError(parsed.database)
    with get_engine(url).connect() as connection:
        try:
            return find(connection, service_name, skipped)
        finally:
            connection.rollback()


def main(argv):
    """Print each service's findings. The exit code is 0 whatever was found; 1 for an unknown service or
    a database that could not be opened."""
    from common.config import SERVICES

    unknown = [name for name in argv if name not in SERVICES]
    if unknown:
        print(f"name_check: unknown service {unknown[0]!r}; one of {', '.join(SERVICES)}", file=sys.stderr)
        return 1
    status = 0
    for name in argv or SERVICES:
        if not columns_of(name):
            print(f"{name}: no human-facing name columns")
            continue
        skipped = []
        try:
            findings = check(name, skipped=skipped)
        except FileNotFoundError as missing:
            print(f"{name}: no database yet ({missing}); nothing to check")
            continue
        except SQLAlchemyError as exc:
            print(f"{name}: the database could not be read ({type(exc).__name__})", file=sys.stderr)
            status = 1
            continue
        for name_column, reason in skipped:
            print(f"{name}: {name_column.table}.{name_column.column} not checked: {reason}")
        for finding in findings:
            print(finding.message())
        print(summary(name, findings, skipped))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
