"""How the credits service reacts to other services' change events (the bindings of
common.events.CREDITS_QUEUE): each event once, its effects in one transaction with the record that it
was handled (common.inbox).

Every event the queue delivers feeds the read models (memberships from members, agents' access from
orgs; common.readmodels), applied in that same transaction: a state is applied only if its version is
newer than the one held, so a redelivered or late event changes nothing, and an organization's
deletion retires its memberships. member.removed / member.left also take the member out of their
budget group.
"""
from common import inbox, readmodels
from common.event_types import MEMBERSHIP_ENDED
from services.credits import budgets
from services.credits.models import READ_MODELS, ProcessedEvent


def handle_change_event(store, event):
    """Apply the event's states, then its other effects once. Returns False for a redelivery."""
    with store.write() as session:
        # Idempotent by version, so before the inbox check: a redelivery applies nothing.
        readmodels.apply_event_state(session, READ_MODELS, event)
        if not inbox.first_delivery(session, ProcessedEvent, event):
            return False
        if event["type"] in MEMBERSHIP_ENDED:
            budgets.forget_member(session, event)
        return True
