"""The filters of the audit trails (product rules §6, §7): one definition for the gateway's queries and
the audit service. A filter left out, null or (from a query string) empty is no filter."""
from marshmallow import fields
from marshmallow.validate import OneOf

from common.contracts.base import Contract
from common.contracts.fields import IsoTime
from common.events import ACTIONS

TIME = "{name} must be an ISO 8601 time, e.g. 2026-11-23T14:00:00Z."


NO_FILTER = {"allow_none": True}        # null is no filter


class TrailFilters(Contract):
    """Filters both trails have; an unknown one is refused (a typo must not silently return everything)."""
    unknown_fields_first = False
    entity_type = fields.String(**NO_FILTER)
    action = fields.String(validate=[OneOf(ACTIONS)], **NO_FILTER)
    actor = fields.String(**NO_FILTER)                 # user id, email, or "system"
    field = fields.String(**NO_FILTER)
    since = IsoTime(TIME, **NO_FILTER)                 # inclusive
    until = IsoTime(TIME, **NO_FILTER)                 # exclusive


class AuditFilters(TrailFilters):
    """The organization's trail."""
    target = fields.String(**NO_FILTER)                # entity id


class AgentTrailFilters(TrailFilters):
    """An agent's trail: each column of a row, and a time range."""
    old_value = fields.String(**NO_FILTER)             # contained in the old value (case-insensitive)
    new_value = fields.String(**NO_FILTER)             # contained in the new value (case-insensitive)
