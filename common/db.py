"""Database access for services: one engine per process and database, sessions per worker.

SQLite (the default) and PostgreSQL behave differently under concurrency, and this module hides it:
- PostgreSQL goes through psycopg2 with psycogreen's eventlet patch, so a query waits without blocking
  the other green threads of the process (a plain C driver would block them all).
- SQLite allows one writer at a time and its busy-wait blocks the whole process. Write transactions
  therefore start with BEGIN IMMEDIATE (the write lock is taken at the start, not half-way through,
  so two transactions cannot deadlock on upgrading), and green threads of one process queue for it
  on a green lock instead of inside SQLite. Rule for callers: never make an RPC call while a write
  transaction is open.
- SQLite's WAL is synced to disk at checkpoints, not at every commit (synchronous=NORMAL): a commit is
  then safe when any process crashes or is killed (the write is in the operating system's cache), not
  when the machine loses power, where the last commits before it may roll back (never corrupting the
  file). A commit's fsync blocked the whole service process (0.3 ms or more each, a fifth of credits'
  time under load). SQLITE_SYNCHRONOUS=FULL syncs every commit; PostgreSQL always does.
"""
import copy
import logging
import threading
from contextlib import contextmanager

import eventlet
import psycogreen.eventlet
from nameko.extensions import DependencyProvider
from sqlalchemy import create_engine, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import deadlines, handled_requests
from common.config import database_url, settings
from common.errors import ServiceUnavailable

# Idempotent; makes psycopg2 yield to the eventlet hub while waiting on the server.
psycogreen.eventlet.patch_psycopg()

log = logging.getLogger(__name__)

# The context key under which common.framework.rpc gives a worker its RPC request's id (its correlation id).
RPC_REQUEST_ID = "rpc_request_id"

_engines = {}
_engines_lock = threading.Lock()
_sqlite_write_locks = {}


def get_engine(url):
    """The process-wide engine for `url` (engines hold connection pools: share them)."""
    with _engines_lock:
        if url not in _engines:
            _engines[url] = _create_engine(url)
        return _engines[url]


def _create_engine(url):
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            # Take over transaction control from the sqlite3 module (see SQLAlchemy's pysqlite docs).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={settings().sqlite_synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection):
            mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
            connection.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def is_sqlite(engine):
    return engine.dialect.name == "sqlite"


class Store:
    """A service's database: `read()` and `write()` give sessions that commit or roll back as a unit."""

    request_id = None       # the RPC request a worker's view serves (for_request)
    deadline = None         # and its caller's deadline (common.deadlines): no commit past it

    def __init__(self, url):
        self.url = url
        self.engine = get_engine(url)
        self._sqlite = is_sqlite(self.engine)
        if self._sqlite:
            import eventlet.semaphore
            self._write_lock = _sqlite_write_locks.setdefault(url, eventlet.semaphore.Semaphore())

    @contextmanager
    def read(self):
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @property
    def is_sqlite(self):
        return self._sqlite

    def for_request(self, request_id, deadline=None):
        """This store as a worker serving RPC request `request_id` sees it: the pipeline's unit of work
        (common.unit_of_work) records the request as handled in its first write transaction, and a write
        transaction commits only before the caller's `deadline` (check_deadline)."""
        view = copy.copy(self)
        view.request_id, view.deadline = request_id, deadline
        return view

    def check_deadline(self):
        """Refuses (503, the transaction rolled back) a commit too close to the caller's deadline for its
        answer to reach them: the caller times out and tells its client "not applied", which stays true."""
        if deadlines.passed(self.deadline, deadlines.DEADLINE_MARGIN_SECONDS):
            log.warning("a command's commit was refused: %.1f s left before its caller's deadline",
                        self.deadline - deadlines.now())
            raise ServiceUnavailable("The request took too long and was not applied; try again.",
                                     code="service_unavailable")

    @contextmanager
    def write(self):
        """A write transaction; committed when the block ends, rolled back on an exception."""
        if not self._sqlite:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
                self.check_deadline()
            return
        with self._write_lock:
            connection = self.engine.connect().execution_options(sqlite_begin="IMMEDIATE")
            try:
                with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                    yield session
                    self.check_deadline()
            finally:
                connection.close()


def retry_on_unique_race(attempt):
    """Run `attempt()`, a write transaction that decides from what it reads; when its commit loses a race
    on a unique key (two requests inserting the same row at once: one Idempotency-Key, one user's first
    sign-in, one pending invitation or transfer), run it once more: seeing the winner's row, it decides
    again (replays the stored answer, returns the row, or refuses with the proper 409). The one way to
    handle such a race; a second clash propagates."""
    try:
        return attempt()
    except IntegrityError:
        return attempt()


class ReadThenWrite:
    """One unit of work in two phases, `read()` then `write()` (common.unit_of_work.UnitOfWork.read_then_write)."""

    def __init__(self, read, write):
        self.read, self.write = read, write


def service_store(container):
    """The `Store` of the service a container runs: `<SERVICE>_DATABASE_URL` or the SQLite default."""
    return Store(database_url(container.service_name))


class Database(DependencyProvider):
    """Gives each worker the service's `Store` (service_store), as the RPC request it serves sees it
    (Store.for_request). Names the service's tables of the command pipeline (common.unit_of_work):
    `handled_requests` (its HandledRequest model: a repeated delivery of a request cannot write again,
    common.handled_requests; old records are pruned every hour) and `idempotent_requests` (its
    IdempotentRequest model: the answers stored under Idempotency-Keys, common.idempotency)."""

    PRUNE_EVERY_SECONDS = 3600

    def __init__(self, handled_requests=None, idempotent_requests=None):
        self.handled_requests = handled_requests
        self.idempotent_requests = idempotent_requests

    def setup(self):
        self.store = service_store(self.container)

    def start(self):
        if self.handled_requests is not None:
            self.container.spawn_managed_thread(self._prune_every_hour)

    def get_dependency(self, worker_ctx):
        context = worker_ctx.context_data
        return self.store.for_request(context.get(RPC_REQUEST_ID), deadlines.of_context(context))

    def _prune_every_hour(self):
        while True:
            try:
                handled_requests.prune(self.store, self.handled_requests)
            except Exception:           # the database away for a moment: next hour
                log.warning("could not prune handled requests", exc_info=True)
            eventlet.sleep(self.PRUNE_EVERY_SECONDS)
