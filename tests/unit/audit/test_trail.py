"""The organization's audit trail (services/audit/trail.py, reached through reactions.py as the service
does): each change event stored once, filtered and cursor-paged newest first, over a migrated SQLite store."""
from datetime import timedelta

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy.exc import IntegrityError

from common.commands import declaration_of, validated
from common.errors import BadRequest, ValidationFailed
from common.events import change_event, parse_change_event
from common.timeutil import utcnow
from services.audit import reactions, trail
from services.audit.service import AuditService

ACTOR = {"id": "alice", "email": "alice@example.com"}


def renamed(org, old, new, at=None, actor=ACTOR):
    return change_event("organization.renamed", "update", org, actor, "organization", org,
                        before={"name": old}, after={"name": new}, occurred_at=at)


def entries(store, org, filters=None, cursor=None, limit=None):
    """The organization's trail, its filters loaded as list_entries declares them (common.commands)."""
    filters = validated(declaration_of(AuditService.list_entries).input, {"filters": filters})["filters"]
    return trail.query_entries(store, org, filters, cursor, limit)


def put(store, message):
    """What the service does with a consumed change event: check it, then react (store it)."""
    return reactions.handle_change_event(store, parse_change_event(message))


def test_an_event_is_stored_once(make_store):
    store = make_store("audit")
    event = renamed("o1", "a", "b")
    assert put(store, event) is True
    assert put(store, event) is False
    [entry] = trail.query_entries(store, "o1")["items"]
    assert entry["changes"] == [{"field": "name", "old_value": "a", "new_value": "b"}]
    assert entry["actor"] == ACTOR and entry["action"] == "update"


def test_the_consumer_checks_the_message_and_stores_it_once(make_store):
    store = make_store("audit")
    service = worker_factory(AuditService, db=store)
    event = renamed("o1", "a", "b")
    assert service.on_change_events([event]) is None
    service.on_change_events([event])                  # a redelivery
    [entry] = trail.query_entries(store, "o1")["items"]
    assert entry["event_id"] == event["event_id"] and entry["occurred_at"] == event["occurred_at"]


@pytest.mark.parametrize("broken", [
    {"event_id": "x"},
    {"type": "organization.renamed"},
    dict(renamed("o1", "a", "b"), action="explode"),
    dict(renamed("o1", "a", "b"), occurred_at="yesterday"),
    dict(renamed("o1", "a", "b"), event_id="not-a-uuid"),
    "not even a dict",
])
def test_a_message_that_is_not_a_change_event_is_dropped_not_requeued(make_store, caplog, broken):
    """Logged and acknowledged (no exception), or RabbitMQ would hand it back forever."""
    store = make_store("audit")
    assert worker_factory(AuditService, db=store).on_change_events([broken]) is None
    assert "dropping a message that is not a change event" in caplog.text
    assert trail.query_entries(store, "o1")["items"] == []


def test_filters_and_cursor_paging_newest_first(make_store):
    store = make_store("audit")
    start = utcnow() - timedelta(hours=1)
    for i in range(7):
        put(store, renamed("o1", f"n{i}", f"n{i + 1}", at=start + timedelta(minutes=i)))
    put(store, renamed("o2", "x", "y"))
    put(store, change_event("organization.created", "create", "o1", {"id": "system"},
                            "organization", "o1", after={"name": "n0"}, occurred_at=start))
    seen, cursor = [], None
    while True:
        page = entries(store, "o1", {"action": "update"}, cursor, 3)
        seen += [e["changes"][0]["new_value"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"n{i}" for i in range(7, 0, -1)]
    assert len(entries(store, "o1", {"actor": "system"})["items"]) == 1
    assert len(entries(store, "o1", {"actor": "ALICE@example.com"})["items"]) == 7
    assert len(entries(store, "o1", {"field": "name"})["items"]) == 8
    assert len(entries(store, "o1", {"since": (start + timedelta(minutes=5)).isoformat()})["items"]) == 2
    assert entries(store, "o1", {"until": start.isoformat()})["items"] == []


@pytest.mark.parametrize("filters, error", [({"since": "yesterday"}, ValidationFailed),
                                            ({"action": "explode"}, ValidationFailed),
                                            ({"colour": "red"}, ValidationFailed)])
def test_bad_filters_are_validation_errors(make_store, filters, error):
    with pytest.raises(error):
        entries(make_store("audit"), "o1", filters)


def test_tampered_cursor_is_a_bad_request(make_store):
    with pytest.raises(BadRequest):
        trail.query_entries(make_store("audit"), "o1", cursor="%%%")


# ---- batches (common.framework.batch_consume): what arrived together is stored in one transaction ----
def entries_of(store, org):
    return trail.query_entries(store, org, limit=200)["items"]


def test_a_batch_stores_each_event_once_even_twice_in_the_batch_or_stored_before(make_store):
    store = make_store("audit")
    first, second, third = (renamed("o1", f"n{i}", f"n{i + 1}") for i in range(3))
    put(store, first)
    events = [parse_change_event(e) for e in (first, second, second, third)]
    assert reactions.handle_change_events(store, events) == 2
    assert sorted(e["event_id"] for e in entries_of(store, "o1")) == sorted(
        e["event_id"] for e in (first, second, third))
    assert reactions.handle_change_events(store, events) == 0          # the whole batch redelivered


def test_a_batch_that_clashes_with_another_consumer_is_stored_event_by_event(make_store, monkeypatch):
    """One event's effects fail on a unique key (a row another consumer stored at the same moment:
    PostgreSQL, replicas): the batch's transaction rolls back, and its events are stored one by one, the
    clashing one by its own transaction. A delivery holding an event stored before (by a rival or an earlier
    delivery) stores the others, that one not twice. The chain stays unbroken through both."""
    store = make_store("audit")
    messages = [renamed("o1", f"n{i}", f"n{i + 1}") for i in range(5)]
    clashes = iter([IntegrityError("insert", {}, Exception("unique"))])

    def changes_clashing_once(session, event):
        if event["event_id"] == messages[2]["event_id"] and (clash := next(clashes, None)) is not None:
            raise clash
        return real_add_changes(session, event)
    real_add_changes = trail.add_changes
    monkeypatch.setattr(trail, "add_changes", changes_clashing_once)
    assert reactions.handle_change_events(store, [parse_change_event(m) for m in messages[:3]]) == 3
    put(store, messages[4])
    assert reactions.handle_change_events(store, [parse_change_event(m) for m in messages[2:]]) == 1
    entries = entries_of(store, "o1")
    assert sorted(e["event_id"] for e in entries) == sorted(m["event_id"] for m in messages)
    assert all(len(e["changes"]) == 1 for e in entries)
    assert sorted(e["seq"] for e in entries) == [1, 2, 3, 4, 5]


def test_the_consumer_takes_a_batch_and_drops_only_what_is_not_a_change_event(make_store, caplog):
    store = make_store("audit")
    good = [renamed("o1", "a", "b"), renamed("o1", "b", "c")]
    assert worker_factory(AuditService, db=store).on_change_events([good[0], {"event_id": "x"}, good[1]]) is None
    assert "dropping a message that is not a change event" in caplog.text
    assert sorted(e["event_id"] for e in entries_of(store, "o1")) == sorted(e["event_id"] for e in good)
