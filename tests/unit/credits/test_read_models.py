"""Credits' read models fed by the change events its queue delivers (services/credits/reactions.py):
the newer version wins, so a redelivered or late event changes nothing; removals are tombstones that
hold; an organization's deletion retires its memberships; the states are applied in the transaction of
the event's other effects."""
import pytest
from sqlalchemy import select

from common.event_types import (
    AGENT_ASSIGNEE_ADDED,
    AGENT_ASSIGNEE_REMOVED,
    AGENT_CREATED,
    AGENT_DELETED,
    AGENT_TRANSFERRED,
    BILLING_TRANSFER_ACCEPTED,
    CREDITS_SPENT,
    INVITATION_ACCEPTED,
    MEMBER_ADDED,
    MEMBER_LEFT,
    MEMBER_REMOVED,
    MEMBER_ROLES_CHANGED,
    ORGANIZATION_DELETED,
)
from common.events import CREDITS_QUEUE, change_event
from common.membership_facts import Memberships
from common.readmodels import agent_state, membership_state
from services.credits import budgets, reactions
from services.credits.models import READ_MODELS, AgentAccess, BudgetGroupMember, MembershipFact, ProcessedEvent
from tests.unit.credits import domain
from tests.unit.credits.facts import ADMIN_ACTOR, AGENT, ORG, OTHER_ORG, agent_event, deliver, membership_event


@pytest.fixture
def store(make_store):
    return make_store("credits")


def facts(store):
    """{(org, user): (roles, active, version)} of the membership read model."""
    with store.read() as session:
        return {(f.organization_id, f.user_id): (f.roles, f.active, f.version)
                for f in session.scalars(select(MembershipFact))}


def access(store, agent_id=AGENT):
    with store.read() as session:
        row = session.get(AgentAccess, agent_id)
        return None if row is None else (row.organization_id, row.contributors, row.assignees, row.active,
                                         row.version)


def members_view(store, user_id="bob"):
    """What credits' permission checks see (no owner to confirm with)."""
    return [(m["organization_id"], m["roles"]) for m in Memberships(store, READ_MODELS).memberships_of(user_id)]


def bob(version, roles=("member",), org=ORG, active=True):
    return membership_state(org, "bob", roles, version, active=active)


def test_the_queue_binds_every_event_that_carries_a_state_credits_keeps():
    bound = {b.routing_key for b in CREDITS_QUEUE.bindings}
    assert {MEMBER_ADDED, MEMBER_ROLES_CHANGED, MEMBER_REMOVED, MEMBER_LEFT, INVITATION_ACCEPTED,
            BILLING_TRANSFER_ACCEPTED, ORGANIZATION_DELETED, AGENT_CREATED, AGENT_DELETED, AGENT_TRANSFERRED,
            AGENT_ASSIGNEE_ADDED, AGENT_ASSIGNEE_REMOVED} <= bound


def test_the_newer_version_wins_whatever_order_the_events_arrive_in(store):
    added = membership_event(MEMBER_ADDED, bob(1), action="create")
    to_builder = membership_event(MEMBER_ROLES_CHANGED, bob(3, ["builder"]))
    to_billing = membership_event(MEMBER_ROLES_CHANGED, bob(2, ["billing"]))     # older, arrives last
    for event in (added, to_builder, to_billing):
        assert deliver(store, event) is True
    assert facts(store) == {(ORG, "bob"): (["builder"], True, 3)}
    assert members_view(store) == [(ORG, ["builder"])]


def test_a_redelivered_event_changes_nothing(store):
    roles = membership_event(MEMBER_ROLES_CHANGED, bob(5, ["builder"]))
    assert deliver(store, membership_event(MEMBER_ADDED, bob(4), action="create")) is True
    assert deliver(store, roles) is True
    assert deliver(store, membership_event(MEMBER_ROLES_CHANGED, bob(6, ["admin"]))) is True
    assert deliver(store, roles) is False            # redelivered after a newer change
    assert facts(store) == {(ORG, "bob"): (["admin"], True, 6)}


def test_a_removal_is_a_tombstone_that_a_late_addition_cannot_undo(store):
    assert deliver(store, membership_event(MEMBER_REMOVED, bob(8, active=False), action="delete")) is True
    assert deliver(store, membership_event(MEMBER_ADDED, bob(7), action="create")) is True   # late
    assert facts(store) == {(ORG, "bob"): (["member"], False, 8)}
    assert members_view(store) == []
    # Added again later: a newer version, never a reused one.
    assert deliver(store, membership_event(INVITATION_ACCEPTED, bob(9, ["builder"]), action="create")) is True
    assert members_view(store) == [(ORG, ["builder"])]


