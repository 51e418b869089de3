import pytest
from sqlalchemy import select

from common.auth import Identity
from common.errors import Conflict, NotFound
from services.members import memberships, reactions, users
from services.members.models import OutboxEvent


def event_types(store):
    with store.read() as session:
        return [e.type for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]


def test_register_user_creates_then_updates_only_on_change(make_store, alice):
    store = make_store("members")
    assert users.register_user(store, alice)[1] is True
    assert users.register_user(store, alice)[1] is False
    users.register_user(store, Identity("alice", "Alice@Example.com", "Alice B"))
    assert event_types(store) == ["user.registered", "user.updated"]


def test_founder_holds_owner_and_billing_and_the_call_is_idempotent(make_store, alice, bob):
    store = make_store("members")
    first = memberships.add_founder(store, alice, "org-1")
    assert first["roles"] == ["owner", "billing"] and first["member_count"] == 1
    assert memberships.add_founder(store, alice, "org-1") == first
    with pytest.raises(Conflict):
        memberships.add_founder(store, bob, "org-1")     # no joining an existing organization this way
    assert event_types(store) == ["member.added"]


def test_membership_of_a_non_member_is_not_found(make_store, alice, bob):
    store = make_store("members")
    memberships.add_founder(store, alice, "org-1")
    with pytest.raises(NotFound):
        memberships.membership_of(store, "org-1", bob.id)
    assert [m["organization_id"] for m in memberships.memberships_of_user(store, alice.id)] == ["org-1"]


def test_forgetting_a_deleted_organization_is_idempotent(make_store, alice):
    store = make_store("members")
    memberships.add_founder(store, alice, "org-1")
    assert reactions.forget_organization(store, "org-1") == 1
    assert reactions.forget_organization(store, "org-1") == 0
    assert memberships.memberships_of_user(store, alice.id) == []
