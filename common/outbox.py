"""Transactional outbox: a change and its event are committed together, then relayed to RabbitMQ.

`record(session, envelope)` adds the event to the service's `outbox` table inside the caller's
transaction. The `OutboxRelay` dependency runs a green thread per service process that publishes
unpublished rows in order (persistent messages, publisher confirms awaited once per batch) and marks
them published only after the broker confirmed them. A crash or a broker outage between commit and
publish loses nothing: the row stays and is sent later. A crash after publishing but before marking
can send a row twice; consumers store events by `event_id`, so that is harmless.

Each event is published in a producer span (common.tracing), the child of the span that made the change
(the envelope's `traceparent`, recorded in the change's transaction), and carries the span's context and
the request's id as `nameko.traceparent` and `nameko.request_id` headers: Nameko's consumers unpack them
into their worker's context data, so a reaction continues the trace and its log lines name the request.
"""
import json
import logging
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from functools import cache

import eventlet
import eventlet.event
from kombu import Connection, Producer
from nameko.extensions import DependencyProvider
from sqlalchemy import JSON, DateTime, Integer, String, delete, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from common import metrics, tracing
from common.db import service_store
from common.events import CHANGE_EXCHANGE, CONSUMER_QUEUES, change_event
from common.framework.consume import ACK_FAILURES as BROKER_GONE
from common.queues import DEAD_LETTER_QUEUE
from common.timeutil import parse_iso, utcnow

log = logging.getLogger(__name__)

# Declared before publishing (once per channel): an event is never dropped for lack of its queues, and a
# quorum queue's dead letters never for lack of theirs (common.queues).
_DECLARED = [CHANGE_EXCHANGE, *CONSUMER_QUEUES, DEAD_LETTER_QUEUE]


class OutboxMixin:
    """Columns of the outbox table; each service declares `class OutboxEvent(OutboxMixin, Base)`."""
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    envelope: Mapped[dict] = mapped_column(JSON)
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    published_at = mapped_column(DateTime(timezone=True), nullable=True, index=True)


# Which outbox models the current worker recorded events in. Thread-local is green-thread-local under
# eventlet, and Nameko runs a worker and its teardown in one green thread, so the flag belongs to
# exactly that worker. A hint only: the relay's periodic sweep finds every row regardless.
_worker = threading.local()


def record(session, outbox_model, envelope):
    """Add `envelope` to the outbox in the session's transaction; returns it."""
    # A plain INSERT, not an ORM object: the row is never read back in the transaction, and on the hot
    # paths (a spend) the unit of work cost more than the statement.
    session.execute(_insert(outbox_model), {"event_id": envelope["event_id"], "type": envelope["type"],
                                            "envelope": envelope, "created_at": parse_iso(envelope["occurred_at"])})
    recorded(outbox_model)
    return envelope


def recorded(outbox_model):
    """Tell this process's relay to wake when the current worker ends (see OutboxRelay.worker_teardown): the
    worker recorded events in `outbox_model`, or another worker of the process did for it (a spend's batch)."""
    if not hasattr(_worker, "recorded"):
        _worker.recorded = set()
    _worker.recorded.add(outbox_model)


@cache
def _insert(outbox_model):
    return insert(outbox_model.__table__)


def emitter(outbox_model):
    """The `emit()` of one service (its `events.py` binds it to the service's outbox table): builds one
    change event (common.events.change_event) and records it in the session's transaction.

    `actor` is an Identity (the caller) or an actor dict (SYSTEM_ACTOR, or an event's actor); `state`
    carries the full state of what changed for other services' read models (common.readmodels)."""
    def emit(session, type, action, organization_id, actor, target_type, target_id,
             before=None, after=None, correlation_id=None, occurred_at=None, state=None):
        if hasattr(actor, "as_actor"):
            actor = actor.as_actor()
        return record(session, outbox_model, change_event(
            type, action, organization_id, actor, target_type, target_id, before=before, after=after,
            correlation_id=correlation_id, occurred_at=occurred_at, state=state))
    return emit


