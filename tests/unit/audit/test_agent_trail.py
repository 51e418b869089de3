"""An agent's audit trail (services/audit/trail.py: query_agent_trail, over entries stored through
reactions.py as the service does): one row per changed field, newest first, filtered (the filters loaded
as the entrypoint declares them) and cursor-paged, over a migrated SQLite store."""
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from common.commands import declaration_of, validated
from common.errors import BadRequest, NotFound, ValidationFailed
from common.events import change_event, parse_change_event
from common.paging import encode_cursor
from services.audit import reactions
from services.audit.models import AuditChange
from services.audit.service import AuditService
from services.audit.trail import as_text, query_agent_trail
from tests.unit.paging import walk_pages

ALICE = {"id": "alice", "email": "alice@example.com"}
BOB = {"id": "bob", "email": "bob@example.com"}
# A fixed moment, not one relative to now: the filters' parameters are built at collection time.
START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def at(minutes):
    return START + timedelta(minutes=minutes)


def agent_event(before=None, after=None, agent="a1", org="o1", minute=0, actor=ALICE, action="update",
                type="agent.updated", correlation_id=None):
    return change_event(type, action, org, actor, "agent", agent, before=before, after=after,
                        correlation_id=correlation_id, occurred_at=at(minute))


def stored(store, event):
    """Store a built event as the service does: checked (common.events) first."""
    return reactions.handle_change_event(store, parse_change_event(event))


def put(store, *events):
    for event in events:
        assert stored(store, event) is True
    return events


def trail(store, agent="a1", org="o1", filters=None, cursor=None, limit=None):
    """The agent's trail, its filters loaded as list_agent_entries declares them (common.commands)."""
    filters = validated(declaration_of(AuditService.list_agent_entries).input, {"filters": filters})["filters"]
    return query_agent_trail(store, org, agent, filters, cursor, limit)


def rows(store, agent="a1", org="o1", filters=None, limit=200):
    items = trail(store, agent, org, filters, None, limit)["items"]
    return [(r["field"], r["old_value"], r["new_value"]) for r in items]


def walk(store, limit, filters=None):
    return walk_pages(lambda cursor: trail(store, filters=filters, cursor=cursor, limit=limit), limit)


@pytest.fixture
def store(make_store):
    return make_store("audit")


def test_one_row_per_changed_field_newest_first(store):
    created, updated = put(store,
                           agent_event({}, {"name": "Nurse", "code": "n1", "contributors": ["bob"]},
                                       action="create", type="agent.created", minute=0),
                           agent_event({"mission": "old"}, {"mission": "new"}, minute=5, actor=BOB))
    page = trail(store)
    assert page["next_cursor"] is None
    assert [(r["field"], r["old_value"], r["new_value"]) for r in page["items"]] == [
        ("mission", "old", "new"),
        ("contributors", None, ["bob"]),
        ("code", None, "n1"),
        ("name", None, "Nurse")]
    first = page["items"][0]
    assert first["event_id"] == updated["event_id"] and first["type"] == "agent.updated"
    assert (first["entity_type"], first["entity_id"], first["organization_id"]) == ("agent", "a1", "o1")
    assert first["action"] == "update" and first["actor"] == BOB
    assert first["occurred_at"] == updated["occurred_at"]
    assert {r["event_id"] for r in page["items"][1:]} == {created["event_id"]}


def test_a_redelivered_event_adds_no_rows(store):
    event = agent_event({"name": "a"}, {"name": "b"})
    assert stored(store, event) is True
    assert stored(store, event) is False
    assert rows(store) == [("name", "a", "b")]


