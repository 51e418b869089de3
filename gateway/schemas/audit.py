"""Audit trails: the organization's (an entry per event, its changes nested) and an agent's (a row per
changed field)."""
from marshmallow import Schema, fields, validate

from gateway.schemas.common import ListQuery, page_of

_ACTIONS = ["create", "update", "delete"]


# ---- requests -------------------------------------------------------------------------------------
class TrailQuery(ListQuery):
    """The filters both trails take."""
    entity_type = fields.String(load_default=None)
    action = fields.String(load_default=None, validate=validate.OneOf(_ACTIONS))
    actor = fields.String(load_default=None)
    field = fields.String(load_default=None)
    since = fields.String(load_default=None)
    until = fields.String(load_default=None)


class AuditQuery(TrailQuery):
    target = fields.String(load_default=None)
    format = fields.String(load_default=None, validate=validate.OneOf(["json", "csv"]))


class AgentTrailQuery(TrailQuery):
    old_value = fields.String(load_default=None)
    new_value = fields.String(load_default=None)


# ---- responses ------------------------------------------------------------------------------------
class Change(Schema):
    field = fields.String()
    old_value = fields.Raw(allow_none=True)
    new_value = fields.Raw(allow_none=True)


class Actor(Schema):
    id = fields.String()
    email = fields.String()


class TrailEvent(Schema):
    """What both trails say of the event behind an entry or a row."""
    event_id = fields.String()
    type = fields.String()
    entity_type = fields.String()
    entity_id = fields.String()
    action = fields.String(metadata={"enum": _ACTIONS})
    actor = fields.Nested(Actor)
    organization_id = fields.String(allow_none=True)
    correlation_id = fields.String(allow_none=True)


class AuditEntry(TrailEvent):
    changes = fields.List(fields.Nested(Change))
    occurred_at = fields.String()


AuditPage = page_of(AuditEntry, "AuditPage")


class AgentTrailRow(TrailEvent):
    field = fields.String()
    old_value = fields.Raw(allow_none=True)
    new_value = fields.Raw(allow_none=True)
    occurred_at = fields.String()


AgentTrailPage = page_of(AgentTrailRow, "AgentTrailPage")
