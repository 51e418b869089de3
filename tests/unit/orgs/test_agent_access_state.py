"""orgs as the owner of agents' access (common.readmodels): every change of an agent's access is an
event carrying its whole state with a version that only grows; snapshot_agents and agent_states serve
the same states to other services' read models."""
import pytest
from alembic import command
from sqlalchemy import text

from common.db import Store, get_engine
from common.errors import ValidationFailed
from common.events import change_event
from common.migrate import alembic_config, upgrade
from common.readmodels import agent_state
from services.orgs import agent_people, agent_states, agent_transfer, agents, organizations, reactions
from tests.unit.orgs.helpers import BUILDER, MEMBER, OWNER, committed, events, new_agent


def states(store, agent_id=None):
    """(event type, the agent state it carries) for every agent event in the outbox, oldest first."""
    found = []
    for event in events(store):
        carried = (event.get("state") or {}).get("agents")
        if agent_id is None or event["target"]["id"] == agent_id:
            found.append((event["type"], carried[0] if carried else None))
    return found


def last_state(store, agent_id):
    return [s for _, s in states(store, agent_id) if s is not None][-1]


def test_every_change_of_access_carries_the_state_with_a_growing_version(store, org, alice, bob):
    agent = new_agent(store, org, bob, BUILDER, name="Scribe")["id"]
    committed(store, agent_people.add_contributor, alice, OWNER, org, agent, "carl", BUILDER)
    committed(store, agent_people.assign, alice, OWNER, org, agent, "mira", MEMBER)
    committed(store, agent_people.unassign, alice, OWNER, org, agent, "mira")
    committed(store, agent_people.remove_contributor, alice, OWNER, org, agent, "carl")
    committed(store, agents.delete_agent, alice, OWNER, org, agent)
    assert states(store, agent) == [
        ("agent.created", agent_state(agent, org, ["bob"], [], 1)),
        ("agent.contributor_added", agent_state(agent, org, ["bob", "carl"], [], 2)),
        ("agent.assignee_added", agent_state(agent, org, ["bob", "carl"], ["mira"], 3)),
        ("agent.assignee_removed", agent_state(agent, org, ["bob", "carl"], [], 4)),
        ("agent.contributor_removed", agent_state(agent, org, ["bob"], [], 5)),
        ("agent.deleted", agent_state(agent, org, ["bob"], [], 6, active=False)),
    ]


def test_an_owner_created_agent_starts_without_people(store, org, alice):
    agent = new_agent(store, org, alice)["id"]
    assert states(store, agent) == [("agent.created", agent_state(agent, org, [], [], 1))]


def test_configuration_changes_and_repeated_places_change_no_version(store, org, alice):
    agent = new_agent(store, org, alice)["id"]
    committed(store, agent_people.assign, alice, OWNER, org, agent, "mira", MEMBER)
    committed(store, agents.update_agent, alice, OWNER, org, agent, {"mission": "Help"})
    committed(store, agent_people.assign, alice, OWNER, org, agent, "mira", MEMBER)     # already assigned: no event
    assert [(kind, s and s["version"]) for kind, s in states(store, agent)] == [
        ("agent.created", 1), ("agent.assignee_added", 2), ("agent.updated", None)]


def test_a_transfer_tells_both_organizations_the_same_new_state(store, org, alice, bob):
    dest = committed(store, organizations.create_collective, alice, "Destination")["id"]
    agent = new_agent(store, org, bob, BUILDER, name="Mover")["id"]
    committed(store, agent_people.assign, alice, OWNER, org, agent, "mira", MEMBER)
    committed(store, agent_people.assign, alice, OWNER, org, agent, "dora", MEMBER)
    committed(store, agent_transfer.transfer_agent, alice, OWNER, BUILDER, org, agent, dest, False,
                                  {"bob": ["builder"], "mira": ["member"]})
    moved = [(e["organization_id"], e["state"]) for e in events(store) if e["type"] == "agent.transferred"]
    expected = {"agents": [agent_state(agent, dest, ["alice", "bob"], ["mira"], 4)]}
    assert moved == [(org, expected), (dest, expected)]


def revoked(org, user_id, kind="member.left", after=None):
    return change_event(kind, "delete" if kind == "member.left" else "update", org,
                        {"id": user_id, "email": f"{user_id}@example.com"}, "member", user_id,
                        before={"roles": ["builder"]}, after=after)


def test_access_taken_by_a_membership_change_carries_the_state(store, org, alice, bob):
    first = new_agent(store, org, bob, BUILDER, name="First")["id"]
    second = new_agent(store, org, alice, name="Second")["id"]
    committed(store, agent_people.assign, alice, OWNER, org, second, bob.id, MEMBER)
    committed(store, agent_people.assign, alice, OWNER, org, second, "mira", MEMBER)
    reactions.handle_change_event(store, revoked(org, bob.id))
    assert states(store, first)[-1] == ("agent.access_revoked", agent_state(first, org, [], [], 2))
    assert states(store, second)[-1] == ("agent.access_revoked", agent_state(second, org, [], ["mira"], 4))


