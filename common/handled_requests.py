"""A command runs once even when RabbitMQ hands its RPC request over twice.

Nameko acknowledges an RPC request after its reply is sent. A process that dies after a command
committed and before the acknowledgement leaves the request unacknowledged, and the broker gives it to
the next process (a twin, or the same service restarted), which would run the command again: a second
grant of the same credit, or a rename repeated after another client's rename, undoing it.

So the first write transaction of every RPC request records the request's id (its correlation id,
unique per call) in the service's `handled_requests` table, in the same transaction as the change. A
delivery that finds the id there is a repeat of a request whose change was saved: its write is refused
with 503 `request_interrupted` and rolled back, and the caller learns that the change was made once and
the answer lost. A spend under an Idempotency-Key finds its stored answer before it writes anything on
SQLite and replays it; elsewhere a retry with the same key replays it.

Each service with RPC commands declares `class HandledRequest(HandledRequestMixin, Base)` and passes it
to its Database provider (common.db), which marks the worker's request (`begin`/`end`) and prunes old
rows; Store.write() calls `record`.
"""
import threading
from datetime import timedelta

from sqlalchemy import DateTime, String, delete
from sqlalchemy.orm import Mapped, mapped_column

from common.errors import ServiceUnavailable
from common.sql import conflict_insert
from common.timeutil import utcnow

KEPT_FOR = timedelta(days=1)        # a redelivery comes within seconds; a day is plenty


class HandledRequestMixin:
    __tablename__ = "handled_requests"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    handled_at = mapped_column(DateTime(timezone=True), nullable=False, index=True)


def request_interrupted():
    return ServiceUnavailable("The service stopped while handling this request, after saving part or all of "
                              "it; nothing was done twice. Read it back before sending it again (a retry "
                              "under the same Idempotency-Key replays its answer).", code="request_interrupted")


class _Request:
    def __init__(self, request_id, model):
        self.request_id, self.model, self.recorded = request_id, model, False


# The request of the current worker. Thread-local is green-thread-local under eventlet, and Nameko runs a
# worker, its setup and its teardown in one green thread (as common.outbox relies on too).
_current = threading.local()


def begin(request_id, model):
    _current.request = _Request(request_id, model) if request_id and model is not None else None


def end():
    _current.request = None


def record(session):
    """In a write transaction: record the current worker's request as handled, the first time. Returns
    True if it did (the caller forgets it again if the transaction rolls back: `forget`); raises
    503 request_interrupted if an earlier delivery of the request already committed a change."""
    request = getattr(_current, "request", None)
    if request is None or request.recorded:
        return False
    record_once = (conflict_insert(session)(request.model)
                   .values(request_id=request.request_id, handled_at=utcnow()).on_conflict_do_nothing())
    inserted = session.execute(record_once).rowcount
    if inserted == 0:
        raise request_interrupted()
    request.recorded = True
    return True


def forget():
    """The transaction that recorded the request rolled back: the next write transaction records it."""
    request = getattr(_current, "request", None)
    if request is not None:
        request.recorded = False


def prune(store, model, keep=KEPT_FOR):
    with store.write() as session:
        return session.execute(delete(model).where(model.handled_at < utcnow() - keep)).rowcount
