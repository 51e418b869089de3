"""The change events the orgs service emits, and its one `emit()` (bound to its outbox table: each event
is committed with the change it reports and relayed to RabbitMQ afterwards, common.outbox)."""
from common.event_types import (
    ACTIVE_ORGANIZATION_CHANGED,
    AGENT_ACCESS_REVOKED,
    AGENT_ASSIGNEE_ADDED,
    AGENT_ASSIGNEE_REMOVED,
    AGENT_CONTRIBUTOR_ADDED,
    AGENT_CONTRIBUTOR_REMOVED,
    AGENT_CREATED,
    AGENT_DELETED,
    AGENT_TRANSFERRED,
    AGENT_UPDATED,
    ORGANIZATION_CREATED,
    ORGANIZATION_DELETED,
    ORGANIZATION_RENAMED,
)
from common.outbox import emitter
from services.orgs.models import OutboxEvent

EMITS = (
    ORGANIZATION_CREATED, ORGANIZATION_RENAMED, ORGANIZATION_DELETED, ACTIVE_ORGANIZATION_CHANGED,
    AGENT_CREATED, AGENT_UPDATED, AGENT_DELETED, AGENT_TRANSFERRED, AGENT_ACCESS_REVOKED,
    AGENT_CONTRIBUTOR_ADDED, AGENT_CONTRIBUTOR_REMOVED, AGENT_ASSIGNEE_ADDED, AGENT_ASSIGNEE_REMOVED,
)

emit = emitter(OutboxEvent)
