"""How the credits service reacts to other services' change events (the bindings of
common.events.CREDITS_QUEUE), each event once by the one rule of common.inbox: its id recorded in
`processed_events` in the transaction of its effects.

Every event the queue delivers feeds the read models (memberships from members, agents' access from
orgs; common.readmodels): a state is applied only if its version is newer than the one held, and an
organization's deletion retires its memberships. member.removed / member.left also take the member out
of their budget group. The billing service's auto top-up events raise alerts (topup_alerts.py).
"""
from common import inbox
from common.event_types import MEMBERSHIP_ENDED
from services.credits import budgets
from services.credits.models import READ_MODELS, ProcessedEvent
from services.credits.topup_alerts import TOPUP_EVENTS, on_topup_event


def membership_ended(session, event):
    """member.removed / member.left: out of their budget group."""
    budgets.forget_member(session, event)


REACTIONS = inbox.Reactions(inbox.Inbox(ProcessedEvent), read_models=READ_MODELS,
                            effects={**dict.fromkeys(MEMBERSHIP_ENDED, membership_ended),
                                     **dict.fromkeys(TOPUP_EVENTS, on_topup_event)})


def handle_change_event(store, event):
    """Apply the event's states and its other effects once. Returns False for a redelivery."""
    return REACTIONS.once(store, event)
