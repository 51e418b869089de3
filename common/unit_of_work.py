"""The unit of work of one command: what the pipeline (common.commands) does around a command's decision.

A command's method receives an open write transaction (`session`) and decides; the pipeline, through a
UnitOfWork, does the rest, in this order and in that one transaction:
- records the RPC request as handled (common.handled_requests: a second delivery of a request whose change
  committed cannot write again);
- replays the stored answer of an earlier request with the same Idempotency-Key (and the same values,
  else 409) instead of running the command again;
- runs the command, then stores its answer under the key (common.idempotency);
- commits: the change, its outbox events (added to the session by `emit`) and both records together;
- after the commit, runs what the command asked to happen then (`after_commit`: a call to the payment provider, say);
- when the commit loses a race on a unique key (two requests with one key, one user's first sign-in),
  runs the whole attempt once more, where it sees the winner's row (common.db.retry_on_unique_race).

A command that must call another service between reading and writing, or read outside SQLite's single
write lock (the spend: `phases=True` in its declaration), receives the UnitOfWork itself: it opens its
phases with `read_then_write()` (or `read()` and `write()`), asks `replay(session)` and `remember(session,
answer)` where they belong, and `run(work, ...)` for a part that is one write transaction. The handled
request is recorded by its first write transaction all the same, and the race retried by the pipeline.
"""
from contextlib import contextmanager

from common import handled_requests, idempotency
from common.db import ReadThenWrite, retry_on_unique_race
from common.timeutil import utcnow

_AFTER_COMMIT = "after_commit"      # the session.info key of what runs once the transaction committed


def after_commit(session, effect):
    """Run `effect()` once the command's transaction has committed (never if it rolls back): an effect
    outside the database, such as an email, that must not happen for a change that was not saved."""
    session.info.setdefault(_AFTER_COMMIT, []).append(effect)


def effects_after_commit(session):
    """Take the effects asked for in this transaction (`after_commit`), to run once it committed: for a
    write that is not a command's (an event's reaction, common.inbox)."""
    return session.info.pop(_AFTER_COMMIT, [])


class UnitOfWork:
    """One command's transactions, as the pipeline runs them (see the module's text).

    `store` is the service's database (common.db.Store; the worker's view of it knows its RPC request's
    id); `models` is the service's Database provider, which names its HandledRequest and IdempotentRequest
    tables; `user_id`, `key` and `operation` are who sent the Idempotency-Key, the key (None without one)
    and the fingerprint of the request it is stored under."""

    def __init__(self, store, models=None, user_id=None, key=None, operation=None):
        self.store = store
        self.request_id = getattr(store, "request_id", None)
        self.handled_model = getattr(models, "handled_requests", None)
        self.keyed_model = getattr(models, "idempotent_requests", None)
        self.user_id, self.key, self.operation = user_id, key, operation
        self._recorded = False

    # ---- transactions ---------------------------------------------------------------------------------
    def read(self):
        return self.store.read()

    @contextmanager
    def write(self):
        """A write transaction of the command. Its first records the request as handled; if it rolls
        back, the record goes with it and the command's next write transaction records it."""
        recording = not self._recorded and self.request_id is not None and self.handled_model is not None
        try:
            with self.store.write() as session:
                if recording:
                    handled_requests.record(session, self.handled_model, self.request_id)
                    self._recorded = True
                yield session
                effects = effects_after_commit(session)
        except BaseException:
            if recording:
                self._recorded = False
            raise
        for effect in effects:
            effect()

    @contextmanager
    def read_then_write(self):
        """The phases of a command that reads, then writes: on PostgreSQL
        one transaction on one connection, on SQLite a read transaction and then the write one."""
        if self.store.is_sqlite:
            yield ReadThenWrite(read=self.read, write=self.write)
            return
        with self.write() as session:
            yield ReadThenWrite(read=lambda: _kept_open(session), write=lambda: _kept_open(session))

    @property
    def unrecorded_request(self):
        """The RPC request's id while no write transaction of the command has recorded it (else None), for a
        command whose own writes record it (the spend's batches on PostgreSQL, services/credits/spend_batches.py,
        which then call `request_recorded`)."""
        return None if self._recorded or self.handled_model is None else self.request_id

    def request_recorded(self):
        self._recorded = True

    # ---- the Idempotency-Key ---------------------------------------------------------------------------
    def replay(self, session):
        """The stored answer of an earlier request with this key (marked replayed), or None."""
        if not self.key:
            return None
        return idempotency.find_replay(session, self.keyed_model, self.user_id, self.key, self.operation)

    def remember(self, session, answer):
        """Store the answer under the key, in the transaction of the change it describes."""
        if self.key:
            idempotency.remember(session, self.keyed_model, self.user_id, self.key, self.operation, answer,
                                 utcnow())

    # ---- the one-transaction command --------------------------------------------------------------------
    def run(self, work, *args):
        """`work(session, *args)` in one write transaction: the stored answer replayed, or the work's
        answer stored under the key; once more when the commit loses a race on a unique key."""
        def attempt():
            with self.write() as session:
                answer = self.replay(session)
                if answer is None:
                    answer = work(session, *args)
                    self.remember(session, answer)
            return answer
        return retry_on_unique_race(attempt)


@contextmanager
def _kept_open(session):
    yield session
