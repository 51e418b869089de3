"""Agents (services/orgs/agents.py) as plain domain functions over a migrated SQLite store: the caller's
roles are passed in, as the entrypoints do after asking the members service."""
import pytest
from sqlalchemy import select

from common.auth import Identity
from common.errors import BadRequest, Conflict, Forbidden, NotFound, ValidationFailed
from common.paging import encode_cursor
from services.orgs import agents, domain
from services.orgs.models import Agent, OutboxEvent

OWNER = ["owner", "billing"]
ADMIN = ["admin"]
BUILDER = ["builder"]
MEMBER = ["member"]
BILLING = ["billing"]


def person(name):
    return Identity(name, f"{name}@example.com", name.title())


CARL, MIRA, DAVE, ERIN = person("carl"), person("mira"), person("dave"), person("erin")


def events(store, prefix="agent."):
    with store.read() as session:
        return [e.envelope for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
                if e.type.startswith(prefix)]


def types(store):
    return [e["type"] for e in events(store)]


def stored(store, agent_id):
    """The agent's row as stored, whatever its organization or state."""
    with store.read() as session:
        agent = session.get(Agent, agent_id)
        return {"organization_id": agent.organization_id, "deleted": agent.deleted_at is not None,
                **agents.access_of(agent)}


def names(page):
    return [a["name"] for a in page["items"]]


@pytest.fixture
def store(make_store):
    return make_store("orgs")


@pytest.fixture
def org(store, alice):
    return domain.create_collective(store, alice, "Clinic")["id"]


def new_agent(store, org, who, roles=OWNER, name="Helper", **fields):
    return agents.create_agent(store, who, roles, org, dict(name=name, **fields))


# ---- clean_fields ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [{}, {"name": ""}, {"name": "   "}, {"name": None}, {"code": "x"}])
def test_name_is_required_on_create(data):
    with pytest.raises(ValidationFailed) as err:
        agents.clean_fields(data, creating=True)
    assert (err.value.code, err.value.field) == ("name_required", "name")


def test_fields_are_trimmed():
    assert agents.clean_fields({"name": "  Nurse Bot ", "code": "\tnb-1\n", "mission": " help "}, creating=True) \
        == {"name": "Nurse Bot", "code": "nb-1", "mission": "help"}


@pytest.mark.parametrize("field, limit", sorted(agents.FIELD_LIMITS.items()))
def test_each_field_has_its_length_limit(field, limit):
    filler = "https://e.com/" if field == "avatar_url" else ""
    at_limit = filler + "a" * (limit - len(filler))
    data = {"name": "n", field: "  " + at_limit + "  "}   # counted after trimming
    assert agents.clean_fields(data, creating=True)[field] == at_limit
    with pytest.raises(ValidationFailed) as err:
        agents.clean_fields({"name": "n", field: at_limit + "a"}, creating=True)
    assert (err.value.code, err.value.field) == ("too_long", field)


@pytest.mark.parametrize("data, field", [({"name": 42}, "name"), ({"name": "n", "mission": ["x"]}, "mission"),
                                         ({"name": "n", "instructions": {"a": 1}}, "instructions"),
                                         ({"name": "n", "code": True}, "code")])
def test_fields_must_be_strings(data, field):
    with pytest.raises(ValidationFailed) as err:
        agents.clean_fields(data, creating=True)
    assert (err.value.code, err.value.field) == ("invalid_type", field)


@pytest.mark.parametrize("data", [None, "name", ["name"]])
def test_body_must_be_an_object(data):
    with pytest.raises(ValidationFailed) as err:
        agents.clean_fields(data, creating=True)
    assert err.value.code == "invalid_type"


def test_unknown_field_is_refused_and_named():
    with pytest.raises(ValidationFailed) as err:
        agents.clean_fields({"name": "n", "colour": "red"}, creating=True)
    assert (err.value.code, err.value.field) == ("unknown_field", "colour")
    with pytest.raises(ValidationFailed) as err:
        agents.clean_fields({"organization_id": "o2"}, creating=False)
    assert (err.value.code, err.value.field) == ("unknown_field", "organization_id")


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "javascript:alert(1)", "example.com/a.png",
                                 "https://", "http://exa mple.com/a.png", "data:image/png;base64,AAAA"])
def test_avatar_must_be_an_http_url(url):
    with pytest.raises(ValidationFailed) as err:
        agents.clean_fields({"name": "n", "avatar_url": url}, creating=True)
    assert (err.value.code, err.value.field) == ("invalid_url", "avatar_url")


@pytest.mark.parametrize("url, expected", [("https://cdn.example.com/a.png", "https://cdn.example.com/a.png"),
                                           (" http://example.com/a ", "http://example.com/a"),
                                           ("", None), ("   ", None), (None, None)])
def test_valid_or_empty_avatar(url, expected):
    assert agents.clean_fields({"name": "n", "avatar_url": url}, creating=True)["avatar_url"] == expected
    assert agents.clean_fields({"avatar_url": url}, creating=False) == {"avatar_url": expected}


def test_patch_needs_no_name_but_cannot_empty_it():
    assert agents.clean_fields({"mission": "m"}, creating=False) == {"mission": "m"}
    assert agents.clean_fields({}, creating=False) == {}
    for name in ("", "  ", None):
        with pytest.raises(ValidationFailed) as err:
            agents.clean_fields({"name": name}, creating=False)
        assert err.value.code == "name_required"


