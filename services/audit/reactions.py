"""How the audit service reacts to change events: common.events.AUDIT_QUEUE is bound to every event
type, and each event becomes one entry of the trail (trail.py), once, by the one rule of common.inbox.

The trail is the audit service's inbox: an entry is the record of its event (unique by `event_id`, kept
for ever), inserted first in the transaction; its changed fields and the memberships' states the event
carries (applied to the read model, common.readmodels) are its effects, in the same transaction: an
entry is never stored without its state, nor a state applied twice. Each entry is inserted with its
place in its organization's hash chain (trail.Chains, chain.py), its chain's head moved just before.

Events arrive in batches (common.framework.batch_consume): a batch is one transaction, which falls back to
one transaction per event on a redelivery among them, a unique-key clash with another consumer, or a chain
another audit process moved (trail.Chains). On PostgreSQL a delivery whose chains' heads the process knows
and whose events carry no state is stored by one statement (`_store_in_one_statement`, migration 0007)."""
import json
import logging
from datetime import datetime

import eventlet.semaphore
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from common import inbox, metrics, readmodels
from common.event_types import ORGANIZATION_DELETED
from common.sql import one_statement
from common.timeutil import iso
from services.audit import trail
from services.audit.models import READ_MODELS, AuditEntry

log = logging.getLogger(__name__)


def store_entry(session, event):
    """Any change event, its entry recorded: its changed fields, and the states it carries applied."""
    _apply_state(session, event)
    trail.add_changes(session, event)


def _carries_state(event):
    return bool(event.get("state")) or event["type"] == ORGANIZATION_DELETED


STORE_DELIVERY = text("SELECT audit_store_delivery(CAST(:p AS json))")
CHAIN_MOVED, STORED_BEFORE = "AU001", "AU002"       # what audit_store_delivery raises (migration 0007)


_one_at_a_time = {}      # database url -> the green lock of its deliveries stored in one statement


def _store_in_one_statement(store, events):
    """PostgreSQL, a delivery whose chains' heads this process knows and whose events carry no state (nearly
    every one): `_store` in one statement and one round trip (migration 0007), the same rows written. The
    process's deliveries go one at a time (one round trip each): two at once would place their entries from
    the same heads, and the second would fail over to the locked way (ChainMoved)."""
    with _one_at_a_time.setdefault(store.url, eventlet.semaphore.Semaphore()):
        if not CHAINS.know(events):             # forgotten by the one before: the way that reads the heads
            return _store(store, events, read_heads=True)
        return _stored_in_one_statement(store, events)


def _stored_in_one_statement(store, events):
    stamped = CHAINS.stamp(None, events)
    heads = [{"chain_id": chain_id, "seen": stamped.before[chain_id][0], "seq": stamped.after[chain_id][0],
              "hash": stamped.after[chain_id][1]} for chain_id in sorted(stamped.after)]
    changes = [row for event in events for row in trail.change_rows(event)]
    payload = json.dumps({"heads": heads, "entries": stamped.rows, "changes": changes}, default=_as_json)
    try:
        one_statement(store.url, STORE_DELIVERY, {"p": payload})
    except DBAPIError as error:
        CHAINS.forget()
        code = getattr(error.orig, "pgcode", None)
        if code == CHAIN_MOVED:
            raise trail.ChainMoved() from error
        if code == STORED_BEFORE:
            if len(events) == 1:
                return 0
            raise _Redelivered() from error
        raise
    CHAINS.remember(stamped)
    metrics.events_consumed(events, {e["event_id"] for e in events}, audit=True)
    return len(events)


def _as_json(value):
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _apply_state(session, event):
    """The read model takes the states the event carries (newer versions only). A state that is not
    well-formed is its producer's bug: retrying could never fix it, so it is logged and left out, and
    the entry is stored all the same (the read model catches up with the next newer state)."""
    if not _carries_state(event):
        return                      # most events (a spend) carry none: no savepoint for nothing
    try:
        with session.begin_nested():
            readmodels.apply_event_state(session, READ_MODELS, event)
    except (KeyError, TypeError, ValueError, AttributeError):
        log.error("event %s (%s) carries a state that is not well-formed: stored without applying it",
                  event["event_id"], event["type"], exc_info=True)


INBOX = inbox.Inbox(AuditEntry, record=trail.entry, kept_for=None)
CHAINS = trail.Chains()         # the heads this process last wrote (trail.Chains)


class _Redelivered(Exception):
    """A delivery held an event stored before: its entries' places were counted for it."""


def handle_change_events(store, events):
    """A batch of change events: each stored once, with its state, in its organization's chain, in one
    transaction. If that fails (an event stored before, a chain another audit process moved, a unique
    key), they are stored one at a time, each chain's head read and locked. Returns how many were new."""
    events = inbox.distinct(events)
    try:
        return _store(store, events)
    except (_Redelivered, trail.ChainMoved, IntegrityError) as failure:
        log.info("a batch of %d events is stored one by one (%s)", len(events), type(failure).__name__)
        return sum(_store(store, [event], locked=True) for event in events)


def handle_change_event(store, event):
    """One change event: stored in the trail with the state it carries. Returns False for a redelivery.
    A failure of its own effects (a unique key) is raised, and the broker's next delivery stores it."""
    try:
        return _store(store, [event]) == 1
    except trail.ChainMoved:
        return _store(store, [event], locked=True) == 1


def _store(store, events, locked=False, read_heads=False):
    """The one rule of common.inbox with the trail's own records: the entries (each with its place in its
    chain, the chains' heads moved first) inserted first of what the event does, their effects only if they
    are all new. A single event stored before is 0; in a batch it is _Redelivered (nothing kept)."""
    if not (locked or read_heads or store.is_sqlite) and CHAINS.know(events) \
            and not any(_carries_state(e) for e in events):
        return _store_in_one_statement(store, events)
    try:
        with store.write() as session:
            stamped = CHAINS.stamp(session, events, locked)
            CHAINS.move(session, stamped)
            new = inbox.record(session, INBOX, events, rows=stamped.rows)
            if len(new) < len(events):
                raise _Redelivered()        # rolls the heads back too
            for event in events:
                store_entry(session, event)
    except _Redelivered:
        CHAINS.forget()
        if len(events) == 1:
            return 0
        raise
    except BaseException:
        CHAINS.forget()                 # what it knew of the heads may be what failed
        raise
    CHAINS.remember(stamped)
    metrics.events_consumed(events, new, audit=True)       # and the audit lag of each
    return len(new)
