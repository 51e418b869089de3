"""Contributors and assignees of agents (services/orgs/agent_people.py) over a migrated SQLite store:
added and removed by an Owner or Admin, assigned by an accepted invitation, taken away when a member
leaves or loses Builder."""
import pytest

from common.auth import Identity
from common.errors import Conflict, NotFound, ValidationFailed
from services.orgs import agent_people, agents, organizations
from tests.unit.orgs.helpers import (
    ADMIN,
    BILLING,
    BUILDER,
    CARL,
    DAVE,
    MEMBER,
    MIRA,
    OWNER,
    committed,
    edit_agent,
    events,
    names,
    new_agent,
    person,
    refused,
    stored,
    types,
)


# ---- contributors ----------------------------------------------------------------------------------------
@pytest.fixture
def bobs(store, org, bob):
    return new_agent(store, org, bob, BUILDER, name="Bob's")["id"]


def test_adding_contributors_needs_owner_or_admin(store, org, bob, bobs):
    assert refused(store, org, bob, BUILDER, "add_contributor", bobs, "carl") == "forbidden"
    assert stored(store, bobs)["contributors"] == ["bob"]


def test_contributor_must_be_a_member_holding_builder(store, org, alice, bobs):
    with pytest.raises(NotFound) as err:
        committed(store, agent_people.add_contributor, alice, OWNER, org, bobs, "stranger", None)
    assert err.value.code == "member_not_found"
    for roles in (MEMBER, BILLING, ["owner"], ["admin", "member"]):
        with pytest.raises(ValidationFailed) as err:
            committed(store, agent_people.add_contributor, alice, OWNER, org, bobs, "carl", roles)
        assert err.value.code == "contributor_must_be_builder"
    assert stored(store, bobs)["contributors"] == ["bob"]
    assert types(store) == ["agent.created"]


def test_adding_a_contributor_once(store, org, alice, bobs):
    person_, created = committed(store, agent_people.add_contributor, alice, OWNER, org, bobs, "carl", BUILDER)
    assert created is True and person_["user_id"] == "carl" and person_["added_by"] == "alice"
    again, created = committed(store, agent_people.add_contributor, DAVE, ADMIN, org, bobs, "carl",
                               ["builder", "member"])
    assert created is False and again == person_
    listed = agent_people.list_contributors(store, alice, OWNER, org, bobs)["items"]
    assert [c["user_id"] for c in listed] == ["bob", "carl"]
    added = [e for e in events(store) if e["type"] == "agent.contributor_added"]
    assert len(added) == 1
    assert (added[0]["before"], added[0]["after"]) == ({"contributors": ["bob"]}, {"contributors": ["bob", "carl"]})
    # The new contributor (a Builder) now sees and may edit it.
    assert edit_agent(store, CARL, BUILDER, org, bobs, {"mission": "c"})["mission"] == "c"


def test_removing_contributors(store, org, alice, bob, bobs):
    assert refused(store, org, bob, BUILDER, "remove_contributor", bobs, "bob") == "forbidden"
    with pytest.raises(NotFound) as err:
        committed(store, agent_people.remove_contributor, alice, OWNER, org, bobs, "carl")
    assert err.value.code == "contributor_not_found"
    with pytest.raises(Conflict) as err:
        committed(store, agent_people.remove_contributor, alice, OWNER, org, bobs, "bob")
    assert err.value.code == "last_contributor"
    assert stored(store, bobs)["contributors"] == ["bob"]

    committed(store, agent_people.add_contributor, alice, OWNER, org, bobs, "carl", BUILDER)
    answer = committed(store, agent_people.remove_contributor, alice, OWNER, org, bobs, "bob")
    assert answer == {"agent_id": bobs, "user_id": "bob"}
    assert stored(store, bobs)["contributors"] == ["carl"]
    removed = events(store)[-1]
    assert removed["type"] == "agent.contributor_removed"
    assert (removed["before"], removed["after"]) == ({"contributors": ["bob", "carl"]}, {"contributors": ["carl"]})
    with pytest.raises(NotFound):       # bob no longer contributes, is not assigned: cannot see it
        agents.get_agent(store, bob, BUILDER, org, bobs)


