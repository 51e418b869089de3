"""Consumer side of change events: every consumer reacts to each event once, by one rule.

A redelivery happens after a lost ack (a worker killed, a connection closed before the ack). Effects
that are idempotent in themselves are not enough: between the first delivery and the second, someone
may have undone the effect on purpose (an assignment removed by an Admin), and a second run would
redo it. So, in every service that consumes events (orgs, members, credits, audit):

    the consumer records the event's id in its inbox in the write transaction of the event's effects,
    and runs the effects only if the record is new.

A redelivery finds the record and does nothing; an effect that raises rolls the record back with it,
so the requeued event runs again. The states an event carries for read models (common.readmodels)
are effects like the others: applied on the first delivery only (they are idempotent by version too).

- The record is an INSERT .. ON CONFLICT (event_id) DO NOTHING (common.sql), the first statement of the
  transaction: there is no window between a check and an insert. On PostgreSQL a replica handling the
  same event at the same moment waits for the other's commit, then finds the record (or records the
  event itself if the other rolled back).
- An inbox (`Inbox`) is a table with a unique `event_id`: by default `processed_events`
  (`ProcessedEventMixin`), whose rows go after KEPT_FOR (a redelivery comes within seconds). The
  audit service's inbox is its trail: an entry is the record of its event, kept for ever, and carries
  its place in the trail's hash chain (services/audit/reactions.py applies this rule with records it makes).
- A batch (`react_once_each`, the audit service's consumer) records every event id of the batch in one
  INSERT and runs the effects of the new ones, in one transaction. If that fails on a unique key (an
  effect's row stored at the same moment by a consumer of another replica), the batch's events are
  handled one by one instead, each in its own transaction, so one clash costs no other event.
- A consumer's reactions (`Reactions`) are a table: event type -> effect(session, event).
"""
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import DateTime, String, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from common import metrics, readmodels
from common.sql import conflict_insert
from common.timeutil import utcnow
from common.unit_of_work import effects_after_commit

log = logging.getLogger(__name__)

KEPT_FOR = timedelta(days=1)        # as common.handled_requests: a redelivery comes within seconds
PRUNE_EVERY_SECONDS = 3600


class ProcessedEventMixin:
    """The default inbox: each service that reacts to events declares
    `class ProcessedEvent(ProcessedEventMixin, Base)`."""
    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    processed_at = mapped_column(DateTime(timezone=True), nullable=False, index=True)


def processed_event(event):
    return {"event_id": event["event_id"], "type": event["type"], "processed_at": utcnow()}


@dataclass(frozen=True)
class Inbox:
    """Where a consumer records the events it reacted to: `model` has a unique `event_id` column and
    `record(event)` gives the columns of an event's row. Rows older than `kept_for` are pruned (by their
    `processed_at`); None keeps them."""
    model: type
    record: Callable[[dict], dict] = processed_event
    kept_for: timedelta | None = KEPT_FOR


def distinct(events):
    """`events` without a second copy of one (a batch can hold the same event twice)."""
    first = {}
    for event in events:
        first.setdefault(event["event_id"], event)
    return list(first.values())


def record(session, inbox, events, rows=None):
    """Record `events` in the inbox, in the caller's transaction; returns the ids of those that were not
    recorded before (of an event twice in `events`, its first copy). `rows`: the records, when the caller
    made them (the audit trail's carry their places in its hash chain), else inbox.record(event) each."""
    if not events:
        return set()
    table = inbox.model.__table__
    statement = (conflict_insert(session)(table).on_conflict_do_nothing(index_elements=[table.c.event_id])
                 .returning(table.c.event_id))
    # One statement for the whole batch (SQLAlchemy's "insertmanyvalues": multi-row VALUES, cached).
    return set(session.scalars(statement, rows if rows is not None
                               else [inbox.record(event) for event in distinct(events)]))


def react_once(store, inbox, event, effect):
    """Run `effect(session, event)` in one write transaction with the event's record in `inbox`, unless
    the event is recorded already. Returns False for a redelivery."""
    with store.write() as session:
        new = bool(record(session, inbox, [event]))
        if new:
            effect(session, event)
        effects = effects_after_commit(session)
    metrics.events_consumed([event], {event["event_id"]} if new else ())
    for after in effects:           # e.g. an automatic top-up charged, once the reaction that started it is saved
        after()
    prune_now_and_then(store, inbox)
    return new


def react_once_each(store, inbox, events, effect):
    """A batch: every event recorded, and the effects of those not recorded before run, in one write
    transaction; one transaction per event if that one fails on a unique key. Returns how many were new."""
    events = distinct(events)
    try:
        with store.write() as session:
            new = record(session, inbox, events)
            for event in events:
                if event["event_id"] in new:
                    effect(session, event)
            effects = effects_after_commit(session)
    except IntegrityError:
        log.info("a batch of %d events clashed on a unique key: handled one by one", len(events))
        return sum(react_once(store, inbox, event, effect) for event in events)
    metrics.events_consumed(events, new)
    for after in effects:
        after()
    prune_now_and_then(store, inbox)
    return len(new)


@dataclass(frozen=True)
class Reactions:
    """How a consumer reacts to events: `effects` maps an event type to its effect(session, event);
    `otherwise` is the effect of the other types (None: nothing beyond the record). With `read_models`,
    the states every event carries are applied (newer versions win) before its type's effect."""
    inbox: Inbox
    effects: Mapping[str, Callable] = field(default_factory=dict)
    read_models: readmodels.ReadModels | None = None
    otherwise: Callable | None = None

    def effect(self, session, event):
        if self.read_models is not None:
            readmodels.apply_event_state(session, self.read_models, event)
        effect = self.effects.get(event["type"], self.otherwise)
        if effect is not None:
            effect(session, event)

    def once(self, store, event):
        """One event (react_once); False for a redelivery."""
        return react_once(store, self.inbox, event, self.effect)

    def once_each(self, store, events):
        """A batch (react_once_each); how many were new."""
        return react_once_each(store, self.inbox, events, self.effect)


# ---- pruning: at most once an hour per process and inbox, after a reaction -----------------------------
_pruned_at = {}


def prune(store, inbox, now=None):
    """Delete the records older than the inbox keeps them; returns how many went."""
    if inbox.kept_for is None:
        return 0
    model = inbox.model
    with store.write() as session:
        cutoff = (now or utcnow()) - inbox.kept_for
        return session.execute(delete(model).where(model.processed_at < cutoff)).rowcount


def prune_now_and_then(store, inbox):
    """Prune if this process has not pruned this inbox for PRUNE_EVERY_SECONDS (an hour): every replica
    may, deleting old rows twice is harmless. A failure (the database away for a moment) waits an hour."""
    if inbox.kept_for is None:
        return
    key, now = (store.url, inbox.model.__tablename__), time.monotonic()
    last = _pruned_at.get(key)
    if last is not None and now - last < PRUNE_EVERY_SECONDS:
        return
    _pruned_at[key] = now
    try:
        prune(store, inbox)
    except Exception:
        log.warning("could not prune the inbox %s", inbox.model.__tablename__, exc_info=True)
