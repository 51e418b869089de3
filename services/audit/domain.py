"""Domain logic of the audit service: store change events once, answer filtered, paged queries."""
from marshmallow import ValidationError
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from common.events import ChangeEventSchema
from common.paging import check_limit, decode_cursor, encode_cursor, invalid_cursor
from common.schemas import load_or_fail
from common.timeutil import iso, parse_iso, utcnow
from services.audit.models import AuditChange, AuditEntry
from services.audit.schemas import audit_entry_schema, audit_filters_schema

change_event_schema = ChangeEventSchema()


class InvalidChangeEvent(ValueError):
    """A message that is not a change event: retrying it cannot help."""


def parse_event(message):
    try:
        event = change_event_schema.load(message)
        event["occurred_at"] = parse_iso(event["occurred_at"])
    except (ValidationError, ValueError, TypeError) as exc:
        raise InvalidChangeEvent(f"not a change event ({exc}): {message!r}")
    event["event_id"] = str(event["event_id"])
    return event


def store_event(store, message):
    """Store one change event. Returns True if stored, False if it was already there (redelivery)."""
    event = parse_event(message)
    with store.read() as session:
        if session.scalar(select(AuditEntry.seq).where(AuditEntry.event_id == event["event_id"])):
            return False
    before, after = event["before"], event["after"]
    try:
        with store.write() as session:
            entry = AuditEntry(
                event_id=event["event_id"], type=event["type"], action=event["action"],
                entity_type=event["target"]["type"], entity_id=event["target"]["id"],
                actor_id=event["actor"]["id"], actor_email=event["actor"].get("email"),
                organization_id=event["organization_id"], correlation_id=event["correlation_id"],
                occurred_at=event["occurred_at"], received_at=utcnow())
            session.add(entry)
            session.flush()
            for field in list(before) + [k for k in after if k not in before]:
                session.add(AuditChange(entry_seq=entry.seq, field=field,
                                        old_value=before.get(field), new_value=after.get(field)))
        return True
    except IntegrityError:   # the same event stored concurrently by another consumer
        return False


def query_entries(store, organization_id, filters=None, cursor=None, limit=None):
    """A page of the organization's trail, newest first (filters: see AuditFiltersSchema)."""
    filters = load_or_fail(audit_filters_schema, {k: v for k, v in (filters or {}).items() if v not in (None, "")})
    limit = check_limit(limit)
    conditions = [AuditEntry.organization_id == organization_id]
    if "entity_type" in filters:
        conditions.append(AuditEntry.entity_type == filters["entity_type"])
    if "action" in filters:
        conditions.append(AuditEntry.action == filters["action"])
    if "actor" in filters:
        actor = filters["actor"]
        conditions.append(or_(AuditEntry.actor_id == actor, AuditEntry.actor_email == actor.lower()))
    if "target" in filters:
        conditions.append(AuditEntry.entity_id == filters["target"])
    if "field" in filters:
        conditions.append(AuditEntry.changes.any(AuditChange.field == filters["field"]))
    if "since" in filters:
        conditions.append(AuditEntry.occurred_at >= filters["since"])
    if "until" in filters:
        conditions.append(AuditEntry.occurred_at < filters["until"])
    position = decode_cursor(cursor)
    if position is not None:
        try:
            at, seq = parse_iso(position["at"]), int(position["seq"])
        except (KeyError, TypeError, ValueError):
            raise invalid_cursor()
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
