"""The orgs service's reactions to other services' change events: each event handled once."""
from sqlalchemy import select

from common.events import change_event
from services.orgs import agent_people, agents, organizations, reactions
from services.orgs.models import OutboxEvent
from tests.unit.orgs.helpers import committed

OWNER = ["owner", "billing"]


def event_types(store):
    with store.read() as session:
        return [e.type for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]


def accepted(org, user_id, agent_ids):
    return change_event("invitation.accepted", "update", org, {"id": user_id, "email": f"{user_id}@example.com"},
                        "invitation", "inv-1", before={"status": "pending"},
                        after={"status": "accepted", "user_id": user_id, "roles": ["member"], "agent_ids": agent_ids})


def test_a_redelivered_event_does_not_redo_what_was_undone_since(make_store, alice):
    store = make_store("orgs")
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    agent = committed(store, agents.create_agent, alice, OWNER, org, {"name": "Front desk"})["id"]
    event = accepted(org, "bob", [agent])

    assert reactions.handle_change_event(store, event) is True
    assert agents.get_agent(store, alice, OWNER, org, agent)["assignees"] == ["bob"]
    committed(store, agent_people.unassign, alice, OWNER, org, agent, "bob")         # an Admin takes it back on purpose
    assert reactions.handle_change_event(store, event) is False      # the broker delivers it again
    assert agents.get_agent(store, alice, OWNER, org, agent)["assignees"] == []
    assert event_types(store).count("agent.assignee_added") == 1


def test_leaving_resets_the_active_organization_and_access_in_one_go(make_store, alice, bob):
    store = make_store("orgs")
    committed(store, organizations.ensure_individual, bob)
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    committed(store, organizations.set_active, bob, org)
    agent = committed(store, agents.create_agent, bob, ["builder"], org, {"name": "Scribe"})["id"]
    left = change_event("member.left", "delete", org, bob.as_actor(), "member", bob.id, before={"roles": ["builder"]})

    assert reactions.handle_change_event(store, left) is True
    assert committed(store, organizations.stored_active_id, bob.id) != org
    assert agents.get_agent(store, alice, OWNER, org, agent)["contributors"] == []
    assert reactions.handle_change_event(store, left) is False


def test_a_role_change_keeping_builder_changes_nothing(make_store, alice, bob):
    store = make_store("orgs")
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    agent = committed(store, agents.create_agent, bob, ["builder"], org, {"name": "Scribe"})["id"]
    kept = change_event("member.roles_changed", "update", org, alice.as_actor(), "member", bob.id,
                        before={"roles": ["builder"]}, after={"roles": ["builder", "member"]})
    lost = change_event("member.roles_changed", "update", org, alice.as_actor(), "member", bob.id,
                        before={"roles": ["builder", "member"]}, after={"roles": ["member"]})
    reactions.handle_change_event(store, kept)
    assert agents.get_agent(store, alice, OWNER, org, agent)["contributors"] == [bob.id]
    reactions.handle_change_event(store, lost)
    assert agents.get_agent(store, alice, OWNER, org, agent)["contributors"] == []
