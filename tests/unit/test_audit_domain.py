from datetime import timedelta

import pytest

from common.errors import BadRequest, ValidationFailed
from common.events import InvalidChangeEvent, change_event
from common.timeutil import utcnow
from services.audit import domain

ACTOR = {"id": "alice", "email": "alice@example.com"}


def renamed(org, old, new, at=None, actor=ACTOR):
    return change_event("organization.renamed", "update", org, actor, "organization", org,
                        before={"name": old}, after={"name": new}, occurred_at=at)


def test_an_event_is_stored_once(make_store):
    store = make_store("audit")
    event = renamed("o1", "a", "b")
    assert domain.store_event(store, event) is True
    assert domain.store_event(store, event) is False
    [entry] = domain.query_entries(store, "o1")["items"]
    assert entry["changes"] == [{"field": "name", "old_value": "a", "new_value": "b"}]
    assert entry["actor"] == ACTOR and entry["action"] == "update"


@pytest.mark.parametrize("broken", [
    {"event_id": "x"},
    {"type": "organization.renamed"},
    dict(renamed("o1", "a", "b"), action="explode"),
    dict(renamed("o1", "a", "b"), occurred_at="yesterday"),
    dict(renamed("o1", "a", "b"), event_id="not-a-uuid"),
    "not even a dict",
])
def test_a_message_that_is_not_a_change_event_is_rejected_as_such(make_store, broken):
    store = make_store("audit")
    with pytest.raises(InvalidChangeEvent):
        domain.store_event(store, broken)
    assert domain.query_entries(store, "o1")["items"] == []


def test_filters_and_cursor_paging_newest_first(make_store):
    store = make_store("audit")
    start = utcnow() - timedelta(hours=1)
    for i in range(7):
        domain.store_event(store, renamed("o1", f"n{i}", f"n{i + 1}", at=start + timedelta(minutes=i)))
    domain.store_event(store, renamed("o2", "x", "y"))
    domain.store_event(store, change_event("organization.created", "create", "o1", {"id": "system"},
                                           "organization", "o1", after={"name": "n0"}, occurred_at=start))
    seen, cursor = [], None
    while True:
        page = domain.query_entries(store, "o1", {"action": "update"}, cursor, 3)
        seen += [e["changes"][0]["new_value"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"n{i}" for i in range(7, 0, -1)]
    assert len(domain.query_entries(store, "o1", {"actor": "system"})["items"]) == 1
    assert len(domain.query_entries(store, "o1", {"actor": "ALICE@example.com"})["items"]) == 7
    assert len(domain.query_entries(store, "o1", {"field": "name"})["items"]) == 8
    assert len(domain.query_entries(store, "o1", {"since": (start + timedelta(minutes=5)).isoformat()})["items"]) == 2
    assert domain.query_entries(store, "o1", {"until": start.isoformat()})["items"] == []


@pytest.mark.parametrize("filters, error", [({"since": "yesterday"}, ValidationFailed),
                                            ({"action": "explode"}, ValidationFailed),
                                            ({"colour": "red"}, ValidationFailed)])
def test_bad_filters_are_validation_errors(make_store, filters, error):
    with pytest.raises(error):
        domain.query_entries(make_store("audit"), "o1", filters)


def test_tampered_cursor_is_a_bad_request(make_store):
    with pytest.raises(BadRequest):
        domain.query_entries(make_store("audit"), "o1", cursor="%%%")
