"""How the billing service reacts to other services' change events (common.events.BILLING_QUEUE), each
event once by the one rule of common.inbox: the memberships it decides who may pay on (its read model, fed
by members' events; an organization's deletion retires them), and the spends that leave the balance at or
below the auto top-up threshold (credits.balance_low), from which auto top-up starts (auto_topup.py)."""
from common import inbox
from common.config import settings
from common.event_types import CREDITS_BALANCE_LOW
from services.billing import auto_topup
from services.billing.models import READ_MODELS, ProcessedEvent

INBOX = inbox.Inbox(ProcessedEvent)
REACTIONS = inbox.Reactions(INBOX, read_models=READ_MODELS)


def handle_change_event(store, event, charge):
    """Apply the event's states and its effects once; `charge(transaction_id)` charges a top-up it started,
    once the reaction is saved. Returns False for a redelivery, and for a spend that cannot start a top-up
    (decided on one read: no record, as there is no effect to record it with)."""
    if event["type"] == CREDITS_BALANCE_LOW and not auto_topup.may_start(store, event):
        return False

    def effect(session, event):
        REACTIONS.effect(session, event)
        if event["type"] == CREDITS_BALANCE_LOW:
            auto_topup.on_balance_low(session, charge, event, settings().payments.credits_per_usd)
    return inbox.react_once(store, INBOX, event, effect)
