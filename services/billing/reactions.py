"""How the billing service reacts to other services' change events (common.events.BILLING_QUEUE), each
event once by the one rule of common.inbox: the memberships it decides who may pay on (its read model,
fed by members' events; an organization's deletion retires them)."""
from common import inbox
from services.billing.models import READ_MODELS, ProcessedEvent

REACTIONS = inbox.Reactions(inbox.Inbox(ProcessedEvent), read_models=READ_MODELS, effects={})


def handle_change_event(store, event):
    """Apply the event's states once. Returns False for a redelivery."""
    return REACTIONS.once(store, event)
