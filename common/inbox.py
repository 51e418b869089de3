"""Consumer side of change events: handle each event once, even if RabbitMQ delivers it again.

A redelivery happens after a lost ack (a worker killed, a connection closed before the ack). Effects
that are idempotent in themselves are not enough: between the first delivery and the second, someone
may have undone the effect on purpose (an assignment removed by an Admin), and a second run would
redo it. So a consumer records the event's id in its own `processed_events` table in the same
transaction as the effects; a second delivery finds it and does nothing.

Each service that reacts to other services' events declares
`class ProcessedEvent(ProcessedEventMixin, Base)`.
"""
from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from common.timeutil import utcnow


class ProcessedEventMixin:
    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    processed_at = mapped_column(DateTime(timezone=True), nullable=False)


def first_delivery(session, model, event):
    """True (and the event recorded as processed, in the caller's transaction) unless it already was.

    Two replicas handling the same event at once both get True here; the second commit then fails on
    the primary key, its transaction (effects included) rolls back and the message is requeued, to be
    found processed next time."""
    if session.get(model, event["event_id"]) is not None:
        return False
    session.add(model(event_id=event["event_id"], type=event["type"], processed_at=utcnow()))
    return True
