"""Change events the webhooks service emits, and its one `emit()`, bound to its outbox table: each event is
recorded in the transaction of the change it describes and relayed afterwards (common.outbox). The
secret is never in one."""
from common.event_types import (
    WEBHOOK_ENDPOINT_CREATED,
    WEBHOOK_ENDPOINT_DELETED,
    WEBHOOK_ENDPOINT_DISABLED,
    WEBHOOK_ENDPOINT_SECRET_ROTATED,
    WEBHOOK_ENDPOINT_UPDATED,
)
from common.outbox import emitter
from services.webhooks.models import OutboxEvent

EMITS = (WEBHOOK_ENDPOINT_CREATED, WEBHOOK_ENDPOINT_UPDATED, WEBHOOK_ENDPOINT_DELETED,
         WEBHOOK_ENDPOINT_SECRET_ROTATED, WEBHOOK_ENDPOINT_DISABLED)

emit = emitter(OutboxEvent)