def test_default_page_is_20_rows_and_limit_changes_it(store):
    put(store, *[agent_event({"name": f"n{i}"}, {"name": f"n{i + 1}"}, minute=i) for i in range(25)])
    first = trail(store)
    assert len(first["items"]) == 20 and first["next_cursor"]
    assert [r["new_value"] for r in first["items"]] == [f"n{i}" for i in range(25, 5, -1)]
    second = trail(store, cursor=first["next_cursor"])
    assert [r["new_value"] for r in second["items"]] == [f"n{i}" for i in range(5, 0, -1)]
    assert second["next_cursor"] is None
    assert len(trail(store, limit=7)["items"]) == 7
    assert len(trail(store, limit=25)["items"]) == 25 and trail(store, limit=25)["next_cursor"] is None
    for bad in (0, 201, "5", True):
        with pytest.raises(ValidationFailed):
            trail(store, limit=bad)


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("timing", ["in_order", "same_time", "arrived_out_of_order"])
def test_cursor_paging_visits_every_row_once_across_multi_field_entries(store, limit, timing):
    sizes = [3, 1, 4, 2, 5, 1]
    order = list(enumerate(sizes))
    if timing == "arrived_out_of_order":     # stored newest first: seq runs against time
        order.reverse()
    for n, size in order:
        fields = [f"f{n}_{k}" for k in range(size)]
        put(store, agent_event({f: "old" for f in fields}, {f: "new" for f in fields},
                               minute=0 if timing == "same_time" else n))
    put(store, agent_event({"name": "x"}, {"name": "y"}, agent="a2"))     # another agent: not listed
    everything = trail(store, limit=200)["items"]
    assert len(everything) == sum(sizes)
    seen, pages = walk(store, limit)
    assert [(r["event_id"], r["field"]) for r in seen] == [(r["event_id"], r["field"]) for r in everything]
    assert len({(r["event_id"], r["field"]) for r in seen}) == sum(sizes)
    assert pages == -(-sum(sizes) // limit)
    if timing != "same_time":     # newest entry first
        assert seen[0]["field"].startswith("f5_") and seen[-1]["field"].startswith("f0_")


def test_paging_with_a_filter(store):
    for n in range(6):
        put(store, agent_event({"name": f"n{n}", "code": f"c{n}"}, {"name": f"n{n + 1}", "code": f"c{n + 1}"},
                               minute=n))
    seen, _ = walk(store, 4, {"field": "code"})
    assert [r["new_value"] for r in seen] == [f"c{n}" for n in range(6, 0, -1)]


@pytest.fixture
def history(store):
    put(store,
        agent_event({}, {"name": "Nurse", "mission": "Say Hello There"}, action="create", type="agent.created",
                    minute=0),
        agent_event({"mission": "Say Hello There"}, {"mission": "100% sure"}, minute=10, actor=BOB),
        agent_event({"mission": "100% sure"}, {"mission": "100 percent"}, minute=20),
        agent_event({"contributors": ["bob"]}, {"contributors": ["bob", "carl"]}, minute=30,
                    type="agent.contributor_added"),
        agent_event({"code": "snake_case"}, {"code": "snakeXcase"}, minute=40, actor={"id": "system"}),
        agent_event({"name": "Nurse"}, {}, minute=50, action="delete", type="agent.deleted", actor=BOB))


@pytest.mark.parametrize("filters, expected", [
    ({"entity_type": "agent"}, 7),
    ({"entity_type": "organization"}, 0),
    ({"action": "create"}, 2),
    ({"action": "delete"}, 1),
    ({"action": "update"}, 4),
    ({"actor": "bob"}, 2),
    ({"actor": "BOB@Example.COM"}, 2),
    ({"actor": "alice@example.com"}, 4),
    ({"actor": "system"}, 1),
    ({"actor": "nobody"}, 0),
    ({"field": "mission"}, 3),
    ({"field": "contributors"}, 1),
    ({"field": "Mission"}, 0),
    ({"old_value": "hello"}, 1),
    ({"new_value": "HELLO"}, 1),
    ({"new_value": "%"}, 1),               # % is literal: only "100% sure"
    ({"old_value": "0% s"}, 1),
    ({"old_value": "_"}, 1),               # _ is literal: only "snake_case"
    ({"new_value": "e_c"}, 0),
    ({"new_value": "carl"}, 1),            # non-strings are searched as JSON text
    ({"old_value": "nurse"}, 1),
    ({"new_value": "nurse"}, 1),
    ({"since": at(20).isoformat()}, 4),
    ({"until": at(20).isoformat()}, 3),
    ({"since": at(10).isoformat(), "until": at(30).isoformat()}, 2),
    ({"field": "mission", "actor": "alice", "new_value": "percent"}, 1),
    ({"action": "", "field": None}, 7),    # empty filters are no filters
])
def test_filters(store, history, filters, expected):
    assert len(trail(store, filters=filters, limit=200)["items"]) == expected


def test_value_filters_select_rows_not_entries(store):
    put(store, agent_event({"name": "Old", "mission": "m1"}, {"name": "New", "mission": "m2"}))
    assert rows(store, filters={"new_value": "new"}) == [("name", "Old", "New")]
    assert rows(store, filters={"field": "mission"}) == [("mission", "m1", "m2")]


def test_time_filters_accept_zulu_and_offset_times(store, history):
    since = at(40).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert [r["field"] for r in trail(store, filters={"since": since})["items"]] == ["name", "code"]
    plus_two = timezone(timedelta(hours=2))
    until = at(10).astimezone(plus_two).isoformat()
    assert [r["field"] for r in trail(store, filters={"until": until})["items"]] == ["mission", "name"]


def test_unknown_agent_or_agent_of_another_organization_is_not_found(store):
    put(store,
        agent_event({"name": "a"}, {"name": "b"}, agent="a1", org="o1"),
        agent_event({"name": "c"}, {"name": "d"}, agent="a2", org="o2"),
        change_event("organization.renamed", "update", "o1", ALICE, "organization", "o1",
                     before={"name": "x"}, after={"name": "y"}))
    for org, agent in (("o1", "nope"), ("o1", "a2"), ("o2", "a1"), ("o1", "o1"), ("o3", "a1")):
        with pytest.raises(NotFound) as err:
            trail(store, agent=agent, org=org)
        assert err.value.code == "agent_not_found"
    # Even with filters that would match nothing, a known agent answers an empty page, not 404.
    assert trail(store, filters={"field": "nothing"})["items"] == []


def test_each_organization_sees_its_part_after_a_transfer(store):
    put(store,
        agent_event({}, {"name": "Mover"}, action="create", type="agent.created", org="o1", minute=0),
        agent_event({"organization_id": "o1"}, {"organization_id": "o2"}, org="o1", minute=1,
                    type="agent.transferred", correlation_id="c1"),
        agent_event({"organization_id": "o1"}, {"organization_id": "o2"}, org="o2", minute=1,
                    type="agent.transferred", correlation_id="c1"),
        agent_event({"mission": ""}, {"mission": "m"}, org="o2", minute=2))
    assert [r["field"] for r in trail(store, org="o1")["items"]] == ["organization_id", "name"]
    there = trail(store, org="o2")["items"]
    assert [r["field"] for r in there] == ["mission", "organization_id"]
    assert there[1]["correlation_id"] == "c1"


@pytest.mark.parametrize("filters", [{"colour": "red"}, {"action": "explode"}, {"since": "yesterday"},
                                     {"until": "2026-13-45"}, {"field": 5}, {"target": "a1"}])
def test_bad_filters_are_validation_errors(store, filters):
    put(store, agent_event({"name": "a"}, {"name": "b"}))
    with pytest.raises(ValidationFailed):
        trail(store, filters=filters)


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", encode_cursor([1]), encode_cursor({"at": "x", "seq": 1}),
                                    encode_cursor({"at": "2026-01-01T00:00:00Z", "seq": 1}),
                                    encode_cursor({"at": "2026-01-01T00:00:00Z", "seq": "a", "change": 1})])
