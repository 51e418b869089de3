"""Change events the audit service emits: none. It changes nothing but its own trail, which it builds
from the other services' events (reactions.py), so it has no outbox table, no relay and no `emit()`."""

EMITS = ()
