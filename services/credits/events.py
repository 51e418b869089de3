"""Change events the credits service emits, and its one `emit()`, bound to its outbox table: each event
is recorded in the transaction of the change it describes and relayed afterwards (common.outbox)."""
from common.event_types import (
    ALERT_SETTINGS_UPDATED,
    BALANCE_STATE,
    BUDGET_GROUP_CREATED,
    BUDGET_GROUP_DELETED,
    BUDGET_GROUP_UPDATED,
    CREDITS_ALERT_RAISED,
    CREDITS_BALANCE_LOW,
    CREDITS_EXPIRED,
    CREDITS_GRANTED,
    CREDITS_SPENT,
    MEMBER_BUDGET_GROUP_CHANGED,
)
from common.money import format_amount
from common.outbox import emitter
from services.credits.models import OutboxEvent

EMITS = (CREDITS_GRANTED, CREDITS_SPENT, CREDITS_EXPIRED, BUDGET_GROUP_CREATED, BUDGET_GROUP_UPDATED,
         BUDGET_GROUP_DELETED, MEMBER_BUDGET_GROUP_CHANGED, ALERT_SETTINGS_UPDATED, CREDITS_ALERT_RAISED,
         CREDITS_BALANCE_LOW)

emit = emitter(OutboxEvent)


def balance_state(organization_id, balance_units):
    """The account's balance after a change, for the event's `state` (common.event_types.BALANCE_STATE)."""
    return {BALANCE_STATE: [{"organization_id": organization_id, "balance": format_amount(balance_units)}]}
