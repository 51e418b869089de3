"""Schema migrations: one Alembic history per service, in services/<name>/migrations.

    python -m common.migrate orgs [members credits audit]     upgrade each to head

Once at head, each service's stored names that break the readable-name rule are logged (common.name_check):
reported, never rewritten.

Replicas starting together may all run this: on PostgreSQL an advisory lock makes them take turns.
"""
import sys
import zlib

from alembic import command, context
from alembic.config import Config
from sqlalchemy import text

from common import name_check
from common.config import PROJECT_ROOT, SERVICES, database_url
from common.db import get_engine


def alembic_config(service_name, url=None):
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "services" / service_name / "migrations"))
    config.set_main_option("sqlalchemy.url", (url or database_url(service_name)).replace("%", "%%"))
    return config


def upgrade(service_name, url=None):
    url = url or database_url(service_name)
    engine = get_engine(url)
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"),
                               {"key": zlib.crc32(f"migrate:{service_name}".encode())})
        config = alembic_config(service_name, url)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()
        # Stored names that break the readable-name rule: reported (common.name_check), never rewritten.
        name_check.report_after_migration(connection, service_name)


def run_env(target_metadata):
    """Body of every service's migrations/env.py (online mode only)."""
    connection = context.config.attributes.get("connection")
    if connection is None:  # run from the alembic CLI
        with get_engine(context.config.get_main_option("sqlalchemy.url")).connect() as connection:
            _migrate(connection, target_metadata)
            connection.commit()
    else:
        _migrate(connection, target_metadata)


def _migrate(connection, target_metadata):
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def main(argv):
    if argv[:1] == ["revision"]:        # python -m common.migrate revision SERVICE "message"
        new_revision(argv[1], argv[2])
        return
    for name in argv or SERVICES:
        if name not in SERVICES:
            sys.exit(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
        upgrade(name)
        print(f"migrate: {name} is at head")


def new_revision(service_name, message):
    """Autogenerate a revision from the models' difference to a scratch database at head.

    Alembic wants its template inside the script folder; the one template lives in common/ and is
    copied in for the duration of the call."""
    import shutil
    import tempfile

    template = PROJECT_ROOT / "common" / "alembic_script.py.mako"
    target = PROJECT_ROOT / "services" / service_name / "migrations" / "script.py.mako"
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/scratch.sqlite"
        upgrade(service_name, url)
        shutil.copy(template, target)
        try:
            with get_engine(url).connect() as connection:
                config = alembic_config(service_name, url)
                config.attributes["connection"] = connection
                versions = target.parent / "versions"
                rev_id = f"{len(list(versions.glob('*.py'))) + 1:04d}"
                command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
        finally:
            target.unlink()


if __name__ == "__main__":
    main(sys.argv[1:])
