"""services/members/memberships.py roles_of_members: other people's roles, for a member of the organization."""
import pytest

from common.auth import Identity
from common.errors import NotFound, ValidationFailed
from services.members import invitations, memberships, users
from services.members.models import MemberRole

ORG = {"id": "org-1", "name": "Clinic", "type": "collective"}


def person(name):
    return Identity(name, f"{name}@example.com", name.title())


@pytest.fixture
def store(make_store, alice):
    """alice founds org-1 (owner, billing); budi joins as builder and member; mira as member."""
    store = make_store("members")
    users.register_user(store, alice)
    memberships.add_founder(store, alice, ORG["id"])
    for name, roles in (("budi", ["member", "builder"]), ("mira", ["member"])):
        who = person(name)
        users.register_user(store, who)
        invitation, _ = invitations.invite(store, alice, ORG, who.email, roles)
        invitations.accept_invitation(store, who, invitation["id"])
    return store


def test_only_members_are_returned_with_sorted_roles(store, alice, bob):
    users.register_user(store, bob)
    memberships.add_founder(store, bob, "org-2")        # bob is a member elsewhere only
    found = memberships.roles_of_members(store, person("mira"), ORG["id"], ["alice", "budi", "bob", "nobody", "budi"])
    assert found == {"alice": ["owner", "billing"], "budi": ["builder", "member"]}
    assert memberships.roles_of_members(store, alice, ORG["id"], ["mira"]) == {"mira": ["member"]}
    assert memberships.roles_of_members(store, alice, ORG["id"], []) == {}
    with store.write() as session:      # a role row stored after the others still comes out in role order
        session.add(MemberRole(organization_id=ORG["id"], user_id="budi", role="owner"))
    assert memberships.roles_of_members(store, alice, ORG["id"], ["budi"]) == {"budi": ["owner", "builder", "member"]}


def test_caller_who_is_not_a_member_gets_not_found(store, bob):
    for organization_id in (ORG["id"], "org-unknown"):
        with pytest.raises(NotFound):
            memberships.roles_of_members(store, bob, organization_id, ["alice"])
    with pytest.raises(NotFound):          # even with nothing to look up
        memberships.roles_of_members(store, bob, ORG["id"], [])


@pytest.mark.parametrize("user_ids", [None, "alice", ("alice",), {"alice"}, ["alice", 5], [None],
                                      ["u"] * (memberships.MAX_ROLES_LOOKUP + 1)])
def test_user_ids_must_be_a_short_list_of_ids(store, alice, user_ids):
    with pytest.raises(ValidationFailed) as err:
        memberships.roles_of_members(store, alice, ORG["id"], user_ids)
    assert (err.value.code, err.value.field) == ("invalid_type", "user_ids")
