"""Change events the billing service emits, and its one `emit()`, bound to its outbox table: each event is
recorded in the transaction of the change it describes and relayed afterwards (common.outbox)."""
from common.event_types import (
    AUTO_TOPUP_CAP_REACHED,
    AUTO_TOPUP_DISABLED,
    AUTO_TOPUP_FAILED,
    AUTO_TOPUP_UPDATED,
    PAYMENT_METHOD_ADDED,
    PAYMENT_METHOD_DEFAULT_CHANGED,
    PAYMENT_METHOD_REMOVED,
    TRANSACTION_CANCELLED,
    TRANSACTION_CREATED,
    TRANSACTION_FAILED,
    TRANSACTION_SUCCEEDED,
)
from common.outbox import emitter
from services.billing.models import OutboxEvent

EMITS = (PAYMENT_METHOD_ADDED, PAYMENT_METHOD_REMOVED, PAYMENT_METHOD_DEFAULT_CHANGED, TRANSACTION_CREATED,
         TRANSACTION_SUCCEEDED, TRANSACTION_FAILED, TRANSACTION_CANCELLED, AUTO_TOPUP_UPDATED, AUTO_TOPUP_FAILED,
         AUTO_TOPUP_CAP_REACHED, AUTO_TOPUP_DISABLED)

emit = emitter(OutboxEvent)