# ---- create ----------------------------------------------------------------------------------------------
def test_builder_becomes_first_contributor(store, org, bob):
    agent = new_agent(store, org, bob, BUILDER)
    assert agent["contributors"] == ["bob"] and agent["created_by"] == "bob"
    assert agent["organization_id"] == org and agent["assignees"] == []
    assert "edit" in agent["permissions"] and "delete" not in agent["permissions"]


def test_owner_without_builder_is_not_a_contributor(store, org, alice):
    agent = new_agent(store, org, alice, OWNER)
    assert agent["contributors"] == []
    assert set(agent["permissions"]) >= {"edit", "delete", "manage_access", "transfer", "view_audit", "use"}
    # An Owner who also holds Builder is recorded as contributor.
    assert new_agent(store, org, alice, ["owner", "builder"])["contributors"] == ["alice"]


@pytest.mark.parametrize("roles", [MEMBER, BILLING, ["member", "billing"], []])
def test_only_owner_admin_builder_create(store, org, bob, roles):
    with pytest.raises(Forbidden):
        new_agent(store, org, bob, roles)
    assert events(store) == []
    assert agents.list_agents(store, bob, OWNER, org)["items"] == []


def test_create_records_one_event_with_config_and_contributors(store, org, bob):
    agent = new_agent(store, org, bob, BUILDER, name=" Nurse ", code="n1", mission="care",
                      welcome_message="hi", instructions="be kind", avatar_url="https://x.example/a.png")
    [event] = events(store)
    assert event["type"] == "agent.created" and event["action"] == "create"
    assert event["before"] == {}
    assert event["after"] == {"name": "Nurse", "code": "n1", "mission": "care", "welcome_message": "hi",
                              "instructions": "be kind", "avatar_url": "https://x.example/a.png",
                              "contributors": ["bob"]}
    assert event["target"] == {"type": "agent", "id": agent["id"]}
    assert event["organization_id"] == org
    assert event["actor"] == {"id": "bob", "email": "bob@example.com"}


def test_unset_fields_are_empty_and_left_out_of_the_event(store, org, alice):
    agent = new_agent(store, org, alice)
    assert (agent["code"], agent["mission"], agent["instructions"], agent["avatar_url"]) == ("", "", "", None)
    # Fields left empty are not part of the creation event (they would be noise rows in the trail).
    assert events(store)[0]["after"] == {"name": "Helper", "contributors": []}


def test_idempotency_key_replays_the_first_agent(store, org, bob):
    first = agents.create_agent(store, bob, BUILDER, org, {"name": "Once"}, idempotency_key="k1")
    again = agents.create_agent(store, bob, BUILDER, org, {"name": "Once"}, idempotency_key="k1")
    assert again == first
    assert agents.find_idempotent(store, bob, "k1") == first
    assert agents.find_idempotent(store, CARL, "k1") is None      # keys are per user
    assert [a["id"] for a in agents.list_agents(store, bob, OWNER, org)["items"]] == [first["id"]]
    assert types(store) == ["agent.created"]


# Regression: two concurrent requests with the same Idempotency-Key (possible on PostgreSQL, where both
# transactions can miss each other's not yet committed key) made the second one fail with an
# IntegrityError (a 500) instead of replaying the first answer. Simulated by letting the second
# request's lookup miss.
def test_concurrent_duplicate_with_same_key_gets_the_first_answer(store, org, bob, monkeypatch):
    from common import idempotency
    first = agents.create_agent(store, bob, BUILDER, org, {"name": "Once"}, idempotency_key="k1")
    real, calls = idempotency.find_replay, []

    def lookup_that_misses_once(*args):
        calls.append(args)
        return None if len(calls) == 1 else real(*args)

    monkeypatch.setattr(idempotency, "find_replay", lookup_that_misses_once)
    assert agents.create_agent(store, bob, BUILDER, org, {"name": "Once"}, idempotency_key="k1") == first
    monkeypatch.undo()
    assert [a["id"] for a in agents.list_agents(store, bob, OWNER, org)["items"]] == [first["id"]]
    assert types(store) == ["agent.created"]


def test_create_in_deleted_organization_is_not_found(store, org, alice):
    domain.delete(store, alice, org)
    with pytest.raises(NotFound):
        new_agent(store, org, alice)
    with pytest.raises(NotFound):
        new_agent(store, "no-such-org", alice)
    assert events(store) == []


# ---- visibility ------------------------------------------------------------------------------------------
@pytest.fixture
def zoo(store, org, alice, bob):
    """Alpha: bob contributes. Bravo: bob assigned. Charlie: mira assigned. Delta, Echo: nobody."""
    ids = {}
    ids["Alpha"] = new_agent(store, org, bob, BUILDER, name="Alpha")["id"]
    for name in ("Bravo", "Charlie", "Delta", "Echo"):
        ids[name] = new_agent(store, org, alice, name=name)["id"]
    agents.assign(store, alice, OWNER, org, ids["Bravo"], "bob", BUILDER)
    agents.assign(store, alice, OWNER, org, ids["Charlie"], "mira", MEMBER)
    return ids


@pytest.mark.parametrize("who, roles, visible", [
    ("alice", OWNER, ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]),
    ("dave", ADMIN, ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]),
    ("bob", BUILDER, ["Alpha", "Bravo"]),
    ("mira", MEMBER, ["Charlie"]),
    ("erin", BILLING, []),
])
def test_each_role_sees_its_agents(store, org, zoo, who, roles, visible):
    identity = person(who)
    assert names(agents.list_agents(store, identity, roles, org)) == visible
    for name, agent_id in zoo.items():
        if name in visible:
            assert agents.get_agent(store, identity, roles, org, agent_id)["name"] == name
        else:
            with pytest.raises(NotFound) as err:        # not Forbidden: invisible agents cannot be probed
                agents.get_agent(store, identity, roles, org, agent_id)
            assert err.value.code == "agent_not_found"


