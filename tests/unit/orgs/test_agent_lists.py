"""Who sees which agents (services/orgs/agents.py: can_see and its SQL form) and the agent list: search
by name, keyset paging by name, visibility applied to both."""
import pytest

from common.errors import BadRequest, NotFound, ValidationFailed
from common.paging import encode_cursor
from services.orgs import agent_people, agents, organizations
from tests.unit.orgs.helpers import ADMIN, BILLING, BUILDER, MEMBER, OWNER, committed, names, new_agent, person, stored
from tests.unit.paging import walk_pages


# ---- visibility ------------------------------------------------------------------------------------------
@pytest.fixture
def zoo(store, org, alice, bob):
    """Alpha: bob contributes. Bravo: bob assigned. Charlie: mira assigned. Delta, Echo: nobody."""
    ids = {}
    ids["Alpha"] = new_agent(store, org, bob, BUILDER, name="Alpha")["id"]
    for name in ("Bravo", "Charlie", "Delta", "Echo"):
        ids[name] = new_agent(store, org, alice, name=name)["id"]
    committed(store, agent_people.assign, alice, OWNER, org, ids["Bravo"], "bob", BUILDER)
    committed(store, agent_people.assign, alice, OWNER, org, ids["Charlie"], "mira", MEMBER)
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
    other = committed(store, organizations.create_collective, alice, "Other")["id"]
    foreign = new_agent(store, other, alice, name="Foreign")["id"]
    for call in (lambda: agents.get_agent(store, alice, OWNER, org, foreign),
                 lambda: committed(store, agents.update_agent, alice, OWNER, org, foreign, {"name": "Mine"}),
                 lambda: committed(store, agents.delete_agent, alice, OWNER, org, foreign),
                 lambda: committed(store, agent_people.assign, alice, OWNER, org, foreign, "mira", MEMBER)):
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
    return walk_pages(lambda cursor: agents.list_agents(store, identity, roles, org, cursor=cursor, limit=limit, **kw),
                      limit, max_pages=20)


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
            committed(store, agent_people.assign, alice, OWNER, org, agent["id"], "bob", MEMBER)
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
    committed(store, organizations.delete, alice, org)
    with pytest.raises(NotFound):
        agents.list_agents(store, alice, OWNER, org)
