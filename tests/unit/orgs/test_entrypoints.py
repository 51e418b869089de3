"""Entrypoints checked with Nameko's worker_factory: the members service is a mock, the database real."""
import pytest
from nameko.testing.services import worker_factory

from common.errors import Forbidden, NotFound
from common.timeutil import utcnow
from services.orgs import organizations
from services.orgs.models import AgentAssignee
from services.orgs.service import OrgsService


def orgs_worker(store, identity, roles, org_id):
    service = worker_factory(OrgsService, db=store)
    service.auth.require.return_value = identity
    membership = {"organization_id": org_id, "user_id": identity.id, "roles": roles, "member_count": 2}
    service.members.my_membership.call_async.return_value.result.return_value = membership
    return service


@pytest.mark.parametrize("roles", [["member"], ["builder"], ["billing"], ["member", "billing"]])
def test_rename_is_refused_without_owner_or_admin(make_store, alice, roles):
    store = make_store("orgs")
    org = organizations.create_collective(store, alice, "Before")
    service = orgs_worker(store, alice, roles, org["id"])
    with pytest.raises(Forbidden):
        service.rename_organization(org["id"], "After")
    with store.read() as session:
        assert organizations.get_live(session, org["id"]).name == "Before"


@pytest.mark.parametrize("roles", [["owner"], ["admin"]])
def test_owner_or_admin_may_rename(make_store, alice, roles):
    store = make_store("orgs")
    org = organizations.create_collective(store, alice, "Before")
    service = orgs_worker(store, alice, roles, org["id"])
    card = service.rename_organization(org["id"], " After ")
    assert card["name"] == "After" and card["roles"] == roles


def test_bad_name_is_refused_before_asking_members(make_store, alice):
    store = make_store("orgs")
    service = orgs_worker(store, alice, ["owner"], "whatever")
    with pytest.raises(Exception) as err:
        service.rename_organization("whatever", "")
    assert err.value.code == "name_required"
    service.members.my_membership.call_async.assert_not_called()


def test_orgs_drops_a_message_that_is_not_a_change_event(make_store, alice):
    """Requeueing it could never help (it would loop forever): it is logged and acknowledged."""
    store = make_store("orgs")
    service = worker_factory(OrgsService, db=store)
    for message in ({"type": "member.left"}, {"event_id": "not-a-uuid", "type": "member.left"}, "text", None):
        assert service.on_change_event(message) is None


def test_transfer_to_an_organization_the_caller_is_not_in_is_destination_not_found(make_store, alice):
    """The members service answers organization_not_found for the destination; the caller hears
    destination_not_found (naming the destination field), not a 404 about the source."""
    store = make_store("orgs")
    org = organizations.create_collective(store, alice, "Source")["id"]
    service = orgs_worker(store, alice, ["owner"], org)
    agent = service.create_agent(org, {"name": "Mover"})["id"]
    not_found = NotFound("Organization not found.", code="organization_not_found")
    own = {"organization_id": org, "user_id": alice.id, "roles": ["owner"], "member_count": 1}
    service.members.my_membership.call_async.return_value.result.side_effect = [own, not_found]
    with pytest.raises(NotFound) as err:
        service.transfer_agent(org, agent, "elsewhere", True)
    assert (err.value.code, err.value.field) == ("destination_not_found", "destination_organization_id")


def test_transfer_asks_members_about_many_people_in_batches(make_store, alice):
    """members.member_roles answers for at most 500 user ids (MAX_ROLES_LOOKUP); an agent assigned to
    more people is asked about in batches, and every answer counts."""
    from common.authz import MEMBER_ROLES_BATCH
    from services.members.memberships import MAX_ROLES_LOOKUP
    assert MEMBER_ROLES_BATCH <= MAX_ROLES_LOOKUP
    store = make_store("orgs")
    org = organizations.create_collective(store, alice, "Source")["id"]
    destination = organizations.create_collective(store, alice, "Destination")["id"]
    service = orgs_worker(store, alice, ["owner"], org)
    agent = service.create_agent(org, {"name": "Popular"})["id"]
    people = [f"user-{i:04d}" for i in range(1200)]
    with store.write() as session:   # assigned in bulk: 1,200 audited assignments would be slow here
        session.add_all(AgentAssignee(agent_id=agent, user_id=u, added_by=alice.id, added_at=utcnow()) for u in people)
    batches = []

    def member_roles(org_id, user_ids):
        batches.append(len(user_ids))
        return {u: ["member"] for u in user_ids}
    service.members.member_roles.call_async.side_effect = \
        lambda org_id, user_ids: type("Reply", (), {"result": lambda self: member_roles(org_id, user_ids)})()
    report = service.transfer_agent(org, agent, destination, True)
    assert batches == [500, 500, 200]
    assert {a["outcome"] for a in report["assignees"]} == {"will retain access"}
    assert len(report["assignees"]) == 1200
