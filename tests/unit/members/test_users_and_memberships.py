import pytest
from sqlalchemy import select

from common.auth import Identity
from common.errors import Conflict, NotFound
from services.members import memberships, reactions, users
from services.members.models import OutboxEvent
from tests.unit.members.helpers import organization_deleted, written


def event_types(store):
    with store.read() as session:
        return [e.type for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]


def test_register_user_creates_then_updates_only_on_change(make_store, alice):
    store = make_store("members")
    assert written(store, users.register_user, alice)[1] is True
    assert written(store, users.register_user, alice)[1] is False
    written(store, users.register_user, Identity("alice", "Alice@Example.com", "Alice B"))
    assert event_types(store) == ["user.registered", "user.updated"]


def test_founder_holds_owner_and_billing_and_the_call_is_idempotent(make_store, alice, bob):
    store = make_store("members")
    first = written(store, memberships.add_founder, alice, "org-1")
    assert first["roles"] == ["owner", "billing"] and first["member_count"] == 1
    assert written(store, memberships.add_founder, alice, "org-1") == first
    with pytest.raises(Conflict):
        written(store, memberships.add_founder, bob, "org-1")     # no joining an existing organization this way
    assert event_types(store) == ["member.added"]


def test_membership_of_a_non_member_is_not_found(make_store, alice, bob):
    store = make_store("members")
    written(store, memberships.add_founder, alice, "org-1")
    with pytest.raises(NotFound):
        memberships.membership_of(store, "org-1", bob.id)
    assert [m["organization_id"] for m in memberships.memberships_of_user(store, alice.id)] == ["org-1"]


def test_a_deleted_organization_is_forgotten_once(make_store, alice, bob):
    store = make_store("members")
    written(store, memberships.add_founder, alice, "org-1")
    deleted = organization_deleted("org-1")
    assert reactions.handle_change_event(store, deleted) is True
    assert memberships.memberships_of_user(store, alice.id) == []
    written(store, memberships.add_founder, bob, "org-1")        # something the redelivery would delete if it ran again
    assert reactions.handle_change_event(store, deleted) is False
    assert [m["organization_id"] for m in memberships.memberships_of_user(store, bob.id)] == ["org-1"]
