"""Audit trails: the organization's (an entry per event, its changes nested) and an agent's (a row per
changed field)."""
from marshmallow import Schema, fields, validate

from common import event_types
from common.contracts.audit import AgentTrailFilters, AuditFilters
from common.events import ACTIONS
from gateway.schemas.common import OPTIONAL, ContractField, ListQuery, date_time, page_of

_ACTIONS = list(ACTIONS)
# Every change event type (common.event_types): what an entry's `type` can be.
EVENT_TYPES = sorted(value for name, value in vars(event_types).items() if name.isupper() and isinstance(value, str))


# ---- requests -------------------------------------------------------------------------------------
def _filters(contract):
    """A trail's filters as query parameters: the audit service's (common.contracts.audit), absent ones
    None. The gateway refuses an unknown action itself, as it always did; the times are the audit
    service's to check, after the caller's permission."""
    return {name: ContractField(field, enforce=name == "action", load_default=None)
            for name, field in contract.instance().fields.items()}


AuditQuery = type("AuditQuery", (ListQuery,), {
    **_filters(AuditFilters), "format": fields.String(load_default=None, validate=validate.OneOf(["json", "csv"]))})
AgentTrailQuery = type("AgentTrailQuery", (ListQuery,), _filters(AgentTrailFilters))


# ---- responses ------------------------------------------------------------------------------------
class Change(Schema):
    field = fields.String()
    old_value = fields.Raw(allow_none=True)
    new_value = fields.Raw(allow_none=True)


class Actor(Schema):
    id = fields.String()
    email = fields.String(metadata={"description": "a person's; absent when the platform or an API key acted",
                                    **OPTIONAL})
    name = fields.String(metadata={"description": "an API key's name (its id is key:<key id>)", **OPTIONAL})


class TrailEvent(Schema):
    """What both trails say of the event behind an entry or a row."""
    event_id = fields.String()
    type = fields.String(metadata={"enum": EVENT_TYPES})
    entity_type = fields.String()
    entity_id = fields.String()
    action = fields.String(metadata={"enum": _ACTIONS})
    actor = fields.Nested(Actor)
    organization_id = fields.String(allow_none=True)
    correlation_id = fields.String(allow_none=True)


class AuditEntry(TrailEvent):
    changes = fields.List(fields.Nested(Change))
    occurred_at = date_time()


AuditPage = page_of(AuditEntry, "AuditPage")


class AgentTrailRow(TrailEvent):
    field = fields.String()
    old_value = fields.Raw(allow_none=True)
    new_value = fields.Raw(allow_none=True)
    occurred_at = date_time()


AgentTrailPage = page_of(AgentTrailRow, "AgentTrailPage")
