"""Change events the credits service emits, and its one `emit()`, bound to its outbox table: each event
is recorded in the transaction of the change it describes and relayed afterwards (common.outbox)."""
from common.event_types import (
    ALERT_SETTINGS_UPDATED,
    BUDGET_GROUP_CREATED,
    BUDGET_GROUP_DELETED,
    BUDGET_GROUP_UPDATED,
    CREDITS_ALERT_RAISED,
    CREDITS_EXPIRED,
    CREDITS_GRANTED,
    CREDITS_SPENT,
    MEMBER_BUDGET_GROUP_CHANGED,
)
from common.outbox import emitter
from services.credits.models import OutboxEvent

EMITS = (CREDITS_GRANTED, CREDITS_SPENT, CREDITS_EXPIRED, BUDGET_GROUP_CREATED, BUDGET_GROUP_UPDATED,
         BUDGET_GROUP_DELETED, MEMBER_BUDGET_GROUP_CHANGED, ALERT_SETTINGS_UPDATED, CREDITS_ALERT_RAISED)

emit = emitter(OutboxEvent)
