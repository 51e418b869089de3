"""Marshmallow schemas of the audit service: query filters in, trail entries out."""
from marshmallow import Schema, fields, validate

from common.events import ACTIONS
from common.schemas import UtcDateTime


class AuditFiltersSchema(Schema):
    """Filters of the trail; unknown ones are refused (a typo must not silently return everything)."""
    entity_type = fields.String()
    action = fields.String(validate=validate.OneOf(ACTIONS, error=f"action must be one of {', '.join(ACTIONS)}."))
    actor = fields.String()                 # user id, email, or "system"
    field = fields.String()
    target = fields.String()                # entity id
    since = UtcDateTime()
    until = UtcDateTime()


class ChangeSchema(Schema):
    field = fields.String()
    old_value = fields.Raw(allow_none=True)
    new_value = fields.Raw(allow_none=True)


class AuditEntrySchema(Schema):
    event_id = fields.String()
    type = fields.String()
    entity_type = fields.String()
    entity_id = fields.String()
    action = fields.String()
    actor = fields.Function(lambda e: {"id": e.actor_id, **({"email": e.actor_email} if e.actor_email else {})})
    organization_id = fields.String(allow_none=True)
    correlation_id = fields.String(allow_none=True)
    changes = fields.List(fields.Nested(ChangeSchema))
    occurred_at = UtcDateTime()


audit_filters_schema = AuditFiltersSchema()
audit_entry_schema = AuditEntrySchema()
