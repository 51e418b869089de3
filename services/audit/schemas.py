"""Marshmallow schemas of the audit service: query filters in, trail entries out."""
from marshmallow import Schema, fields, validate

from common.events import ACTIONS
from common.schemas import UtcDateTime
from common.timeutil import iso


class AuditFiltersSchema(Schema):
    """Filters of the trail; unknown ones are refused (a typo must not silently return everything)."""
    entity_type = fields.String()
    action = fields.String(validate=validate.OneOf(ACTIONS, error=f"action must be one of {', '.join(ACTIONS)}."))
    actor = fields.String()                 # user id, email, or "system"
    field = fields.String()
    target = fields.String()                # entity id
    since = UtcDateTime()
    until = UtcDateTime()


class AgentTrailFiltersSchema(Schema):
    """Filters of an agent's trail: each column of a row, and a time range (SPEC §6)."""
    entity_type = fields.String()
    action = fields.String(validate=validate.OneOf(ACTIONS, error=f"action must be one of {', '.join(ACTIONS)}."))
    actor = fields.String()                 # user id, email, or "system"
    field = fields.String()
    old_value = fields.String()             # contained in the old value (case-insensitive)
    new_value = fields.String()             # contained in the new value (case-insensitive)
    since = UtcDateTime()
    until = UtcDateTime()


class ChangeSchema(Schema):
    field = fields.String()
    old_value = fields.Raw(allow_none=True)
    new_value = fields.Raw(allow_none=True)


def actor_of(entry):
    return {"id": entry.actor_id, **({"email": entry.actor_email} if entry.actor_email else {})}


class AuditEntrySchema(Schema):
    event_id = fields.String()
    type = fields.String()
    entity_type = fields.String()
    entity_id = fields.String()
    action = fields.String()
    actor = fields.Function(lambda e: actor_of(e))
    organization_id = fields.String(allow_none=True)
    correlation_id = fields.String(allow_none=True)
    changes = fields.List(fields.Nested(ChangeSchema))
    occurred_at = UtcDateTime()


audit_filters_schema = AuditFiltersSchema()
audit_entry_schema = AuditEntrySchema()


class AgentTrailRowSchema(Schema):
    """One changed field of one entry: {"entry": AuditEntry, "change": AuditChange} -> a flat row."""
    event_id = fields.Function(lambda r: r["entry"].event_id)
    type = fields.Function(lambda r: r["entry"].type)
    entity_type = fields.Function(lambda r: r["entry"].entity_type)
    entity_id = fields.Function(lambda r: r["entry"].entity_id)
    action = fields.Function(lambda r: r["entry"].action)
    actor = fields.Function(lambda r: actor_of(r["entry"]))
    organization_id = fields.Function(lambda r: r["entry"].organization_id)
    correlation_id = fields.Function(lambda r: r["entry"].correlation_id)
    field = fields.Function(lambda r: r["change"].field)
    old_value = fields.Function(lambda r: r["change"].old_value)
    new_value = fields.Function(lambda r: r["change"].new_value)
    occurred_at = fields.Function(lambda r: iso(r["entry"].occurred_at))


agent_trail_filters_schema = AgentTrailFiltersSchema()
agent_trail_row_schema = AgentTrailRowSchema()
