"""Marshmallow schemas of the audit service: query filters in, trail entries out."""
from marshmallow import Schema, fields, validate

from common.events import ACTIONS
from common.schemas import UtcDateTime


class _TrailFilters(Schema):
    """Filters both trails have; unknown ones are refused (a typo must not silently return everything)."""
    entity_type = fields.String()
    action = fields.String(validate=validate.OneOf(ACTIONS, error=f"action must be one of {', '.join(ACTIONS)}."))
    actor = fields.String()                 # user id, email, or "system"
    field = fields.String()
    since = UtcDateTime()
    until = UtcDateTime()


class AuditFiltersSchema(_TrailFilters):
    """The organization's trail."""
    target = fields.String()                # entity id


class AgentTrailFiltersSchema(_TrailFilters):
    """An agent's trail: each column of a row, and a time range (product rules §6)."""
    old_value = fields.String()             # contained in the old value (case-insensitive)
    new_value = fields.String()             # contained in the new value (case-insensitive)


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


audit_filters_schema = AuditFiltersSchema()
audit_entry_schema = AuditEntrySchema()


# An agent trail row is an entry without its list of changes, plus the one changed field.
entry_without_changes_schema = AuditEntrySchema(exclude=("changes",))


def agent_trail_row(entry, change):
    return dict(entry_without_changes_schema.dump(entry), field=change.field, old_value=change.old_value,
                new_value=change.new_value)


agent_trail_filters_schema = AgentTrailFiltersSchema()