def publish_batch(store, outbox_model, producer, batch_size=100, service=None):
    """Publish up to `batch_size` unpublished events, oldest first; returns how many were sent. A row is
    marked published only once the broker confirmed the whole batch; on an error nothing is marked (those
    the broker did take are sent again; consumers store by event_id).

    PostgreSQL: the rows are claimed with FOR UPDATE SKIP LOCKED, so replicas of one service relay
    disjoint batches; the claim (row locks on outbox rows only) is held while publishing. Two round trips a
    batch (`_claimed`): BEGIN and the claim sent as one string, the mark and COMMIT as another, on a
    connection the relay keeps (no pool ping per batch; a connection that fails is dropped and the next
    batch opens another, as the relay retries). SQLite has one
    writer per database, so there is nothing to claim, and holding its write lock while waiting for the
    broker would stop every spend of the process meanwhile: the batch is read, published and confirmed
    outside any transaction, then marked in a short one. `service`: whose relay publishes (its spans').
    """
    columns = (outbox_model.id, outbox_model.type, outbox_model.event_id, outbox_model.envelope)
    unpublished = (select(*columns).where(outbox_model.published_at.is_(None))
                   .order_by(outbox_model.id).limit(batch_size))
    if store.engine.dialect.name != "postgresql":
        with store.read() as session:
            rows = session.execute(unpublished).all()
        if rows:
            _publish(producer, rows, service)
            with store.write() as session:
                session.execute(update(outbox_model).where(outbox_model.id.in_([row.id for row in rows]))
                                .values(published_at=utcnow()))
        return len(rows)
    with _claimed(store, outbox_model, batch_size) as rows:
        if rows:
            _publish(producer, rows, service)
        return len(rows)


_relay_connections = {}     # (database url, outbox table) -> the relay's own connection (PostgreSQL)


@contextmanager
def _claimed(store, outbox_model, batch_size):
    """PostgreSQL: the oldest unpublished rows, claimed (FOR UPDATE SKIP LOCKED) until the block ends, then
    marked published and committed; rolled back if the block raises. Two round trips (see publish_batch)."""
    key = (store.url, outbox_model.__tablename__)
    connection = _relay_connections.pop(key, None)
    if connection is None:
        connection = store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    table, healthy = outbox_model.__tablename__, False
    try:
        rows = connection.exec_driver_sql(
            f"BEGIN; SELECT id, type, event_id, envelope FROM {table} WHERE published_at IS NULL "
            f"ORDER BY id LIMIT %(n)s FOR UPDATE SKIP LOCKED", {"n": batch_size}).all()
        try:
            yield rows
        except BaseException:
            connection.exec_driver_sql("ROLLBACK")
            healthy = True
            raise
        if rows:
            connection.exec_driver_sql(f"UPDATE {table} SET published_at = %(now)s WHERE id = ANY(%(ids)s); COMMIT",
                                       {"now": utcnow(), "ids": [row.id for row in rows]})
        else:
            connection.exec_driver_sql("COMMIT")
        healthy = True
    finally:
        if healthy and key not in _relay_connections:
            _relay_connections[key] = connection
        elif healthy:
            connection.close()
        else:                       # whatever state it is in: the next batch opens another
            connection.invalidate()
            connection.close()


def _publish(producer, rows, service=None):
    """Publish the rows' envelopes as persistent messages and wait for the broker's confirms (once); each
    in a producer span that ends with the batch's confirms."""
    spans = []
    try:
        for row in rows:
            spans.append(span := _publication_span(service, row))
            producer.publish(
                json.dumps(row.envelope), exchange=CHANGE_EXCHANGE, routing_key=row.type,
                content_type="application/json", delivery_mode=2, declare=_DECLARED,
                message_id=row.event_id,
                headers=tracing.message_headers(span.context, request_id=row.envelope.get("request_id")),
            )
        wait_for_confirms = getattr(producer, "wait_for_confirms", None)
        if wait_for_confirms is not None:
            wait_for_confirms()
    except Exception as error:
        for span in spans:
            span.end(error)
        raise
    for span in spans:
        span.end()
    metrics.events_published(row.type for row in rows)


def _publication_span(service, row):
    """The producer span of publishing `row`'s event, child of the span that made the change."""
    span = tracing.start(service, f"publish {row.type}", tracing.PRODUCER, tracing.extract(row.envelope))
    if span.recording:
        span.set_attribute("messaging.system", "rabbitmq")
        span.set_attribute("messaging.operation.type", "send")
        span.set_attribute("messaging.destination.name", CHANGE_EXCHANGE.name)
        span.set_attribute("messaging.rabbitmq.destination.routing_key", row.type)
        span.set_attribute("messaging.message.id", row.event_id)
    return span


def prune_published(store, outbox_model, keep=timedelta(days=7)):
    """Delete rows published more than `keep` ago (kept a while for inspection); returns how many."""
    with store.write() as session:
        return session.execute(delete(outbox_model).where(
            outbox_model.published_at.is_not(None), outbox_model.published_at < utcnow() - keep)).rowcount


