"""The audit trail: every change event as an entry with its changed fields (added once, by reactions.py),
and the two queries over it (the organization's trail, one agent's trail), filtered and cursor-paged,
newest first."""
import json

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.orm import noload

from common.auth import canonical_email
from common.contracts import load
from common.errors import agent_not_found
from common.paging import check_limit, decode_cursor, encode_cursor, invalid_cursor
from common.timeutil import iso, parse_iso, utcnow
from services.audit.models import AuditChange, AuditEntry
from services.audit.schemas import agent_trail_filters_schema, agent_trail_row, audit_entry_schema, audit_filters_schema

ENTRIES, CHANGES = AuditEntry.__table__, AuditChange.__table__


def is_stored(session, event_id):
    return session.scalar(select(AuditEntry.seq).where(AuditEntry.event_id == event_id)) is not None


def stored_event_ids(session, event_ids):
    """Those of `event_ids` already in the trail."""
    return set(session.scalars(select(AuditEntry.event_id).where(AuditEntry.event_id.in_(event_ids))))


def add_entry(session, event):
    """Add one checked change event (common.events.parse_change_event) as an entry, in the caller's
    transaction (reactions.py decides whether it is new). Its unique `event_id` makes a concurrent
    second copy fail with IntegrityError. Plain INSERTs, not ORM objects: every change of the system
    passes here, and the unit of work cost more than the statements."""
    before, after = event["before"], event["after"]
    seq = session.execute(insert(ENTRIES).values(
        event_id=event["event_id"], type=event["type"], action=event["action"],
        entity_type=event["target"]["type"], entity_id=event["target"]["id"],
        actor_id=event["actor"]["id"], actor_email=event["actor"].get("email"),
        actor_name=event["actor"].get("name"),
        organization_id=event["organization_id"], correlation_id=event["correlation_id"],
        occurred_at=event["occurred_at"], received_at=utcnow()).returning(ENTRIES.c.seq)).scalar_one()
    changes = [{"entry_seq": seq, "field": field, "old_value": before.get(field), "new_value": after.get(field),
                "old_text": as_text(before.get(field)), "new_text": as_text(after.get(field))}
               for field in list(before) + [k for k in after if k not in before]]
    if changes:
        session.execute(insert(CHANGES), changes)


def as_text(value):
    """A changed value as searchable text: strings as they are, anything else as JSON."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _checked_filters(schema, filters):
    """The filters that have a value (an empty query parameter means no filter), checked by `schema`."""
    return load(schema, {k: v for k, v in (filters or {}).items() if v not in (None, "")})


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


def _position(cursor, with_change=False):
    """(occurred_at, entry seq, change id or None) of the last row of the previous page, or None."""
    fields = {"at": str, "seq": int, "change": int} if with_change else {"at": str, "seq": int}
    position = decode_cursor(cursor, **fields)
    if position is None:
        return None
    try:
        return parse_iso(position["at"]), position["seq"], position.get("change")
    except (TypeError, ValueError):
        raise invalid_cursor() from None


def query_entries(store, organization_id, filters=None, cursor=None, limit=None):
    """A page of the organization's trail, newest first (filters: common.contracts.audit.AuditFilters)."""
    filters = _checked_filters(audit_filters_schema, filters)
    limit = check_limit(limit)
    conditions = [AuditEntry.organization_id == organization_id, *_entry_conditions(filters)]
    if "target" in filters:
        conditions.append(AuditEntry.entity_id == filters["target"])
    if "field" in filters:
        conditions.append(AuditEntry.changes.any(AuditChange.field == filters["field"]))
    position = _position(cursor)
    if position is not None:
        at, seq, _ = position
        conditions.append(or_(AuditEntry.occurred_at < at,
                              and_(AuditEntry.occurred_at == at, AuditEntry.seq < seq)))
    with store.read() as session:
        rows = session.scalars(select(AuditEntry).where(*conditions)
                               .order_by(AuditEntry.occurred_at.desc(), AuditEntry.seq.desc())
                               .limit(limit + 1)).all()
        items = audit_entry_schema.dump(rows[:limit], many=True)
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor({"at": iso(last.occurred_at), "seq": last.seq})
    return {"items": items, "next_cursor": next_cursor}


AGENT_TRAIL_DEFAULT_LIMIT = 20


def query_agent_trail(store, organization_id, agent_id, filters=None, cursor=None, limit=None):
    """The agent's trail in this organization: one row per changed field, newest first, 20 per page
    unless `limit` says otherwise (product rules §6). Filters: common.contracts.audit.AgentTrailFilters.

    Only what happened to the agent while it belonged to this organization is shown: after a transfer
    each organization keeps its own part of the history (like spend made before a transfer)."""
    filters = _checked_filters(agent_trail_filters_schema, filters)
    limit = check_limit(limit, default=AGENT_TRAIL_DEFAULT_LIMIT)
    of_agent = [AuditEntry.organization_id == organization_id, AuditEntry.entity_type == "agent",
                AuditEntry.entity_id == agent_id]
    conditions = [*of_agent, *_entry_conditions(filters)]
    if "field" in filters:
        conditions.append(AuditChange.field == filters["field"])
    for name, column in (("old_value", AuditChange.old_text), ("new_value", AuditChange.new_text)):
        if name in filters:
            conditions.append(column.icontains(filters[name], autoescape=True))
    position = _position(cursor, with_change=True)
    if position is not None:
        at, seq, change = position
        conditions.append(or_(AuditEntry.occurred_at < at,
                              and_(AuditEntry.occurred_at == at, AuditEntry.seq < seq),
                              and_(AuditEntry.seq == seq, AuditChange.id < change)))
    with store.read() as session:
        if session.scalar(select(AuditEntry.seq).where(*of_agent).limit(1)) is None:
            raise agent_not_found()   # no agent of this organization ever had this id
        rows = session.execute(
            select(AuditEntry, AuditChange).join(AuditChange, AuditChange.entry_seq == AuditEntry.seq)
            .options(noload(AuditEntry.changes)).where(*conditions)
            .order_by(AuditEntry.occurred_at.desc(), AuditEntry.seq.desc(), AuditChange.id.desc())
            .limit(limit + 1)).all()
        items = [agent_trail_row(entry, change) for entry, change in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        entry, change = rows[limit - 1]
        next_cursor = encode_cursor({"at": iso(entry.occurred_at), "seq": entry.seq, "change": change.id})
    return {"items": items, "next_cursor": next_cursor}
