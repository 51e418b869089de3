"""The audit trail: every change event as an entry with its changed fields (added once, by reactions.py),
and the two queries over it (the organization's trail, one agent's trail), filtered and cursor-paged,
newest first. The filters come loaded by the entrypoints' declared input (schemas.AuditFiltersInput,
schemas.AgentTrailFiltersInput: common.contracts.audit's rules, an empty filter being none)."""
import json
from datetime import datetime

from sqlalchemy import bindparam, insert, or_, select
from sqlalchemy.orm import noload

from common.auth import canonical_email
from common.errors import agent_not_found
from common.paging import Keyset, check_limit, desc, keyset_page
from common.timeutil import utcnow
from services.audit.models import AuditChange, AuditEntry
from services.audit.schemas import agent_trail_row, audit_entry_schema

ENTRIES, CHANGES = AuditEntry.__table__, AuditChange.__table__
NEWEST_FIRST = Keyset("audit", desc("at", AuditEntry.occurred_at, datetime), desc("seq", AuditEntry.seq, int))
# The agent's trail: a row per changed field, so the change's id ends the keys.
NEWEST_CHANGE_FIRST = Keyset("agent_audit", desc("at", AuditEntry.occurred_at, datetime),
                             desc("seq", AuditEntry.seq, int), desc("change", AuditChange.id, int))


def entry(event):
    """The columns of a checked change event's entry (common.events.parse_change_event): the record of the
    event in the audit service's inbox (reactions.py), made with its changes in one transaction."""
    return {"event_id": event["event_id"], "type": event["type"], "action": event["action"],
            "entity_type": event["target"]["type"], "entity_id": event["target"]["id"],
            "actor_id": event["actor"]["id"], "actor_email": event["actor"].get("email"),
            "actor_name": event["actor"].get("name"), "organization_id": event["organization_id"],
            "correlation_id": event["correlation_id"], "occurred_at": event["occurred_at"], "received_at": utcnow()}


# The entry a change belongs to, found by its event's id (unique): its seq comes from the INSERT of a whole
# batch's entries at once.
_ENTRY_OF_EVENT = select(ENTRIES.c.seq).where(ENTRIES.c.event_id == bindparam("entry_event_id")).scalar_subquery()


def add_changes(session, event):
    """Add the changed fields of the event's entry (stored already, in the caller's transaction). Plain
    INSERTs, not ORM objects: every change of the system passes here, and the unit of work cost more
    than the statements."""
    before, after = event["before"], event["after"]
    changes = [{"entry_event_id": event["event_id"], "field": field, "old_value": before.get(field),
                "new_value": after.get(field), "old_text": as_text(before.get(field)),
                "new_text": as_text(after.get(field))}
               for field in list(before) + [k for k in after if k not in before]]
    if changes:
        session.execute(insert(CHANGES).values(entry_seq=_ENTRY_OF_EVENT), changes)


def as_text(value):
    """A changed value as searchable text: strings as they are, anything else as JSON."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _entry_conditions(filters):
    """Conditions on an entry's own columns, common to the organization's and an agent's trail."""
    conditions = []
    if "entity_type" in filters:
        conditions.append(AuditEntry.entity_type == filters["entity_type"])
    if "action" in filters:
        conditions.append(AuditEntry.action == filters["action"])
    if "actor" in filters:
        actor = filters["actor"]
        # Emails are stored in their canonical form (common.auth.canonical_email); search by the same.
        email = canonical_email(actor) or actor.lower()
        conditions.append(or_(AuditEntry.actor_id == actor, AuditEntry.actor_email == email))
    if "since" in filters:
        conditions.append(AuditEntry.occurred_at >= filters["since"])
    if "until" in filters:
        conditions.append(AuditEntry.occurred_at < filters["until"])
    return conditions


def query_entries(store, organization_id, filters=None, cursor=None, limit=None):
    """A page of the organization's trail, newest first (`filters` as schemas.AuditFiltersInput loaded them;
    None: no filters)."""
    filters = filters or {}
    conditions = [AuditEntry.organization_id == organization_id, *_entry_conditions(filters)]
    if "target" in filters:
        conditions.append(AuditEntry.entity_id == filters["target"])
    if "field" in filters:
        conditions.append(AuditEntry.changes.any(AuditChange.field == filters["field"]))
    with store.read() as session:
        return keyset_page(session, select(AuditEntry).where(*conditions), NEWEST_FIRST, cursor, limit,
                           dump=audit_entry_schema.dump)


AGENT_TRAIL_DEFAULT_LIMIT = 20


def query_agent_trail(store, organization_id, agent_id, filters=None, cursor=None, limit=None):
    """The agent's trail in this organization: one row per changed field, newest first, 20 per page
    unless `limit` says otherwise (product rules §6). `filters` as schemas.AgentTrailFiltersInput loaded them
    (None: no filters).

    Only what happened to the agent while it belonged to this organization is shown: after a transfer
    each organization keeps its own part of the history (like spend made before a transfer)."""
    filters = filters or {}
    limit = check_limit(limit, default=AGENT_TRAIL_DEFAULT_LIMIT)
    NEWEST_CHANGE_FIRST.position(cursor)    # a bad cursor is refused before the agent is looked up
    of_agent = [AuditEntry.organization_id == organization_id, AuditEntry.entity_type == "agent",
                AuditEntry.entity_id == agent_id]
    conditions = [*of_agent, *_entry_conditions(filters)]
    if "field" in filters:
        conditions.append(AuditChange.field == filters["field"])
    for name, column in (("old_value", AuditChange.old_text), ("new_value", AuditChange.new_text)):
        if name in filters:
            conditions.append(column.icontains(filters[name], autoescape=True))
    with store.read() as session:
        if session.scalar(select(AuditEntry.seq).where(*of_agent).limit(1)) is None:
            raise agent_not_found()   # no agent of this organization ever had this id
        query = (select(AuditEntry, AuditChange).join(AuditChange, AuditChange.entry_seq == AuditEntry.seq)
                 .options(noload(AuditEntry.changes)).where(*conditions))
        return keyset_page(session, query, NEWEST_CHANGE_FIRST, cursor, limit, dump=lambda row: agent_trail_row(*row))