def test_builder_in_contributed_but_not_assigned_sees_it_as_member_would_not(store, org, zoo):
    # The same user holding only Member does not see what they contribute to (contributing is a Builder thing).
    assert names(agents.list_agents(store, person("bob"), MEMBER, org)) == ["Bravo"]


def test_agent_of_another_organization_is_not_found_here(store, org, alice):
    other = domain.create_collective(store, alice, "Other")["id"]
    foreign = new_agent(store, other, alice, name="Foreign")["id"]
    for call in (lambda: agents.get_agent(store, alice, OWNER, org, foreign),
                 lambda: agents.update_agent(store, alice, OWNER, org, foreign, {"name": "Mine"}),
                 lambda: agents.delete_agent(store, alice, OWNER, org, foreign),
                 lambda: agents.assign(store, alice, OWNER, org, foreign, "mira", MEMBER)):
        with pytest.raises(NotFound) as err:
            call()
        assert err.value.code == "agent_not_found"
    assert names(agents.list_agents(store, alice, OWNER, org)) == []
    assert stored(store, foreign) == {"organization_id": other, "deleted": False, "contributors": [],
                                      "assignees": []}


@pytest.mark.parametrize("agent_id", ["no-such-agent", "", 42, None, "x" * 65])
def test_unknown_agent_ids_are_not_found(store, org, alice, agent_id):
    with pytest.raises(NotFound) as err:
        agents.get_agent(store, alice, OWNER, org, agent_id)
    assert err.value.code == "agent_not_found"


def test_search_by_name_is_case_insensitive_and_literal(store, org, alice):
    for name in ("Alpha Bot", "alpha helper", "100% Sure", "100 percent", "snake_case", "snakeXcase", "Other"):
        new_agent(store, org, alice, name=name)

    def search(q):
        return sorted(names(agents.list_agents(store, alice, OWNER, org, q=q)))

    assert search("ALPHA") == ["Alpha Bot", "alpha helper"]
    assert search("  alpha  ") == ["Alpha Bot", "alpha helper"]
    assert search("%") == ["100% Sure"]
    assert search("0% s") == ["100% Sure"]
    assert search("_") == ["snake_case"]
    assert search("e_c") == ["snake_case"]
    assert search("nothing") == []
    assert len(search("   ")) == 7      # blank search is no search


def test_search_respects_visibility(store, org, zoo):
    assert names(agents.list_agents(store, person("bob"), BUILDER, org, q="a")) == ["Alpha", "Bravo"]
    assert names(agents.list_agents(store, person("bob"), BUILDER, org, q="delta")) == []


def test_bad_search_text(store, org, alice):
    for q in (42, "x" * 201):
        with pytest.raises(ValidationFailed):
            agents.list_agents(store, alice, OWNER, org, q=q)


def walk(store, identity, roles, org, limit, **kw):
    seen, cursor, pages = [], None, 0
    while True:
        page = agents.list_agents(store, identity, roles, org, cursor=cursor, limit=limit, **kw)
        assert len(page["items"]) <= limit
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            return seen, pages
        assert pages < 20, "paging does not end"


def test_keyset_paging_visits_every_agent_once_in_name_order(store, org, alice):
    for name in ("echo", "Alpha", "delta", "Bravo", "charlie"):
        new_agent(store, org, alice, name=name)
    seen, pages = walk(store, alice, OWNER, org, 2)
    assert [a["name"] for a in seen] == ["Alpha", "Bravo", "charlie", "delta", "echo"]
    assert len({a["id"] for a in seen}) == 5 and pages == 3


def test_paging_through_equal_names_uses_the_id(store, org, alice):
    made = {new_agent(store, org, alice, name=name)["id"] for name in ("Same", "same", "SAME", "Zed")}
    seen, _ = walk(store, alice, OWNER, org, 1)
    assert [a["id"] for a in seen][:3] == sorted(made - {seen[-1]["id"]})
    assert {a["id"] for a in seen} == made and len(seen) == 4


def test_paging_with_visibility_and_search(store, org, alice, bob):
    for i in range(5):
        agent = new_agent(store, org, alice, name=f"Bot {i}")
        if i % 2 == 0:
            agents.assign(store, alice, OWNER, org, agent["id"], "bob", MEMBER)
    new_agent(store, org, alice, name="Robot hidden")
    seen, _ = walk(store, bob, MEMBER, org, 1, q="bot")
    assert [a["name"] for a in seen] == ["Bot 0", "Bot 2", "Bot 4"]


# Regression: the cursor stored Python's str.lower() of the last name while the query orders and
# compares by the database's lower(), which folds ASCII only on SQLite: after "Ärzte" the cursor said
# "ärzte" and "Émile" (sorted between them by the database) was skipped.
def test_paging_visits_non_ascii_names_once(store, org, alice):
    for name in ("Ärzte", "Émile", "apple", "Zeta"):
        new_agent(store, org, alice, name=name)
    seen, _ = walk(store, alice, OWNER, org, 1)
    assert sorted(a["name"] for a in seen) == sorted(["Ärzte", "Émile", "apple", "Zeta"])
    assert [a["name"] for a in seen] == names(agents.list_agents(store, alice, OWNER, org))


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", encode_cursor([1, 2]), encode_cursor({"name": "a"}),
                                    encode_cursor({"name": 1, "id": "x"})])
