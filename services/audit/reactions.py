"""How the audit service reacts to change events: common.events.AUDIT_QUEUE is bound to every event
type, and each event becomes one entry of the trail (trail.py), stored once by its `event_id`, in the
same transaction as the memberships it carries applied to the read model (common.readmodels): an
entry is never stored without its state, nor a state applied twice.

Events arrive in batches (common.framework.batch_consume): a batch is stored in one transaction. If that fails on
a unique key (another consumer stored one of its events at the same moment: PostgreSQL, replicas), its
events are stored one by one instead, each in its own transaction, so one clash costs no other entry."""
import logging

from sqlalchemy.exc import IntegrityError

from common import readmodels
from common.event_types import ORGANIZATION_DELETED
from services.audit import trail
from services.audit.models import READ_MODELS

log = logging.getLogger(__name__)

# How many times one event's transaction is tried when it fails on a unique key that is not its entry's:
# two events about one new membership applied at once (PostgreSQL, several workers) both insert its row;
# the one that lost finds the row on its next try, and the versions decide.
ATTEMPTS = 3


def handle_change_events(store, events):
    """A batch of change events: each stored once, with its state, in one transaction. Returns how many
    were new."""
    try:
        with store.write() as session:
            stored = trail.stored_event_ids(session, [event["event_id"] for event in events])
            new = 0
            for event in events:
                if event["event_id"] in stored:
                    continue                        # a redelivery, or the same event twice in the batch
                _apply_state(session, event)
                trail.add_entry(session, event)
                stored.add(event["event_id"])
                new += 1
            return new
    except IntegrityError:
        return sum(handle_change_event(store, event) for event in events)


def handle_change_event(store, event):
    """Any change event: store it in the trail and apply the state it carries, together. Returns False
    for a redelivery (already stored: nothing is stored or applied again)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _store(store, event)
        except IntegrityError:
            if _already_stored(store, event):
                return False    # stored concurrently by another consumer, with its state
            if attempt == ATTEMPTS:
                raise           # the consumer requeues the event


def _store(store, event):
    with store.write() as session:
        if trail.is_stored(session, event["event_id"]):
            return False
        _apply_state(session, event)
        trail.add_entry(session, event)     # IntegrityError if another consumer stored it meanwhile
        return True


def _already_stored(store, event):
    with store.read() as session:
        return trail.is_stored(session, event["event_id"])


def _apply_state(session, event):
    """The read model takes the states the event carries (newer versions only). A state that is not
    well-formed is its producer's bug: retrying could never fix it, so it is logged and left out, and
    the entry is stored all the same (the read model catches up with the next newer state)."""
    if not event.get("state") and event["type"] != ORGANIZATION_DELETED:
        return                      # most events (a spend) carry none: no savepoint for nothing
    try:
        with session.begin_nested():
            readmodels.apply_event_state(session, READ_MODELS, event)
    except (KeyError, TypeError, ValueError, AttributeError):
        log.error("event %s (%s) carries a state that is not well-formed: stored without applying it",
                  event["event_id"], event["type"], exc_info=True)