def test_bad_cursor_is_a_bad_request(store, cursor):
    put(store, agent_event({"name": "a"}, {"name": "b"}))
    with pytest.raises(BadRequest) as err:
        trail(store, cursor=cursor)
    assert err.value.code == "invalid_cursor"
    with pytest.raises(BadRequest):
        trail(store, agent="no-such-agent", cursor=cursor)   # refused before the agent is looked up


def test_changed_values_are_stored_as_searchable_text(store):
    put(store, agent_event(
        {"name": "Old", "contributors": ["bob"], "count": 5, "flag": True, "config": {"b": 1, "a": 2},
         "avatar_url": "https://e.com/a"},
        {"name": "New", "contributors": ["bob", "carl"], "count": 6, "flag": False, "config": {"a": 3},
         "avatar_url": None, "code": "c"}))
    with store.read() as session:
        stored = {c.field: (c.old_value, c.new_value, c.old_text, c.new_text)
                  for c in session.scalars(select(AuditChange))}
    assert stored == {
        "name": ("Old", "New", "Old", "New"),
        "contributors": (["bob"], ["bob", "carl"], '["bob"]', '["bob", "carl"]'),
        "count": (5, 6, "5", "6"),
        "flag": (True, False, "true", "false"),
        "config": ({"b": 1, "a": 2}, {"a": 3}, '{"a": 2, "b": 1}', '{"a": 3}'),
        "avatar_url": ("https://e.com/a", None, "https://e.com/a", None),
        "code": (None, "c", None, "c"),
    }
    assert as_text("") == ""
    assert as_text(None) is None