def test_a_builder_losing_the_role_keeps_assignments_in_the_state(store, org, alice, bob):
    agent = new_agent(store, org, bob, BUILDER, name="Scribe")["id"]
    committed(store, agent_people.assign, alice, OWNER, org, agent, bob.id, BUILDER)
    reactions.handle_change_event(store, revoked(org, bob.id, "member.roles_changed", {"roles": ["member"]}))
    assert last_state(store, agent) == agent_state(agent, org, [], [bob.id], 3)


def test_an_accepted_invitations_assignments_carry_the_state(store, org, alice):
    one, two = new_agent(store, org, alice, name="One")["id"], new_agent(store, org, alice, name="Two")["id"]
    accepted = change_event("invitation.accepted", "update", org, {"id": "nia", "email": "nia@example.com"},
                            "invitation", "inv-1", after={"status": "accepted", "user_id": "nia",
                                                          "roles": ["member"], "agent_ids": [one, two]})
    reactions.handle_change_event(store, accepted)
    for agent in (one, two):
        assert states(store, agent)[-1] == ("agent.assignee_added", agent_state(agent, org, [], ["nia"], 2))


# ---- snapshot_agents and agent_states ------------------------------------------------------------------
def test_the_snapshot_pages_every_agent_by_id_with_the_newest_states(store, org, alice):
    ids = [new_agent(store, org, alice, name=f"Agent {i}")["id"] for i in range(5)]
    committed(store, agent_people.assign, alice, OWNER, org, ids[0], "mira", MEMBER)
    committed(store, agents.delete_agent, alice, OWNER, org, ids[1])
    items, after, pages = [], None, 0
    while True:
        page = agent_states.snapshot(store, after=after, limit=2)
        items += page["items"]
        pages += 1
        after = page["next_after"]
        if after is None:
            break
    assert pages == 3 and [s["agent_id"] for s in items] == sorted(ids)
    assert items == [last_state(store, agent_id) for agent_id in sorted(ids)]
    assert next(s for s in items if s["agent_id"] == ids[1])["active"] is False
    assert agent_states.snapshot(store, limit=5)["next_after"] is None      # exactly one full page: no more


@pytest.mark.parametrize("after, limit", [(None, 0), (None, 1001), (None, True), (None, "5"), (7, 10)])
def test_the_snapshot_refuses_bad_pages(store, after, limit):
    with pytest.raises(ValidationFailed):
        agent_states.snapshot(store, after=after, limit=limit)


def test_agent_states_give_the_organizations_agents_only(store, org, alice):
    elsewhere = committed(store, organizations.create_collective, alice, "Elsewhere")["id"]
    mine, gone = new_agent(store, org, alice, name="Mine")["id"], new_agent(store, org, alice, name="Gone")["id"]
    theirs = new_agent(store, elsewhere, alice, name="Theirs")["id"]
    committed(store, agents.delete_agent, alice, OWNER, org, gone)
    found = agent_states.access_states(store, org, [mine, gone, theirs, "no-such-agent"])
    assert sorted(found, key=lambda s: s["agent_id"]) == sorted(
        [agent_state(mine, org, [], [], 1), agent_state(gone, org, [], [], 2, active=False)],
        key=lambda s: s["agent_id"])
    assert agent_states.access_states(store, org, []) == []


@pytest.mark.parametrize("organization_id, agent_ids", [
    ("o1", "a1"), ("o1", ["a"] * 501), ("o1", [None]), ("o1", ["x" * 65]), ("o1", [""]), (None, ["a1"])])
def test_agent_states_refuse_bad_lookups(store, organization_id, agent_ids):
    with pytest.raises(ValidationFailed):
        agent_states.access_states(store, organization_id, agent_ids)


def test_agents_from_before_versions_start_at_zero(tmp_path, alice):
    """Migration 0003 on a database with agents: they are served at version 0, their next change is 1."""
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    with get_engine(url).connect() as connection:
        config = alembic_config("orgs", url)
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.execute(text(
            "INSERT INTO agents (id, organization_id, name, code, mission, welcome_message, instructions, "
            "created_by, created_at, updated_at) VALUES ('old-agent', 'o1', 'Old', '', '', '', '', 'alice', "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        connection.commit()
    upgrade("orgs", url)
    store = Store(url)
    assert agent_states.snapshot(store)["items"] == [agent_state("old-agent", "o1", [], [], 0)]
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    with store.write() as session:      # into a live organization, so that it can be changed
        session.execute(text("UPDATE agents SET organization_id = :org WHERE id = 'old-agent'"), {"org": org})
    committed(store, agent_people.assign, alice, OWNER, org, "old-agent", "mira", MEMBER)
    assert last_state(store, "old-agent") == agent_state("old-agent", org, [], ["mira"], 1)
