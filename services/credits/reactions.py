"""How the credits service reacts to other services' change events (the bindings of
common.events.CREDITS_QUEUE): each event once, its effects in one transaction with the record that it
was handled (common.inbox)."""
from common import inbox
from common.event_types import MEMBERSHIP_ENDED
from services.credits import budgets
from services.credits.models import ProcessedEvent


def handle_change_event(store, event):
    """member.removed / member.left: the member leaves their budget group. Returns False for a redelivery."""
    with store.write() as session:
        if not inbox.first_delivery(session, ProcessedEvent, event):
            return False
        if event["type"] in MEMBERSHIP_ENDED:
            budgets.forget_member(session, event)
        return True
