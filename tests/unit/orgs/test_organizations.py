import pytest
from sqlalchemy import select

from common import idempotency
from common.errors import Conflict, NotFound, ValidationFailed
from services.orgs import organizations
from services.orgs.models import IdempotentRequest, OutboxEvent


def events(store):
    with store.read() as session:
        return [(e.type, e.envelope) for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]


@pytest.mark.parametrize("name", [None, "", "   ", "\t\n"])
def test_missing_or_blank_name_is_required(name):
    with pytest.raises(ValidationFailed) as err:
        organizations.clean_name(name)
    assert (err.value.message, err.value.field, err.value.code) == \
        ("Organization name is required.", "name", "name_required")


def test_name_length_counts_after_trimming():
    assert organizations.clean_name("  " + "a" * 200 + "  ") == "a" * 200
    with pytest.raises(ValidationFailed) as err:
        organizations.clean_name("a" * 201)
    assert err.value.message == "Name must be 200 characters or fewer."


def test_name_must_be_a_string():
    with pytest.raises(ValidationFailed) as err:
        organizations.clean_name(42)
    assert err.value.code == "invalid_type"


def test_individual_organization_is_created_once_and_made_active(make_store, alice):
    store = make_store("orgs")
    first = organizations.ensure_individual(store, alice)
    again = organizations.ensure_individual(store, alice)
    assert first["id"] == again["id"] and first["type"] == "individual"
    assert organizations.stored_active_id(store, alice.id) == first["id"]
    assert [t for t, _ in events(store)] == ["organization.created"]


def test_create_records_the_change_and_its_event_together(make_store, alice):
    store = make_store("orgs")
    org = organizations.create_collective(store, alice, "  Clinic ")
    [(type_, envelope)] = events(store)
    assert type_ == "organization.created"
    assert envelope["after"] == {"name": "Clinic", "type": "collective"}
    assert envelope["actor"] == {"id": "alice", "email": "alice@example.com"}
    assert envelope["target"] == {"type": "organization", "id": org["id"]}


def test_bad_name_writes_nothing(make_store, alice):
    store = make_store("orgs")
    with pytest.raises(ValidationFailed):
        organizations.create_collective(store, alice, "x" * 201)
    assert events(store) == []


def test_idempotency_key_replays_the_first_answer(make_store, alice, bob):
    store = make_store("orgs")
    first = organizations.create_collective(store, alice, "Once", idempotency_key="k1")
    with store.read() as session:                                           # keys are per user
        assert idempotency.find_replay(session, IdempotentRequest, bob.id, "k1", "any") is None
    again = organizations.create_collective(store, alice, "Once", idempotency_key="k1")
    assert again == dict(first, idempotent_replayed=True)
    with pytest.raises(Conflict) as reused:                                 # the same key, another name
        organizations.create_collective(store, alice, "Twice", idempotency_key="k1")
    assert reused.value.code == "idempotency_key_reused"
    assert len(events(store)) == 1


def test_concurrent_duplicate_with_same_key_gets_the_first_answer(make_store, alice, monkeypatch):
    """A concurrent duplicate that slipped past the lookup (both uncommitted, on PostgreSQL) collides on
    the key and gets the first answer. Simulated by letting the second request's lookup miss."""
    from common import idempotency
    store = make_store("orgs")
    first = organizations.create_collective(store, alice, "Once", idempotency_key="k1")
    real, calls = idempotency.find_replay, []

    def lookup_that_misses_once(*args):
        calls.append(args)
        return None if len(calls) == 1 else real(*args)

    monkeypatch.setattr(idempotency, "find_replay", lookup_that_misses_once)
    again = organizations.create_collective(store, alice, "Once", idempotency_key="k1")
    assert again == dict(first, idempotent_replayed=True)
    assert len(calls) == 2 and len(events(store)) == 1


def test_rename_to_the_same_name_records_nothing(make_store, alice):
    store = make_store("orgs")
    org = organizations.create_collective(store, alice, "Same")
    organizations.rename(store, alice, org["id"], " Same ")
    organizations.rename(store, alice, org["id"], "Other")
    assert [t for t, _ in events(store)] == ["organization.created", "organization.renamed"]
    assert events(store)[1][1]["before"] == {"name": "Same"}


def test_delete_falls_back_active_organization_and_refuses_individual(make_store, alice):
    store = make_store("orgs")
    individual = organizations.ensure_individual(store, alice)
    org = organizations.create_collective(store, alice, "Temp")
    organizations.set_active(store, alice, org["id"])
    with pytest.raises(Conflict):
        organizations.delete(store, alice, individual["id"])
    result = organizations.delete(store, alice, org["id"])
    assert result["active_organization_reset_for"] == ["alice"]
    assert organizations.stored_active_id(store, alice.id) == individual["id"]
    with pytest.raises(NotFound):
        organizations.rename(store, alice, org["id"], "Back")


def test_active_organization_falls_back_when_membership_is_gone(make_store, alice):
    store = make_store("orgs")
    individual = organizations.ensure_individual(store, alice)
    org = organizations.create_collective(store, alice, "Left")
    organizations.set_active(store, alice, org["id"])
    assert organizations.active_organization_id(store, alice.id, {individual["id"], org["id"]}) == org["id"]
    assert organizations.active_organization_id(store, alice.id, {individual["id"]}) == individual["id"]