def test_invalid_cursor_is_a_bad_request(store, org, alice, cursor):
    with pytest.raises(BadRequest) as err:
        agents.list_agents(store, alice, OWNER, org, cursor=cursor)
    assert err.value.code == "invalid_cursor"


def test_list_of_deleted_organization_is_not_found(store, org, alice):
    domain.delete(store, alice, org)
    with pytest.raises(NotFound):
        agents.list_agents(store, alice, OWNER, org)


# ---- update ----------------------------------------------------------------------------------------------
def test_update_records_only_changed_fields(store, org, alice):
    agent = new_agent(store, org, alice, name="A", mission="old")
    updated = agents.update_agent(store, alice, OWNER, org, agent["id"],
                                  {"name": " A ", "mission": "new", "code": "", "instructions": "do"})
    assert (updated["name"], updated["mission"], updated["instructions"]) == ("A", "new", "do")
    event = events(store)[-1]
    assert event["type"] == "agent.updated" and event["action"] == "update"
    assert event["before"] == {"mission": "old", "instructions": ""}
    assert event["after"] == {"mission": "new", "instructions": "do"}
    assert event["target"] == {"type": "agent", "id": agent["id"]}
    assert agents.get_agent(store, alice, OWNER, org, agent["id"])["mission"] == "new"


def test_noop_update_records_nothing(store, org, alice):
    agent = new_agent(store, org, alice, name="A", mission="m", avatar_url="https://e.com/a")
    same = agents.update_agent(store, alice, OWNER, org, agent["id"],
                               {"name": "A ", "mission": " m", "avatar_url": "https://e.com/a"})
    assert same["updated_at"] == agent["updated_at"]
    assert agents.update_agent(store, alice, OWNER, org, agent["id"], {})["name"] == "A"
    assert types(store) == ["agent.created"]


def test_clearing_the_avatar(store, org, alice):
    agent = new_agent(store, org, alice, avatar_url="https://e.com/a")
    assert agents.update_agent(store, alice, OWNER, org, agent["id"], {"avatar_url": ""})["avatar_url"] is None
    event = events(store)[-1]
    assert (event["before"], event["after"]) == ({"avatar_url": "https://e.com/a"}, {"avatar_url": None})


def test_bad_update_changes_nothing(store, org, alice):
    agent = new_agent(store, org, alice, name="A")
    for data in ({"name": ""}, {"code": "x" * 101}, {"colour": "red"}):
        with pytest.raises(ValidationFailed):
            agents.update_agent(store, alice, OWNER, org, agent["id"], data)
    assert agents.get_agent(store, alice, OWNER, org, agent["id"])["name"] == "A"
    assert types(store) == ["agent.created"]


def test_who_may_edit(store, org, alice, bob):
    agent = new_agent(store, org, bob, BUILDER, name="Mine")["id"]
    agents.assign(store, alice, OWNER, org, agent, "carl", BUILDER)
    agents.assign(store, alice, OWNER, org, agent, "mira", MEMBER)
    # contributing Builder: may edit
    assert agents.update_agent(store, bob, BUILDER, org, agent, {"mission": "by bob"})["mission"] == "by bob"
    # Admin: may edit any
    assert agents.update_agent(store, DAVE, ADMIN, org, agent, {"code": "d"})["code"] == "d"
    # Builder assigned but not contributing: sees it, may not edit
    assert agents.get_agent(store, CARL, BUILDER, org, agent)["permissions"] == ["use"]
    with pytest.raises(Forbidden):
        agents.update_agent(store, CARL, BUILDER, org, agent, {"mission": "by carl"})
    # Member assigned: sees it, may not edit
    with pytest.raises(Forbidden):
        agents.update_agent(store, MIRA, MEMBER, org, agent, {"mission": "by mira"})
    # Member not assigned: does not even see it
    with pytest.raises(NotFound):
        agents.update_agent(store, ERIN, MEMBER, org, agent, {"mission": "by erin"})
    assert agents.get_agent(store, alice, OWNER, org, agent)["mission"] == "by bob"
    assert types(store).count("agent.updated") == 2


# ---- delete ----------------------------------------------------------------------------------------------
def test_only_owner_or_admin_deletes(store, org, alice, bob):
    agent = new_agent(store, org, bob, BUILDER, name="Doomed", mission="m")["id"]
    with pytest.raises(Forbidden):
        agents.delete_agent(store, bob, BUILDER, org, agent)        # contributing Builder
    assert stored(store, agent)["deleted"] is False
    result = agents.delete_agent(store, alice, OWNER, org, agent)
    assert result["id"] == agent and result["deleted_at"]
    with pytest.raises(NotFound) as err:
        agents.get_agent(store, alice, OWNER, org, agent)
    assert err.value.code == "agent_not_found"
    with pytest.raises(NotFound):
        agents.delete_agent(store, alice, OWNER, org, agent)        # not twice
    assert agents.list_agents(store, alice, OWNER, org)["items"] == []
    [deleted] = [e for e in events(store) if e["type"] == "agent.deleted"]
    assert deleted["action"] == "delete" and deleted["after"] == {}
    assert deleted["before"]["name"] == "Doomed" and deleted["before"]["contributors"] == ["bob"]
    assert deleted["target"] == {"type": "agent", "id": agent}


def test_admin_deletes_too(store, org, alice):
    agent = new_agent(store, org, alice)["id"]
    agents.delete_agent(store, DAVE, ADMIN, org, agent)
    assert stored(store, agent)["deleted"] is True