def test_contributor_not_found_on_agent_without_contributors(store, org, alice):
    agent = new_agent(store, org, alice)["id"]
    with pytest.raises(NotFound) as err:
        committed(store, agent_people.remove_contributor, alice, OWNER, org, agent, "alice")
    assert err.value.code == "contributor_not_found"


# ---- assignees -------------------------------------------------------------------------------------------
def test_assign_and_unassign(store, org, alice, bob):
    agent = new_agent(store, org, alice)["id"]
    with pytest.raises(NotFound) as err:
        committed(store, agent_people.assign, alice, OWNER, org, agent, "stranger", None)
    assert err.value.code == "member_not_found"
    contributor = new_agent(store, org, bob, BUILDER, name="Bob's")["id"]
    assert refused(store, org, bob, BUILDER, "assign_agent", contributor, "mira") == "forbidden"

    row, created = committed(store, agent_people.assign, alice, OWNER, org, agent, "mira", MEMBER)
    assert created is True and row["user_id"] == "mira" and row["added_by"] == "alice"
    again, created = committed(store, agent_people.assign, alice, OWNER, org, agent, "mira", MEMBER)
    assert created is False and again == row
    added = [e for e in events(store) if e["type"] == "agent.assignee_added"]
    assert len(added) == 1 and (added[0]["before"], added[0]["after"]) == ({"assignees": []}, {"assignees": ["mira"]})
    assert agents.get_agent(store, MIRA, MEMBER, org, agent)["permissions"] == ["use"]

    assert committed(store, agent_people.unassign, alice, OWNER, org, agent, "mira") == \
        {"agent_id": agent, "user_id": "mira"}
    removed = events(store)[-1]
    assert removed["type"] == "agent.assignee_removed"
    assert (removed["before"], removed["after"]) == ({"assignees": ["mira"]}, {"assignees": []})
    with pytest.raises(NotFound):
        agents.get_agent(store, MIRA, MEMBER, org, agent)
    with pytest.raises(NotFound) as err:
        committed(store, agent_people.unassign, alice, OWNER, org, agent, "mira")
    assert err.value.code == "assignee_not_found"


# ---- reactions to other services' events -----------------------------------------------------------------
# (services.orgs.reactions calls these inside its transaction; here each gets its own. That a
# redelivered event is not handled twice at all is tested in test_reactions.py.)
def apply_invitation_agents(store, event):
    with store.write() as session:
        return agent_people.apply_invitation_agents(session, event)


def forget_member_access(store, event, contributors_only=False):
    with store.write() as session:
        return agent_people.forget_member_access(session, event, contributors_only)


def accepted(org, agent_ids, user="u2", event_id="e1"):
    return {"event_id": event_id, "type": "invitation.accepted", "organization_id": org,
            "actor": {"id": user, "email": f"{user}@x"}, "after": {"user_id": user, "agent_ids": agent_ids}}


def test_invitation_agents_are_assigned_once(store, org, alice):
    a1, a2, gone = (new_agent(store, org, alice, name=n)["id"] for n in ("A1", "A2", "Gone"))
    committed(store, agents.delete_agent, alice, OWNER, org, gone)
    other = committed(store, organizations.create_collective, alice, "Other")["id"]
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
    committed(store, agent_people.assign, alice, OWNER, org, a1, "u2", MEMBER)
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
    other = committed(store, organizations.create_collective, alice, "Other")["id"]
    ids["foreign"] = new_agent(store, other, bob, BUILDER, name="foreign")["id"]
    committed(store, agent_people.add_contributor, alice, OWNER, org, ids["shared"], "carl", BUILDER)
    committed(store, agent_people.assign, alice, OWNER, org, ids["shared"], "bob", BUILDER)
    committed(store, agent_people.assign, alice, OWNER, org, ids["used"], "bob", BUILDER)
    committed(store, agents.delete_agent, alice, OWNER, org, ids["gone"])
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
