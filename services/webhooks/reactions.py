"""How the webhooks service reacts to change events (common.events.WEBHOOKS_QUEUE, bound to every type),
each event once by the one rule of common.inbox: the deliveries it calls for (deliveries.py), stored in
the transaction that records it as handled, after the memberships it carries are applied (the read model
the pipeline decides who may manage endpoints on)."""
from common import inbox
from services.webhooks import deliveries
from services.webhooks.models import READ_MODELS, ProcessedEvent

REACTIONS = inbox.Reactions(inbox.Inbox(ProcessedEvent), read_models=READ_MODELS,
                            otherwise=deliveries.store_for_event)


def handle_change_events(store, events):
    """A batch of events, each handled once (one transaction, or one per event on a unique-key clash);
    returns how many were new."""
    return REACTIONS.once_each(store, events)
