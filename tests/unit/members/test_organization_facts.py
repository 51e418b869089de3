"""The members service's read models of orgs' facts (services/members/organization_facts.py): an
organization's name, type and liveness and an agent's organization and liveness, applied by version
through the one reaction rule, handed over with the founder, filled from orgs' snapshots; inviting and
the Billing holder's leave are decided from them, an unknown agent waited for, never asked of orgs."""
import uuid
from types import SimpleNamespace

import pytest

from common import readmodels
from common.errors import Conflict, NotFound, ValidationFailed
from common.event_types import AGENT_CREATED, ORGANIZATION_DELETED, ORGANIZATION_RENAMED
from common.events import change_event
from common.readmodels import AGENTS, ORGANIZATIONS, agent_state, organization_state
from services.members import memberships, organization_facts, reactions
from services.members.models import READ_MODELS
from services.members.service import MembersService
from services.orgs import agent_states, organization_states, organizations
from tests.unit.members.helpers import ORG, read, written
from tests.unit.orgs.helpers import committed, new_agent

CREATED = "2026-01-05T09:00:00Z"


def org_event(type_, state, action="update"):
    return change_event(type_, action, state["organization_id"], {"id": "dina"}, "organization",
                        state["organization_id"], state={ORGANIZATIONS: [state]})


def agent_event(state):
    return change_event(AGENT_CREATED, "create", state["organization_id"], {"id": "dina"}, "agent",
                        state["agent_id"], state={AGENTS: [state]})


def founded(store, who, type="collective"):
    """ORG founded by `who`: orgs hands its state to add_founder (as services/orgs/service.py does)."""
    written(store, organization_facts.remember_organization, ORG["id"], organization_state(
        ORG["id"], ORG["name"], type, CREATED, 1))
    written(store, memberships.add_founder, who, ORG["id"])


def test_the_profile_follows_the_newest_state_and_a_deletion_is_404(make_store, alice):
    store = make_store("members")
    founded(store, alice)
    assert read(store, organization_facts.organization_profile, ORG["id"]) == ORG
    renamed = organization_state(ORG["id"], "Sehat 2", "collective", CREATED, 2)
    assert reactions.handle_change_event(store, org_event(ORGANIZATION_RENAMED, renamed)) is True
    late = organization_state(ORG["id"], "Old name", "collective", CREATED, 1)
    reactions.handle_change_event(store, org_event(ORGANIZATION_RENAMED, late))       # older: nothing
    assert read(store, organization_facts.organization_profile, ORG["id"])["name"] == "Sehat 2"
    deleted = org_event(ORGANIZATION_DELETED, dict(renamed, active=False, version=3), action="delete")
    assert reactions.handle_change_event(store, deleted) is True
    assert reactions.handle_change_event(store, deleted) is False                    # redelivered
    for organization_id in (ORG["id"], "never-heard-of", None):
        with pytest.raises(NotFound) as err:
            read(store, organization_facts.organization_profile, organization_id)
        assert err.value.code == "organization_not_found"


def test_a_founders_organization_state_that_is_not_its_own_is_left_out(make_store):
    store = make_store("members")
    other = organization_state("org-2", "Other", "collective", CREATED, 1)
    assert written(store, organization_facts.remember_organization, ORG["id"], other) is False
    assert written(store, organization_facts.remember_organization, ORG["id"], None) is False
    assert written(store, organization_facts.remember_organization, ORG["id"], {"organization_id": ORG["id"]}) is False
    with pytest.raises(NotFound):
        read(store, organization_facts.organization_profile, ORG["id"])


class Clock:
    """A clock the waiting check moves by sleeping; `on_sleep` runs at each sleep (an event arriving)."""

    def __init__(self, on_sleep=lambda: None):
        self.now, self.sleeps, self.on_sleep = 0.0, 0, on_sleep

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.sleeps += 1
        self.on_sleep()


A_1, GONE, THEIRS, NEW = (str(uuid.UUID(int=n)) for n in (1, 2, 3, 4))


def test_agents_are_checked_in_the_read_model_and_an_unknown_one_waited_for(make_store):
    store = make_store("members")
    reactions.handle_change_event(store, agent_event(agent_state(A_1, ORG["id"], [], [], 1)))
    reactions.handle_change_event(store, agent_event(agent_state(GONE, ORG["id"], [], [], 2, active=False)))
    reactions.handle_change_event(store, agent_event(agent_state(THEIRS, "org-2", [], [], 1)))
    clock = Clock()
    assert organization_facts.check_agent_ids(store, ORG["id"], [A_1], clock, clock.sleep) == [A_1]
    assert clock.sleeps == 0                                            # known here: no wait
    with pytest.raises(ValidationFailed) as err:
        organization_facts.check_agent_ids(store, ORG["id"], [A_1, GONE, NEW, THEIRS], clock, clock.sleep)
    assert (err.value.code, err.value.field, err.value.details) == \
        ("unknown_agent", "agent_ids", {"unknown_agent_ids": [GONE, NEW, THEIRS]})
    assert clock.now >= organization_facts.NEW_AGENT_WAIT_SECONDS       # refused once the wait was over
    # An agent created a moment ago, whose event arrives during the wait, is accepted.
    arriving = Clock(lambda: reactions.handle_change_event(store, agent_event(agent_state(NEW, ORG["id"], [], [], 1))))
    assert organization_facts.check_agent_ids(store, ORG["id"], [A_1, NEW], arriving, arriving.sleep) == [A_1, NEW]
    assert arriving.sleeps == 1
    # An id that is no agent's shape is refused at once.
    never = Clock()
    with pytest.raises(ValidationFailed):
        organization_facts.check_agent_ids(store, ORG["id"], ["nope"], never, never.sleep)
    assert never.sleeps == 0


def test_organizations_and_agents_fill_from_orgs_snapshots(make_store, alice):
    orgs_store, store = make_store("orgs"), make_store("members")
    org = committed(orgs_store, organizations.create_collective, alice, "Clinic")["id"]
    agent = new_agent(orgs_store, org, alice)["id"]

    class OrgsSnapshots:
        def snapshot_organizations(self, after, limit):
            return organization_states.snapshot(orgs_store, after, limit)

        def snapshot_agents(self, after, limit):
            return agent_states.snapshot(orgs_store, after, limit)

    rpc = SimpleNamespace(orgs=OrgsSnapshots())
    assert readmodels.fill(store, READ_MODELS, ORGANIZATIONS, rpc) == 1
    assert readmodels.fill(store, READ_MODELS, AGENTS, rpc) == 1
    profile = read(store, organization_facts.organization_profile, org)
    assert profile == {"id": org, "name": "Clinic", "type": "collective"}
    assert organization_facts.check_agent_ids(store, org, [agent]) == [agent]         # no orgs to ask


def test_the_billing_holder_of_an_individual_organization_is_told_why_without_asking_orgs(make_store, alice):
    from nameko.testing.services import worker_factory

    from services.members.own_memberships import Memberships
    store = make_store("members")
    founded(store, alice, type="individual")
    service = worker_factory(MembersService, db=store)
    service.auth.identity = alice
    service.memberships = Memberships(store)
    with pytest.raises(Conflict) as err:
        service.remove_member(ORG["id"], alice.id)
    assert err.value.code == "individual_organization"