# ---- contributors ----------------------------------------------------------------------------------------
@pytest.fixture
def bobs(store, org, bob):
    return new_agent(store, org, bob, BUILDER, name="Bob's")["id"]


def test_adding_contributors_needs_owner_or_admin(store, org, bob, bobs):
    with pytest.raises(Forbidden):
        agents.add_contributor(store, bob, BUILDER, org, bobs, "carl", BUILDER)
    assert stored(store, bobs)["contributors"] == ["bob"]


def test_contributor_must_be_a_member_holding_builder(store, org, alice, bobs):
    with pytest.raises(NotFound) as err:
        agents.add_contributor(store, alice, OWNER, org, bobs, "stranger", None)
    assert err.value.code == "member_not_found"
    for roles in (MEMBER, BILLING, ["owner"], ["admin", "member"]):
        with pytest.raises(ValidationFailed) as err:
            agents.add_contributor(store, alice, OWNER, org, bobs, "carl", roles)
        assert err.value.code == "contributor_must_be_builder"
    assert stored(store, bobs)["contributors"] == ["bob"]
    assert types(store) == ["agent.created"]


def test_adding_a_contributor_once(store, org, alice, bobs):
    person_, created = agents.add_contributor(store, alice, OWNER, org, bobs, "carl", BUILDER)
    assert created is True and person_["user_id"] == "carl" and person_["added_by"] == "alice"
    again, created = agents.add_contributor(store, DAVE, ADMIN, org, bobs, "carl", ["builder", "member"])
    assert created is False and again == person_
    assert [c["user_id"] for c in agents.list_contributors(store, alice, OWNER, org, bobs)["items"]] == ["bob", "carl"]
    added = [e for e in events(store) if e["type"] == "agent.contributor_added"]
    assert len(added) == 1
    assert (added[0]["before"], added[0]["after"]) == ({"contributors": ["bob"]}, {"contributors": ["bob", "carl"]})
    # The new contributor (a Builder) now sees and may edit it.
    assert agents.update_agent(store, CARL, BUILDER, org, bobs, {"mission": "c"})["mission"] == "c"


def test_removing_contributors(store, org, alice, bob, bobs):
    with pytest.raises(Forbidden):
        agents.remove_contributor(store, bob, BUILDER, org, bobs, "bob")
    with pytest.raises(NotFound) as err:
        agents.remove_contributor(store, alice, OWNER, org, bobs, "carl")
    assert err.value.code == "contributor_not_found"
    with pytest.raises(Conflict) as err:
        agents.remove_contributor(store, alice, OWNER, org, bobs, "bob")
    assert err.value.code == "last_contributor"
    assert stored(store, bobs)["contributors"] == ["bob"]

    agents.add_contributor(store, alice, OWNER, org, bobs, "carl", BUILDER)
    assert agents.remove_contributor(store, alice, OWNER, org, bobs, "bob") == {"agent_id": bobs, "user_id": "bob"}
    assert stored(store, bobs)["contributors"] == ["carl"]
    removed = events(store)[-1]
    assert removed["type"] == "agent.contributor_removed"
    assert (removed["before"], removed["after"]) == ({"contributors": ["bob", "carl"]}, {"contributors": ["carl"]})
    with pytest.raises(NotFound):       # bob no longer contributes, is not assigned: cannot see it
        agents.get_agent(store, bob, BUILDER, org, bobs)


def test_contributor_not_found_on_agent_without_contributors(store, org, alice):
    agent = new_agent(store, org, alice)["id"]
    with pytest.raises(NotFound) as err:
        agents.remove_contributor(store, alice, OWNER, org, agent, "alice")
    assert err.value.code == "contributor_not_found"


# ---- assignees -------------------------------------------------------------------------------------------
def test_assign_and_unassign(store, org, alice, bob):
    agent = new_agent(store, org, alice)["id"]
    with pytest.raises(NotFound) as err:
        agents.assign(store, alice, OWNER, org, agent, "stranger", None)
    assert err.value.code == "member_not_found"
    contributor = new_agent(store, org, bob, BUILDER, name="Bob's")["id"]
    with pytest.raises(Forbidden):
        agents.assign(store, bob, BUILDER, org, contributor, "mira", MEMBER)

    row, created = agents.assign(store, alice, OWNER, org, agent, "mira", MEMBER)
    assert created is True and row["user_id"] == "mira" and row["added_by"] == "alice"
    again, created = agents.assign(store, alice, OWNER, org, agent, "mira", MEMBER)
    assert created is False and again == row
    added = [e for e in events(store) if e["type"] == "agent.assignee_added"]
    assert len(added) == 1 and (added[0]["before"], added[0]["after"]) == ({"assignees": []}, {"assignees": ["mira"]})
    assert agents.get_agent(store, MIRA, MEMBER, org, agent)["permissions"] == ["use"]

    assert agents.unassign(store, alice, OWNER, org, agent, "mira") == {"agent_id": agent, "user_id": "mira"}
    removed = events(store)[-1]
    assert removed["type"] == "agent.assignee_removed"
    assert (removed["before"], removed["after"]) == ({"assignees": ["mira"]}, {"assignees": []})
    with pytest.raises(NotFound):
        agents.get_agent(store, MIRA, MEMBER, org, agent)
    with pytest.raises(NotFound) as err:
        agents.unassign(store, alice, OWNER, org, agent, "mira")
    assert err.value.code == "assignee_not_found"


