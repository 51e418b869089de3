"""Entrypoints checked with Nameko's worker_factory: the database is real, membership facts come from
orgs' read model, and the members service is a mock that is asked only for its commands and to confirm
a refusal (common.readmodels), never to decide what the read model already knows."""
from types import SimpleNamespace

import pytest
from nameko.testing.services import worker_factory

from common.auth import USER_ID_KEY, AuthContext
from common.errors import Forbidden, NotFound, ServiceUnavailable, Unauthenticated
from common.membership_facts import MembershipFacts, Memberships
from common.readmodels import agent_state, apply_membership, membership_state
from common.timeutil import utcnow
from services.orgs import agents, organizations
from services.orgs.models import READ_MODELS, AgentAssignee
from services.orgs.service import OrgsService
from tests.unit.orgs.helpers import Reply, committed, member, orgs_worker

# What orgs used to ask members to decide with; none of it may be called any more.
OLD_READS = ("my_membership", "my_memberships", "member_roles")


def asked_members(service, methods=OLD_READS + ("membership_states",)):
    return [m for m in methods if getattr(service.members, m).call_async.called]


@pytest.fixture
def store(make_store):
    return make_store("orgs")


@pytest.mark.parametrize("roles", [["member"], ["builder"], ["billing"], ["member", "billing"]])
def test_rename_is_refused_without_owner_or_admin(store, alice, roles):
    org = committed(store, organizations.create_collective, alice, "Before")
    member(store, org["id"], alice.id, roles)
    service = orgs_worker(store, alice, [membership_state(org["id"], alice.id, roles, 1)])
    with pytest.raises(Forbidden):
        service.rename_organization(org["id"], "After")
    with store.read() as session:
        assert organizations.get_live(session, org["id"]).name == "Before"
    assert asked_members(service) == ["membership_states"]      # the refusal was confirmed first


@pytest.mark.parametrize("roles", [["owner"], ["admin"]])
def test_owner_or_admin_may_rename_without_asking_members(store, alice, roles):
    org = committed(store, organizations.create_collective, alice, "Before")
    member(store, org["id"], alice.id, roles)
    member(store, org["id"], "bob", ["member"])
    service = orgs_worker(store, alice)
    card = service.rename_organization(org["id"], " After ")
    assert (card["name"], card["roles"], card["member_count"]) == ("After", roles, 2)
    assert asked_members(service) == []


def test_a_bad_name_is_refused_and_nothing_changes(store, alice):
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    member(store, org, alice.id, ["owner"])
    service = orgs_worker(store, alice)
    with pytest.raises(Exception) as err:
        service.rename_organization(org, "")
    assert err.value.code == "name_required"
    assert service.get_organization(org)["name"] == "Clinic"
    assert asked_members(service) == []


def test_a_member_added_a_moment_ago_is_confirmed_with_members_not_refused(store, alice):
    """The read model has not heard of the membership yet: members confirms it, and its state is kept."""
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    service = orgs_worker(store, alice, [membership_state(org, alice.id, ["owner"], 3)])
    assert service.get_organization(org)["roles"] == ["owner"]
    service.members.membership_states.call_async.reset_mock()
    assert service.get_organization(org)["roles"] == ["owner"]             # now known locally
    assert asked_members(service) == []


def test_agent_routes_decide_from_the_read_model(store, alice, bob):
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    member(store, org, alice.id, ["owner"])
    member(store, org, bob.id, ["builder"])
    service = orgs_worker(store, alice)
    agent = service.create_agent(org, {"name": "Scribe"})["id"]
    assert service.add_contributor(org, agent, bob.id)["created"] is True
    assert service.assign_agent(org, agent, bob.id)["created"] is True
    assert [a["name"] for a in service.list_agents(org)["items"]] == ["Scribe"]
    assert asked_members(service) == []


def test_a_person_who_is_no_member_is_confirmed_then_refused(store, alice):
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    member(store, org, alice.id, ["owner"])
    service = orgs_worker(store, alice)
    agent = service.create_agent(org, {"name": "Scribe"})["id"]
    with pytest.raises(NotFound) as err:
        service.assign_agent(org, agent, "stranger")
    assert err.value.code == "member_not_found"
    service.members.membership_states.call_async.assert_called_once_with(org, ["stranger"])


