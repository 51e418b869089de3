"""How the audit service reacts to change events: common.events.AUDIT_QUEUE is bound to every event
type, and each event becomes one entry of the trail (trail.py), once, by the one rule of common.inbox.

The trail is the audit service's inbox: an entry is the record of its event (unique by `event_id`, kept
for ever), inserted first in the transaction; its changed fields and the memberships' states the event
carries (applied to the read model, common.readmodels) are its effects, in the same transaction: an
entry is never stored without its state, nor a state applied twice. Last in that transaction, the new
entries are appended to their organizations' hash chains (trail.link, chain.py).

Events arrive in batches (common.framework.batch_consume): a batch is one transaction (common.inbox.react_once_each),
which falls back to one transaction per event on a unique-key clash with another consumer."""
import logging

from common import inbox, readmodels
from common.event_types import ORGANIZATION_DELETED
from services.audit import trail
from services.audit.models import READ_MODELS, AuditEntry

log = logging.getLogger(__name__)


def store_entry(session, event):
    """Any change event, its entry recorded: its changed fields, and the states it carries applied."""
    _apply_state(session, event)
    trail.add_changes(session, event)


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


# The new entries of a delivery are chained (trail.link) in the transaction that stores them.
REACTIONS = inbox.Reactions(inbox.Inbox(AuditEntry, record=trail.entry, kept_for=None), otherwise=store_entry,
                            then=trail.link)


def handle_change_events(store, events):
    """A batch of change events: each stored once, with its state, in one transaction. Returns how many
    were new."""
    return REACTIONS.once_each(store, events)


def handle_change_event(store, event):
    """One change event: stored in the trail with the state it carries. Returns False for a redelivery."""
    return REACTIONS.once(store, event)