# ---- check_agent_ids -------------------------------------------------------------------------------------
def test_check_agent_ids(store, org, alice):
    live = [new_agent(store, org, alice, name=n)["id"] for n in ("A", "B")]
    gone = new_agent(store, org, alice, name="Gone")["id"]
    agents.delete_agent(store, alice, OWNER, org, gone)
    other_org = domain.create_collective(store, alice, "Other")["id"]
    foreign = new_agent(store, other_org, alice, name="Foreign")["id"]
    assert agents.check_agent_ids(store, org, []) == []
    assert agents.check_agent_ids(store, org, live) == live
    with pytest.raises(ValidationFailed) as err:
        agents.check_agent_ids(store, org, [live[0], "nope", gone, foreign, live[1]])
    assert (err.value.code, err.value.field) == ("unknown_agent", "agent_ids")
    assert err.value.details == {"unknown_agent_ids": ["nope", gone, foreign]}


# ---- transfer --------------------------------------------------------------------------------------------
def check(**changes):
    args = dict(source_roles=OWNER, destination_roles=BUILDER, organization_id="o1", destination_id="o2",
                dry_run=True)
    args.update(changes)
    agents.check_transfer(**args)


def test_check_transfer_passes_when_all_requirements_hold():
    check()
    check(source_roles=ADMIN, destination_roles=["owner"], dry_run=False)


@pytest.mark.parametrize("changes, error, code", [
    ({"dry_run": "yes"}, ValidationFailed, "invalid_type"),
    ({"dry_run": None}, ValidationFailed, "invalid_type"),
    ({"dry_run": 1}, ValidationFailed, "invalid_type"),
    ({"source_roles": BUILDER}, Forbidden, "source_role_required"),
    ({"source_roles": ["member", "billing"]}, Forbidden, "source_role_required"),
    ({"destination_id": "o1"}, ValidationFailed, "same_organization"),
    ({"destination_roles": None}, NotFound, "destination_not_found"),
    ({"destination_roles": MEMBER}, Forbidden, "destination_role_required"),
    ({"destination_roles": ["member", "billing"]}, Forbidden, "destination_role_required"),
    ({"destination_roles": []}, Forbidden, "destination_role_required"),
])
def test_each_transfer_requirement_has_its_own_error(changes, error, code):
    with pytest.raises(error) as err:
        check(**changes)
    assert err.value.code == code


@pytest.fixture
def move(store, org, alice, bob):
    """An agent in `org` with contributors bob, carl and assignees mira, dora; a destination `dest`."""
    dest = domain.create_collective(store, alice, "Destination")["id"]
    agent = new_agent(store, org, bob, BUILDER, name="Mover")["id"]
    agents.add_contributor(store, alice, OWNER, org, agent, "carl", BUILDER)
    agents.assign(store, alice, OWNER, org, agent, "mira", MEMBER)
    agents.assign(store, alice, OWNER, org, agent, "dora", MEMBER)
    people_roles = {"bob": ["builder"], "mira": ["member"], "dora": []}     # carl: not a member there
    return dest, agent, people_roles


def outcomes(people):
    return {p["user_id"]: p["outcome"] for p in people}


def test_transfer_dry_run_reports_and_changes_nothing(store, org, alice, move):
    dest, agent, people_roles = move
    before = stored(store, agent)
    count = len(events(store))
    report = agents.transfer_agent(store, alice, OWNER, OWNER, org, agent, dest, True, people_roles)
    assert report["dry_run"] is True and report["correlation_id"] is None
    assert (report["agent_id"], report["name"]) == (agent, "Mover")
    assert (report["source_organization_id"], report["destination_organization_id"]) == (org, dest)
    assert report["contributors"] == [
        {"user_id": "bob", "destination_roles": ["builder"], "outcome": "will retain access"},
        {"user_id": "carl", "destination_roles": [], "outcome": "will be removed"}]
    assert outcomes(report["assignees"]) == {"mira": "will retain access", "dora": "will be removed"}
    assert stored(store, agent) == before
    assert len(events(store)) == count
    assert agents.get_agent(store, alice, OWNER, org, agent)["organization_id"] == org


def test_transfer_moves_the_agent(store, org, alice, bob, move):
    dest, agent, people_roles = move
    report = agents.transfer_agent(store, alice, OWNER, OWNER, org, agent, dest, False, people_roles)
    assert report["dry_run"] is False and report["correlation_id"] and report["transferred_at"]
    assert outcomes(report["contributors"]) == {"bob": "retained access", "carl": "removed"}
    assert outcomes(report["assignees"]) == {"mira": "retained access", "dora": "removed"}

    moved = agents.get_agent(store, alice, OWNER, dest, agent)
    assert moved["organization_id"] == dest and moved["name"] == "Mover"
    assert (moved["contributors"], moved["assignees"]) == (["bob"], ["mira"])
    assert stored(store, agent)["organization_id"] == dest
    with pytest.raises(NotFound) as err:
        agents.get_agent(store, alice, OWNER, org, agent)
    assert err.value.code == "agent_not_found"
    assert agents.list_agents(store, alice, OWNER, org)["items"] == []
    assert [a["id"] for a in agents.list_agents(store, bob, BUILDER, dest)["items"]] == [agent]

    transferred = [e for e in events(store) if e["type"] == "agent.transferred"]
    assert len(transferred) == 2
    assert {e["organization_id"] for e in transferred} == {org, dest}
    assert {e["correlation_id"] for e in transferred} == {report["correlation_id"]}
    assert transferred[0]["event_id"] != transferred[1]["event_id"]
    for event in transferred:
        assert event["target"] == {"type": "agent", "id": agent} and event["action"] == "update"
        assert event["before"] == {"organization_id": org, "contributors": ["bob", "carl"],
                                   "assignees": ["mira", "dora"]}
        assert event["after"] == {"organization_id": dest, "contributors": ["bob"], "assignees": ["mira"]}


