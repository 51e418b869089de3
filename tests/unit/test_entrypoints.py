"""Entrypoints checked with Nameko's worker_factory: the members service is a mock, the database real."""
import pytest
from nameko.testing.services import worker_factory

from common.errors import Forbidden
from services.orgs import domain
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
    org = domain.create_collective(store, alice, "Before")
    service = orgs_worker(store, alice, roles, org["id"])
    with pytest.raises(Forbidden):
        service.rename_organization(org["id"], "After")
    with store.read() as session:
        assert domain.get_live(session, org["id"]).name == "Before"


@pytest.mark.parametrize("roles", [["owner"], ["admin"]])
def test_owner_or_admin_may_rename(make_store, alice, roles):
    store = make_store("orgs")
    org = domain.create_collective(store, alice, "Before")
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