def test_me_and_the_organization_list_come_from_the_read_model(store, alice):
    individual = committed(store, organizations.ensure_individual, alice)["id"]
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    member(store, individual, alice.id, ["owner", "billing"])
    member(store, org, alice.id, ["admin"])
    service = orgs_worker(store, alice)
    assert [c["id"] for c in service.list_organizations()["items"]] == [individual, org]
    me = service.get_me()
    assert me["active_organization_id"] == individual
    assert [m["organization_id"] for m in me["memberships"]] == [individual, org]
    assert asked_members(service) == []


def test_sign_in_lists_the_individual_organization_at_once(store, alice):
    """members' add_founder answers with the new membership's state: applied before get_me reads."""
    service = orgs_worker(store, alice)

    def add_founder(org_id, organization):
        assert (organization["organization_id"], organization["type"], organization["version"]) == \
            (org_id, "individual", 1)                   # members is told the new organization's state
        membership = {"organization_id": org_id, "user_id": alice.id, "roles": ["owner", "billing"],
                      "member_count": 1}
        return Reply(dict(membership, state=membership_state(org_id, alice.id, ["owner", "billing"], 1)))
    service.members.add_founder.call_async.side_effect = add_founder
    me = service.sign_in()
    assert [m["roles"] for m in me["memberships"]] == [["owner", "billing"]]
    assert me["active_organization_id"] == me["memberships"][0]["organization_id"]
    assert asked_members(service, OLD_READS) == []


def test_an_add_founder_answer_without_state_is_tolerated(store, alice):
    service = orgs_worker(store, alice)
    service.members.add_founder.call_async.side_effect = lambda org_id, organization: Reply(
        {"organization_id": org_id, "user_id": alice.id, "roles": ["owner", "billing"], "member_count": 1})
    card = service.create_organization("Clinic")
    assert (card["name"], card["roles"]) == ("Clinic", ["owner", "billing"])
    assert service.list_organizations()["items"] == []          # listed once member.added arrives


def test_a_new_organization_is_listed_right_away(store, alice):
    service = orgs_worker(store, alice)
    service.members.add_founder.call_async.side_effect = lambda org_id, organization: Reply(
        {"organization_id": org_id, "user_id": alice.id, "roles": ["owner", "billing"], "member_count": 1,
         "state": membership_state(org_id, alice.id, ["owner", "billing"], 1)})
    card = service.create_organization("Clinic")
    assert [c["id"] for c in service.list_organizations()["items"]] == [card["id"]]


def test_memberships_of_a_deleted_organization_answer_404_as_before(store, alice, bob):
    """Members forgets them a moment after the deletion; orgs' read model keeps them, but they count for
    nothing from the moment orgs deleted the organization: 404 everywhere, not 403."""
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    member(store, org, alice.id, ["owner"])
    member(store, org, bob.id, ["member"])
    committed(store, organizations.delete, alice, org)
    still_there = [membership_state(org, bob.id, ["member"], 1)]      # members has not heard of it yet
    service = orgs_worker(store, bob, still_there)
    for attempt in (lambda: service.rename_organization(org, "New"), lambda: service.delete_organization(org),
                    lambda: service.create_agent(org, {"name": "X"}), lambda: service.get_organization(org),
                    lambda: service.set_active_organization(org), lambda: service.list_agents(org)):
        with pytest.raises(NotFound) as err:
            attempt()
        assert err.value.code == "organization_not_found"
    assert service.list_organizations()["items"] == [] and service.get_me()["memberships"] == []


def test_the_dependency_gives_live_memberships_confirmed_with_the_workers_members_proxy(store, alice):
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    provider = MembershipFacts(READ_MODELS, owner="members")
    provider.store = store                      # what setup() opens from the service's database URL
    worker = orgs_worker(store, alice, [membership_state(org, alice.id, ["admin"], 2)])
    facts = provider.get_dependency(SimpleNamespace(service=worker))
    assert isinstance(facts, Memberships)
    assert facts.membership(org, alice.id)["roles"] == ["admin"]
    worker.members.membership_states.call_async.assert_called_once_with(org, [alice.id])