def test_a_billing_transfer_moves_billing_between_two_members_at_once(store):
    deliver(store, membership_event(MEMBER_ADDED, bob(1, ["owner", "billing"]), action="create"))
    carl = membership_state(ORG, "carl", ["member"], 2)
    deliver(store, membership_event(MEMBER_ADDED, carl, action="create"))
    event = change_event(BILLING_TRANSFER_ACCEPTED, "update", ORG, ADMIN_ACTOR, "member", "carl",
                         state={"memberships": [bob(3, ["owner"]), dict(carl, roles=["member", "billing"], version=4)]})
    assert deliver(store, event) is True
    assert facts(store) == {(ORG, "bob"): (["owner"], True, 3), (ORG, "carl"): (["member", "billing"], True, 4)}


def test_a_deleted_organization_retires_its_memberships_for_good(store):
    deliver(store, membership_event(MEMBER_ADDED, bob(1), action="create"))
    deliver(store, membership_event(MEMBER_ADDED, bob(2, org=OTHER_ORG), action="create"))
    deleted = change_event(ORGANIZATION_DELETED, "delete", ORG, ADMIN_ACTOR, "organization", ORG)
    assert deliver(store, deleted) is True
    assert members_view(store) == [(OTHER_ORG, ["member"])]
    assert deliver(store, deleted) is False
    # An event of the organization still on its way changes nothing.
    assert deliver(store, membership_event(MEMBER_ROLES_CHANGED, bob(3, ["admin"]))) is True
    assert members_view(store) == [(OTHER_ORG, ["member"])]


def test_agent_access_follows_the_agents_events(store):
    created = agent_state(AGENT, ORG, ["carl"], [], 1)
    assigned = dict(created, assignees=["bob"], version=2)
    unassigned = dict(created, version=3)
    moved = dict(created, organization_id=OTHER_ORG, version=4)
    deleted = dict(moved, active=False, version=5)
    deliver(store, agent_event(AGENT_CREATED, created, action="create"))
    deliver(store, agent_event(AGENT_ASSIGNEE_ADDED, assigned))
    assert access(store) == (ORG, ["carl"], ["bob"], True, 2)
    deliver(store, agent_event(AGENT_ASSIGNEE_REMOVED, unassigned))
    deliver(store, agent_event(AGENT_ASSIGNEE_ADDED, assigned))          # redelivered late: ignored
    assert access(store) == (ORG, ["carl"], [], True, 3)
    deliver(store, agent_event(AGENT_TRANSFERRED, moved))
    assert access(store) == (OTHER_ORG, ["carl"], [], True, 4)
    deliver(store, agent_event(AGENT_DELETED, deleted, action="delete"))
    deliver(store, agent_event(AGENT_CREATED, created, action="create"))  # out of order: the tombstone holds
    assert access(store) == (OTHER_ORG, ["carl"], [], False, 5)


def test_the_states_are_applied_in_the_transaction_of_the_events_other_effects(store, alice, monkeypatch):
    group = domain.create_group(store, alice, ORG, {"name": "Team"})["id"]
    domain.assign_member(store, alice, ORG, group, "bob")
    deliver(store, membership_event(MEMBER_ADDED, bob(1), action="create"))
    removed = membership_event(MEMBER_REMOVED, bob(2, active=False), action="delete")

    def crash(session, event):
        raise RuntimeError("database gone")
    monkeypatch.setattr(budgets, "forget_member", crash)
    with pytest.raises(RuntimeError):
        reactions.handle_change_event(store, removed)
    assert facts(store)[(ORG, "bob")] == (["member"], True, 1)        # rolled back with the rest
    monkeypatch.undo()
    assert deliver(store, removed) is True                             # the requeued delivery
    assert facts(store)[(ORG, "bob")] == (["member"], False, 2)
    with store.read() as session:
        assert session.get(BudgetGroupMember, (ORG, "bob")) is None


def test_an_event_without_state_is_handled_and_changes_no_read_model(store):
    event = change_event(CREDITS_SPENT, "create", ORG, ADMIN_ACTOR, "spend", "s-1")
    assert deliver(store, event) is True
    assert facts(store) == {} and access(store) is None
    with store.read() as session:
        assert session.get(ProcessedEvent, event["event_id"]).type == CREDITS_SPENT
