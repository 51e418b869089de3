"""How the audit service reacts to change events: common.events.AUDIT_QUEUE is bound to every event
type, and each event becomes one entry of the trail (trail.py), stored once by its `event_id`."""
from services.audit import trail


def handle_change_event(store, event):
    """Any change event: store it in the trail. Returns False for a redelivery (already stored)."""
    return trail.store_event(store, event)