def test_transfer_when_everyone_keeps_access_records_only_the_organization(store, org, alice, move):
    dest, agent, _ = move
    everyone = {"bob": BUILDER, "carl": ["admin"], "mira": MEMBER, "dora": ["member", "billing"]}
    agents.transfer_agent(store, alice, OWNER, OWNER, org, agent, dest, False, everyone)
    assert stored(store, agent)["contributors"] == ["bob", "carl"]
    assert stored(store, agent)["assignees"] == ["mira", "dora"]
    event = events(store)[-1]
    assert (event["before"], event["after"]) == ({"organization_id": org}, {"organization_id": dest})


def test_builder_only_requester_is_added_as_contributor(store, org, alice, move):
    dest, agent, people_roles = move
    dry = agents.transfer_agent(store, alice, OWNER, BUILDER, org, agent, dest, True, people_roles)
    assert dry["contributors"][-1] == {"user_id": "alice", "destination_roles": ["builder"],
                                       "outcome": "will be added"}
    assert "alice" not in stored(store, agent)["contributors"]
    done = agents.transfer_agent(store, alice, OWNER, BUILDER, org, agent, dest, False, people_roles)
    assert outcomes(done["contributors"]) == {"bob": "retained access", "carl": "removed", "alice": "added"}
    assert stored(store, agent)["contributors"] == ["bob", "alice"]
    # They can see (and edit) what they moved.
    assert agents.get_agent(store, alice, BUILDER, dest, agent)["permissions"][0] == "edit"
    assert events(store)[-1]["after"]["contributors"] == ["bob", "alice"]


def test_owner_requester_in_destination_is_not_added(store, org, alice, move):
    dest, agent, people_roles = move
    for roles in (OWNER, ["admin", "builder"]):
        report = agents.transfer_agent(store, alice, OWNER, roles, org, agent, dest, True, people_roles)
        assert "alice" not in outcomes(report["contributors"])


def test_builder_requester_already_contributing_is_not_added_twice(store, org, alice, move):
    dest, agent, people_roles = move
    agents.add_contributor(store, alice, OWNER, org, agent, "alice", ["owner", "builder"])
    report = agents.transfer_agent(store, alice, OWNER, BUILDER, org, agent, dest, False,
                                   dict(people_roles, alice=BUILDER))
    assert outcomes(report["contributors"])["alice"] == "retained access"
    assert stored(store, agent)["contributors"] == ["bob", "alice"]


def test_transfer_to_deleted_or_unknown_destination(store, org, alice, move):
    dest, agent, people_roles = move
    domain.delete(store, alice, dest)
    for destination in (dest, "no-such-org"):
        for dry_run in (True, False):
            with pytest.raises(NotFound) as err:
                agents.transfer_agent(store, alice, OWNER, OWNER, org, agent, destination, dry_run, people_roles)
            assert err.value.code == "destination_not_found"
    assert stored(store, agent)["organization_id"] == org
    assert "agent.transferred" not in types(store)


def test_transfer_checks_requirements_first(store, org, alice, move):
    dest, agent, people_roles = move
    with pytest.raises(Forbidden) as err:
        agents.transfer_agent(store, alice, BUILDER, OWNER, org, agent, dest, False, people_roles)
    assert err.value.code == "source_role_required"
    with pytest.raises(ValidationFailed) as err:
        agents.transfer_agent(store, alice, OWNER, OWNER, org, agent, org, False, people_roles)
    assert err.value.code == "same_organization"
    with pytest.raises(NotFound) as err:
        agents.transfer_agent(store, alice, OWNER, OWNER, org, "no-such-agent", dest, False, people_roles)
    assert err.value.code == "agent_not_found"
    assert stored(store, agent)["organization_id"] == org


# ---- reactions to other services' events -----------------------------------------------------------------
# (services.orgs.reactions calls these inside its transaction; here each gets its own. That a
# redelivered event is not handled twice at all is tested in test_orgs_reactions.py.)
def apply_invitation_agents(store, event):
    with store.write() as session:
        return agents.apply_invitation_agents(session, event)


def forget_member_access(store, event, contributors_only=False):
    with store.write() as session:
        return agents.forget_member_access(session, event, contributors_only)


def accepted(org, agent_ids, user="u2", event_id="e1"):
    return {"event_id": event_id, "type": "invitation.accepted", "organization_id": org,
            "actor": {"id": user, "email": f"{user}@x"}, "after": {"user_id": user, "agent_ids": agent_ids}}


def test_invitation_agents_are_assigned_once(store, org, alice):
    a1, a2, gone = (new_agent(store, org, alice, name=n)["id"] for n in ("A1", "A2", "Gone"))
    agents.delete_agent(store, alice, OWNER, org, gone)
    other = domain.create_collective(store, alice, "Other")["id"]
    foreign = new_agent(store, other, alice, name="Foreign")["id"]
    count = len(events(store))

    assert apply_invitation_agents(store, accepted(org, [a1, gone, foreign, "missing", a2])) == 2
    assert stored(store, a1)["assignees"] == ["u2"] and stored(store, a2)["assignees"] == ["u2"]
    assert stored(store, gone)["assignees"] == [] and stored(store, foreign)["assignees"] == []
    new = events(store)[count:]
    assert [e["type"] for e in new] == ["agent.assignee_added"] * 2
    assert {e["target"]["id"] for e in new} == {a1, a2}
    for event in new:
        assert event["correlation_id"] == "e1" and event["organization_id"] == org
        assert event["actor"] == {"id": "u2", "email": "u2@x"}
        assert (event["before"], event["after"]) == ({"assignees": []}, {"assignees": ["u2"]})
    assert names(agents.list_agents(store, Identity("u2", "u2@x", "U2"), MEMBER, org)) == ["A1", "A2"]

    assert apply_invitation_agents(store, accepted(org, [a1, a2])) == 0      # redelivery
    assert len(events(store)) == count + 2
    assert stored(store, a1)["assignees"] == ["u2"]