class BatchConfirmingProducer:
    """Publishes on a channel in confirm mode without waiting after each message, then waits once for
    the broker's confirms of everything published since (`wait_for_confirms`): a batch of events costs
    one round trip instead of one per event."""

    CONFIRM_TIMEOUT_SECONDS = 10

    def __init__(self, connection):
        self.connection = connection
        self.channel = connection.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._acked)
        self.channel.events["basic_nack"].add(self._refused)
        self.producer = Producer(self.channel)
        self.sent = 0                   # the delivery tag of the last message published on the channel
        self.unconfirmed = set()
        self.refused = False

    def publish(self, body, **options):
        self.producer.publish(body, **options)
        self.sent += 1
        self.unconfirmed.add(self.sent)

    def _acked(self, tag, multiple):
        self.unconfirmed = {t for t in self.unconfirmed if t > tag} if multiple else self.unconfirmed - {tag}

    def _refused(self, tag, multiple):
        self.refused = True
        self._acked(tag, multiple)

    def wait_for_confirms(self):
        deadline = time.monotonic() + self.CONFIRM_TIMEOUT_SECONDS
        while self.unconfirmed and not self.refused:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the broker confirmed {len(self.unconfirmed)} message(s) too late")
            self.connection.drain_events(timeout=remaining)
        if self.refused:
            self.refused, self.unconfirmed = False, set()
            raise ConnectionError("the broker refused (nacked) a published event")


class OutboxRelay(DependencyProvider):
    """Relays this service's outbox; a worker that ends wakes it, a timer sweeps every second anyway.
    (On PostgreSQL it publishes while holding its claim on the batch's rows, which the "no network call
    while writing" rule of common.db allows for these locks alone: no request ever waits on an outbox row.)"""

    PRUNE_EVERY_SECONDS = 3600
    BATCH_SIZE = 100

    def __init__(self, outbox_model, interval=1.0):
        self.outbox_model = outbox_model
        self.interval = interval

    def setup(self):
        self.store = service_store(self.container)
        self.amqp_uri = self.container.config["AMQP_URI"]
        metrics.watch_outbox(self.store, self.outbox_model)     # its backlog, read when scraped
        self._wakeup = eventlet.event.Event()
        self._running = False
        self._thread = None

    def start(self):
        self._running = True
        self._thread = self.container.spawn_managed_thread(self._run)

    def stop(self):
        self._running = False
        self.wake()
        if self._thread is not None:
            self._thread.wait()

    def kill(self):
        self._running = False
        if self._thread is not None:
            self._thread.kill()

    def wake(self):
        if not self._wakeup.ready():
            self._wakeup.send(True)

    def worker_teardown(self, worker_ctx):
        # The worker's transaction has committed by now: relay its events right away. Workers that
        # recorded nothing (reads) leave the relay asleep.
        recorded = getattr(_worker, "recorded", set())
        if self.outbox_model in recorded:
            recorded.discard(self.outbox_model)
            self.wake()

    def get_dependency(self, worker_ctx):
        return self

    def _run(self):
        connection = None
        next_prune = 0
        failing_since = None        # an outage is logged once when it starts and once when it ends
        while self._running:
            # A fresh event before publishing: a wake-up that arrives while we publish is kept.
            self._wakeup = eventlet.event.Event()
            try:
                if connection is None:
                    connection = Connection(self.amqp_uri)
                    producer = BatchConfirmingProducer(connection)
                # Again at once only after a full batch: rows committed since the claim woke the relay (each
                # worker that recorded one does at its end), so a claim that would find nothing is not made.
                while self._running and self.publish_once(producer) >= self.BATCH_SIZE:
                    pass
                if time.monotonic() >= next_prune:
                    prune_published(self.store, self.outbox_model)
                    next_prune = time.monotonic() + self.PRUNE_EVERY_SECONDS
                if failing_since is not None:
                    log.warning("outbox relay of %s works again after %.0f s; nothing was lost",
                                self.container.service_name, time.monotonic() - failing_since)
                    failing_since = None
            except Exception as error:  # broker or database down: keep the rows, retry every interval
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("outbox relay of %s cannot publish (%s); the events wait in the outbox and it "
                                "retries every %g s", self.container.service_name, error, self.interval,
                                # A broker gone is said in a line; anything else (the database...) with its traceback.
                                exc_info=not isinstance(error, BROKER_GONE))
                if connection is not None:
                    connection.release()
                connection = None
                eventlet.sleep(self.interval)
            with eventlet.Timeout(self.interval, False):
                self._wakeup.wait()
        if connection is not None:
            connection.release()

    def publish_once(self, producer):
        return publish_batch(self.store, self.outbox_model, producer, batch_size=self.BATCH_SIZE,
                             service=self.container.service_name)
