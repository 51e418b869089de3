"""Marshmallow schemas of the audit service: trail entries out. The query filters in are
common.contracts.audit's, which the gateway's queries share."""
from marshmallow import Schema, fields

from common.contracts.audit import AgentTrailFilters, AuditFilters
from common.schemas import UtcDateTime


class ChangeSchema(Schema):
    field = fields.String()
    old_value = fields.Raw(allow_none=True)
    new_value = fields.Raw(allow_none=True)


def actor_of(entry):
    return {"id": entry.actor_id, **({"email": entry.actor_email} if entry.actor_email else {}),
            **({"name": entry.actor_name} if entry.actor_name else {})}


class AuditEntrySchema(Schema):
    event_id = fields.String()
    type = fields.String()
    entity_type = fields.String()
    entity_id = fields.String()
    action = fields.String()
    actor = fields.Function(actor_of)
    organization_id = fields.String(allow_none=True)
    correlation_id = fields.String(allow_none=True)
    changes = fields.List(fields.Nested(ChangeSchema))
    occurred_at = UtcDateTime()


audit_filters_schema = AuditFilters.instance()
audit_entry_schema = AuditEntrySchema()


# An agent trail row is an entry without its list of changes, plus the one changed field.
entry_without_changes_schema = AuditEntrySchema(exclude=("changes",))


def agent_trail_row(entry, change):
    return dict(entry_without_changes_schema.dump(entry), field=change.field, old_value=change.old_value,
                new_value=change.new_value)


agent_trail_filters_schema = AgentTrailFilters.instance()