def test_invitation_agents_skip_already_assigned_and_empty_lists(store, org, alice):
    a1, a2 = (new_agent(store, org, alice, name=n)["id"] for n in ("A1", "A2"))
    agents.assign(store, alice, OWNER, org, a1, "u2", MEMBER)
    assert apply_invitation_agents(store, accepted(org, [a1, a2, a2])) == 1
    assert stored(store, a2)["assignees"] == ["u2"]
    assert apply_invitation_agents(store, accepted(org, [])) == 0
    event = accepted(org, [a1])
    event["after"].pop("agent_ids")
    assert apply_invitation_agents(store, event) == 0
    assert [e["type"] for e in events(store)].count("agent.assignee_added") == 2


def left(org, user, event_id="e9"):
    return {"event_id": event_id, "type": "member.left", "organization_id": org,
            "actor": {"id": "alice", "email": "alice@example.com"}, "target": {"type": "member", "id": user}}


@pytest.fixture
def access(store, org, alice, bob):
    """only: bob last contributor. shared: bob+carl contribute, bob assigned. used: bob assigned only.
    unrelated: carl. foreign: bob contributes in another organization. gone: deleted, bob contributes."""
    ids = {"only": new_agent(store, org, bob, BUILDER, name="only")["id"],
           "shared": new_agent(store, org, bob, BUILDER, name="shared")["id"],
           "used": new_agent(store, org, alice, name="used")["id"],
           "unrelated": new_agent(store, org, CARL, BUILDER, name="unrelated")["id"],
           "gone": new_agent(store, org, bob, BUILDER, name="gone")["id"]}
    other = domain.create_collective(store, alice, "Other")["id"]
    ids["foreign"] = new_agent(store, other, bob, BUILDER, name="foreign")["id"]
    agents.add_contributor(store, alice, OWNER, org, ids["shared"], "carl", BUILDER)
    agents.assign(store, alice, OWNER, org, ids["shared"], "bob", BUILDER)
    agents.assign(store, alice, OWNER, org, ids["used"], "bob", BUILDER)
    agents.delete_agent(store, alice, OWNER, org, ids["gone"])
    return ids


def test_forgetting_a_member_removes_all_their_access(store, org, access):
    count = len(events(store))
    assert forget_member_access(store, left(org, "bob")) == 3
    assert stored(store, access["only"])["contributors"] == []          # even the last contributor
    assert stored(store, access["only"])["deleted"] is False            # the agent stays
    assert stored(store, access["shared"]) == {"organization_id": org, "deleted": False,
                                               "contributors": ["carl"], "assignees": []}
    assert stored(store, access["used"])["assignees"] == []
    assert stored(store, access["unrelated"])["contributors"] == ["carl"]
    assert stored(store, access["foreign"])["contributors"] == ["bob"]
    assert stored(store, access["gone"])["contributors"] == ["bob"]
    new = events(store)[count:]
    assert [e["type"] for e in new] == ["agent.access_revoked"] * 3
    by_agent = {e["target"]["id"]: e for e in new}
    assert set(by_agent) == {access["only"], access["shared"], access["used"]}
    for event in new:
        assert event["correlation_id"] == "e9" and event["organization_id"] == org
        assert event["actor"] == {"id": "alice", "email": "alice@example.com"}
    assert (by_agent[access["only"]]["before"], by_agent[access["only"]]["after"]) == \
        ({"contributors": ["bob"]}, {"contributors": []})
    assert (by_agent[access["shared"]]["before"], by_agent[access["shared"]]["after"]) == \
        ({"contributors": ["bob", "carl"], "assignees": ["bob"]}, {"contributors": ["carl"], "assignees": []})
    assert (by_agent[access["used"]]["before"], by_agent[access["used"]]["after"]) == \
        ({"assignees": ["bob"]}, {"assignees": []})

    assert forget_member_access(store, left(org, "bob")) == 0     # redelivery
    assert len(events(store)) == count + 3


def test_losing_builder_removes_only_contributions(store, org, access):
    count = len(events(store))
    assert forget_member_access(store, left(org, "bob"), contributors_only=True) == 2
    assert stored(store, access["only"])["contributors"] == []
    assert stored(store, access["shared"])["contributors"] == ["carl"]
    assert stored(store, access["shared"])["assignees"] == ["bob"]
    assert stored(store, access["used"])["assignees"] == ["bob"]
    new = events(store)[count:]
    assert {e["target"]["id"] for e in new} == {access["only"], access["shared"]}
    assert all("assignees" not in e["before"] for e in new)
    # bob, assigned, still sees those as a Member
    assert names(agents.list_agents(store, person("bob"), MEMBER, org)) == ["shared", "used"]
    assert forget_member_access(store, left(org, "bob"), contributors_only=True) == 0
    assert len(events(store)) == count + 2


def test_forgetting_someone_without_access_does_nothing(store, org, access):
    count = len(events(store))
    assert forget_member_access(store, left(org, "nobody")) == 0
    assert len(events(store)) == count