def test_ping_is_degraded_until_the_read_model_is_filled(store, alice):
    service = orgs_worker(store, alice)
    service.fill.check.side_effect = ServiceUnavailable("filling", code="service_unavailable")
    with pytest.raises(ServiceUnavailable):
        service.ping()
    service.fill.check.side_effect = None
    assert service.ping() == "pong"


def test_orgs_drops_a_message_that_is_not_a_change_event(store):
    """Requeueing it could never help (it would loop forever): it is logged and acknowledged."""
    service = worker_factory(OrgsService, db=store)
    for message in ({"type": "member.left"}, {"event_id": "not-a-uuid", "type": "member.left"}, "text", None):
        assert service.on_change_event(message) is None


def test_transfer_to_an_organization_the_caller_is_not_in_is_destination_not_found(store, alice):
    """The caller is no member of the destination (members confirms): they hear destination_not_found
    (naming the destination field), not a 404 about the source."""
    org = committed(store, organizations.create_collective, alice, "Source")["id"]
    member(store, org, alice.id, ["owner"])
    service = orgs_worker(store, alice)
    agent = service.create_agent(org, {"name": "Mover"})["id"]
    with pytest.raises(NotFound) as err:
        service.transfer_agent(org, agent, "elsewhere", True)
    assert (err.value.code, err.value.field) == ("destination_not_found", "destination_organization_id")
    assert asked_members(service, OLD_READS) == []


def test_transfer_reads_the_roles_of_many_people_locally(store, alice):
    """An agent assigned to more people than members would answer for at once: every one is known in
    the read model, and nobody is asked."""
    org = committed(store, organizations.create_collective, alice, "Source")["id"]
    destination = committed(store, organizations.create_collective, alice, "Destination")["id"]
    member(store, org, alice.id, ["owner"])
    member(store, destination, alice.id, ["owner"])
    service = orgs_worker(store, alice)
    agent = service.create_agent(org, {"name": "Popular"})["id"]
    people = [f"user-{i:04d}" for i in range(1200)]
    with store.write() as session:   # assigned and made members in bulk: 1,200 audited changes would be slow
        session.add_all(AgentAssignee(agent_id=agent, user_id=u, added_by=alice.id, added_at=utcnow()) for u in people)
        for user_id in people:
            apply_membership(session, READ_MODELS, membership_state(destination, user_id, ["member"], 1))
    report = service.transfer_agent(org, agent, destination, True)
    assert {a["outcome"] for a in report["assignees"]} == {"will retain access"}
    assert len(report["assignees"]) == 1200
    assert asked_members(service) == []


# ---- agents' access for other services' read models ---------------------------------------------------
def signed_in_as(user_id):
    """The real Auth dependency's view of a caller (None: no identity at all)."""
    return AuthContext(SimpleNamespace(data={USER_ID_KEY: user_id} if user_id else {}))


def test_snapshot_agents_answers_only_the_system(store, alice):
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    agent = committed(store, agents.create_agent, alice, ["owner"], org, {"name": "Scribe"})["id"]
    with pytest.raises(Forbidden) as err:
        worker_factory(OrgsService, db=store, auth=signed_in_as("alice")).snapshot_agents()
    assert err.value.code == "system_only"
    with pytest.raises(Forbidden):
        worker_factory(OrgsService, db=store, auth=signed_in_as(None)).snapshot_agents()
    system = worker_factory(OrgsService, db=store, auth=signed_in_as("system"))
    assert system.snapshot_agents(after=None, limit=10) == {
        "items": [agent_state(agent, org, [], [], 1)], "next_after": None}


def test_agent_states_answer_any_signed_in_caller(store, alice):
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    agent = committed(store, agents.create_agent, alice, ["owner"], org, {"name": "Scribe"})["id"]
    for caller in ("bob", "system"):
        service = worker_factory(OrgsService, db=store, auth=signed_in_as(caller))
        assert service.agent_states(org, [agent]) == [agent_state(agent, org, [], [], 1)]
    with pytest.raises(Unauthenticated):
        worker_factory(OrgsService, db=store, auth=signed_in_as(None)).agent_states(org, [agent])
