"""Marshmallow schemas of the audit service: trail entries out. The query filters in are
common.contracts.audit's, which the gateway's queries share, as the entrypoints declare them (`input`)."""
from marshmallow import Schema, fields, pre_load

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
    # The hash chain (chain.py): the entry's position in its organization's chain, the hash of the entry
    # before it, and its own hash (over the fields above with seq and prev_hash).
    seq = fields.Integer(attribute="chain_seq", allow_none=True)
    prev_hash = fields.String(allow_none=True)
    hash = fields.String(allow_none=True)


class EmptyIsNoFilter:
    """A filter left out, null or (from a query string) empty is no filter (common.contracts.audit): such
    filters are dropped before the contract's rules, and no filters at all (null) are none."""

    @pre_load
    def drop_empty_filters(self, data, **kwargs):
        if data is None:
            return {}
        return {k: v for k, v in data.items() if v is not None and v != ""} if isinstance(data, dict) else data


class AuditFiltersInput(EmptyIsNoFilter, AuditFilters):
    """The organization's trail's filters, as list_entries declares them."""


class AgentTrailFiltersInput(EmptyIsNoFilter, AgentTrailFilters):
    """An agent's trail's filters, as list_agent_entries declares them."""


audit_entry_schema = AuditEntrySchema()


# An agent trail row is an entry without its list of changes, plus the one changed field (and without the
# chain's fields: a row cannot be checked against a hash that covers all of the entry's changes).
entry_without_changes_schema = AuditEntrySchema(exclude=("changes", "seq", "prev_hash", "hash"))


def agent_trail_row(entry, change):
    return dict(entry_without_changes_schema.dump(entry), field=change.field, old_value=change.old_value,
                new_value=change.new_value)

