"""Domain logic of the audit service: store change events once, answer filtered, paged queries."""
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from common.errors import ValidationFailed
from common.events import ACTIONS
from common.paging import check_limit, decode_cursor, encode_cursor
from common.timeutil import iso, parse_iso, utcnow
from services.audit.models import AuditChange, AuditEntry

REQUIRED_KEYS = ("event_id", "type", "action", "occurred_at", "actor", "target")


def store_event(store, event):
    """Store one change event. Returns True if stored, False if it was already there (redelivery)."""
    missing = [k for k in REQUIRED_KEYS if not event.get(k)]
    if missing:
        raise ValueError(f"change event without {', '.join(missing)}: {event!r}")
    with store.read() as session:
        if session.scalar(select(AuditEntry.seq).where(AuditEntry.event_id == event["event_id"])):
            return False
    before, after = event.get("before") or {}, event.get("after") or {}
    try:
        with store.write() as session:
            entry = AuditEntry(
                event_id=event["event_id"], type=event["type"], action=event["action"],
                entity_type=event["target"]["type"], entity_id=str(event["target"]["id"]),
                actor_id=event["actor"]["id"], actor_email=event["actor"].get("email"),
                organization_id=event.get("organization_id"), correlation_id=event.get("correlation_id"),
                occurred_at=parse_iso(event["occurred_at"]), received_at=utcnow())
            session.add(entry)
            session.flush()
            for field in list(before) + [k for k in after if k not in before]:
                session.add(AuditChange(entry_seq=entry.seq, field=field,
                                        old_value=before.get(field), new_value=after.get(field)))
        return True
    except IntegrityError:   # the same event stored concurrently by another consumer
        return False


def _time_filter(value, name):
    try:
        return parse_iso(value)
    except ValueError:
        raise ValidationFailed(f"{name} must be an ISO 8601 time, e.g. 2026-11-23T14:00:00Z.", field=name)


def query_entries(store, organization_id, filters=None, cursor=None, limit=None):
    """A page of the organization's trail, newest first.

    filters: entity_type, action, actor (id or email), field, target (entity id), since, until.
    """
    filters = {k: v for k, v in (filters or {}).items() if v not in (None, "")}
    unknown = set(filters) - {"entity_type", "action", "actor", "field", "target", "since", "until"}
    if unknown:
        raise ValidationFailed(f"Unknown filter {sorted(unknown)[0]}.", field=sorted(unknown)[0])
    limit = check_limit(limit)
    conditions = [AuditEntry.organization_id == organization_id]
    if "entity_type" in filters:
        conditions.append(AuditEntry.entity_type == filters["entity_type"])
    if "action" in filters:
        if filters["action"] not in ACTIONS:
            raise ValidationFailed(f"action must be one of {', '.join(ACTIONS)}.", field="action")
        conditions.append(AuditEntry.action == filters["action"])
    if "actor" in filters:
        actor = filters["actor"]
        conditions.append(or_(AuditEntry.actor_id == actor, AuditEntry.actor_email == actor.lower()))
    if "target" in filters:
        conditions.append(AuditEntry.entity_id == filters["target"])
    if "field" in filters:
        conditions.append(AuditEntry.changes.any(AuditChange.field == filters["field"]))
    if "since" in filters:
        conditions.append(AuditEntry.occurred_at >= _time_filter(filters["since"], "since"))
    if "until" in filters:
        conditions.append(AuditEntry.occurred_at < _time_filter(filters["until"], "until"))
    position = decode_cursor(cursor)
    if position is not None:
        try:
            at, seq = parse_iso(position["at"]), int(position["seq"])
        except (KeyError, TypeError, ValueError):
            raise ValidationFailed("The cursor is not valid; use next_cursor from a previous page.",
                                   code="invalid_cursor", field="cursor")
        conditions.append(or_(AuditEntry.occurred_at < at,
                              and_(AuditEntry.occurred_at == at, AuditEntry.seq < seq)))
    with store.read() as session:
        rows = session.scalars(select(AuditEntry).where(*conditions)
                               .order_by(AuditEntry.occurred_at.desc(), AuditEntry.seq.desc())
                               .limit(limit + 1)).all()
        items = [entry_dict(e) for e in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor({"at": iso(last.occurred_at), "seq": last.seq})
    return {"items": items, "next_cursor": next_cursor}


def entry_dict(entry):
    actor = {"id": entry.actor_id}
    if entry.actor_email is not None:
        actor["email"] = entry.actor_email
    return {
        "event_id": entry.event_id, "type": entry.type, "entity_type": entry.entity_type,
        "entity_id": entry.entity_id, "action": entry.action, "actor": actor,
        "organization_id": entry.organization_id, "correlation_id": entry.correlation_id,
        "changes": [{"field": c.field, "old_value": c.old_value, "new_value": c.new_value} for c in entry.changes],
        "occurred_at": iso(entry.occurred_at),
    }
