import pytest
from sqlalchemy import select

from common import idempotency
from common.contracts import load
from common.contracts.organizations import OrganizationNameInput
from common.errors import Conflict, NotFound, ValidationFailed
from services.orgs import organizations
from services.orgs.models import IdempotentRequest, OutboxEvent
from tests.unit.orgs.helpers import committed, keyed, orgs_worker


def clean_name(name):
    """The name as the entrypoints' declared contract loads it (common.contracts.organizations)."""
    return load(OrganizationNameInput, {"name": name})["name"]


def events(store):
    with store.read() as session:
        return [(e.type, e.envelope) for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]


@pytest.mark.parametrize("name", [None, "", "   ", "\t\n"])
def test_missing_or_blank_name_is_required(name):
    with pytest.raises(ValidationFailed) as err:
        clean_name(name)
    assert (err.value.message, err.value.field, err.value.code) == \
        ("Organization name is required.", "name", "name_required")


def test_name_length_counts_after_trimming():
    assert clean_name("  " + "a" * 200 + "  ") == "a" * 200
    with pytest.raises(ValidationFailed) as err:
        clean_name("a" * 201)
    assert err.value.message == "Name must be 200 characters or fewer."


def test_name_must_be_a_string():
    with pytest.raises(ValidationFailed) as err:
        clean_name(42)
    assert err.value.code == "invalid_type"


def test_individual_organization_is_created_once_and_made_active(make_store, alice):
    store = make_store("orgs")
    first = committed(store, organizations.ensure_individual, alice)
    again = committed(store, organizations.ensure_individual, alice)
    assert first["id"] == again["id"] and first["type"] == "individual"
    assert committed(store, organizations.stored_active_id, alice.id) == first["id"]
    assert [t for t, _ in events(store)] == ["organization.created"]


def test_create_records_the_change_and_its_event_together(make_store, alice):
    store = make_store("orgs")
    org = committed(store, organizations.create_collective, alice, clean_name("  Clinic "))
    [(type_, envelope)] = events(store)
    assert type_ == "organization.created"
    assert envelope["after"] == {"name": "Clinic", "type": "collective"}
    assert envelope["actor"] == {"id": "alice", "email": "alice@example.com"}
    assert envelope["target"] == {"type": "organization", "id": org["id"]}


def test_bad_name_writes_nothing(make_store, alice):
    store = make_store("orgs")
    with pytest.raises(ValidationFailed):           # the entrypoint's declared contract refuses it first
        orgs_worker(store, alice).create_organization("x" * 201)
    assert events(store) == []


def test_idempotency_key_replays_the_first_answer(make_store, alice, bob):
    store = make_store("orgs")
    first = keyed(store, alice, "k1", organizations.create_collective, "Once")
    with store.read() as session:                                           # keys are per user
        assert idempotency.find_replay(session, IdempotentRequest, bob.id, "k1", "any") is None
    again = keyed(store, alice, "k1", organizations.create_collective, "Once")
    assert again == dict(first, idempotent_replayed=True)
    with pytest.raises(Conflict) as reused:                                 # the same key, another name
        keyed(store, alice, "k1", organizations.create_collective, "Twice")
    assert reused.value.code == "idempotency_key_reused"
    assert len(events(store)) == 1


def test_concurrent_duplicate_with_same_key_gets_the_first_answer(make_store, alice, monkeypatch):
    """A concurrent duplicate that slipped past the lookup (both uncommitted, on PostgreSQL) collides on
    the key and gets the first answer. Simulated by letting the second request's lookup miss."""
    store = make_store("orgs")
    first = keyed(store, alice, "k1", organizations.create_collective, "Once")
    real, calls = idempotency.find_replay, []

    def lookup_that_misses_once(*args):
        calls.append(args)
        return None if len(calls) == 1 else real(*args)

    monkeypatch.setattr(idempotency, "find_replay", lookup_that_misses_once)
    again = keyed(store, alice, "k1", organizations.create_collective, "Once")
    assert again == dict(first, idempotent_replayed=True)
    assert len(calls) == 2 and len(events(store)) == 1


def test_rename_to_the_same_name_records_nothing(make_store, alice):
    store = make_store("orgs")
    org = committed(store, organizations.create_collective, alice, "Same")
    committed(store, organizations.rename, alice, org["id"], clean_name(" Same "))
    committed(store, organizations.rename, alice, org["id"], "Other")
    assert [t for t, _ in events(store)] == ["organization.created", "organization.renamed"]
    assert events(store)[1][1]["before"] == {"name": "Same"}


def test_delete_falls_back_active_organization_and_refuses_individual(make_store, alice):
    store = make_store("orgs")
    individual = committed(store, organizations.ensure_individual, alice)
    org = committed(store, organizations.create_collective, alice, "Temp")
    committed(store, organizations.set_active, alice, org["id"])
    with pytest.raises(Conflict):
        committed(store, organizations.delete, alice, individual["id"])
    result = committed(store, organizations.delete, alice, org["id"])
    assert result["active_organization_reset_for"] == ["alice"]
    assert committed(store, organizations.stored_active_id, alice.id) == individual["id"]
    with pytest.raises(NotFound):
        committed(store, organizations.rename, alice, org["id"], "Back")


def test_active_organization_falls_back_when_membership_is_gone(make_store, alice):
    store = make_store("orgs")
    individual = committed(store, organizations.ensure_individual, alice)
    org = committed(store, organizations.create_collective, alice, "Left")
    committed(store, organizations.set_active, alice, org["id"])
    assert committed(store, organizations.active_organization_id, alice.id, {individual["id"], org["id"]}) == org["id"]
    assert committed(store, organizations.active_organization_id, alice.id, {individual["id"]}) == individual["id"]
