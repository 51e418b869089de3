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

Each service with RPC commands declares `class HandledRequest(HandledRequestMixin, Base)` and names it to
its Database provider (common.db), which prunes old rows; the command pipeline's unit of work
(common.unit_of_work) calls `record` in the command's first write transaction.
"""
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


def record(session, model, request_id):
    """In the command's first write transaction: record the request as handled; 503 request_interrupted
    if an earlier delivery of it already committed a change (common.unit_of_work)."""
    record_once = (conflict_insert(session)(model)
                   .values(request_id=request_id, handled_at=utcnow()).on_conflict_do_nothing())
    if session.execute(record_once).rowcount == 0:
        raise request_interrupted()


def prune(store, model, keep=KEPT_FOR):
    with store.write() as session:
        return session.execute(delete(model).where(model.handled_at < utcnow() - keep)).rowcount
