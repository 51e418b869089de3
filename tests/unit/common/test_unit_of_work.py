"""The unit of work the pipeline runs around every command (common.commands, common.unit_of_work), on orgs'
migrated SQLite store: the method gets validated values and an open transaction; the pipeline commits the
change with its events, records the request as handled, replays or stores the Idempotency-Key's answer,
runs after-commit effects, and settles a unique-key race by running once more."""
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from common import idempotency
from common.auth import Identity
from common.commands import OPTIONAL, PERSON, command
from common.contracts.organizations import OrganizationNameInput
from common.db import Database
from common.errors import Conflict, ServiceUnavailable, ValidationFailed
from common.unit_of_work import after_commit
from services.orgs import organizations
from services.orgs.models import HandledRequest, IdempotentRequest, Organization, OutboxEvent

ALICE = Identity("alice", "alice@example.com", "Alice")


class Service:
    """A service with one command, as the orgs service declares its tables."""
    name = "fake"
    db = Database(handled_requests=HandledRequest, idempotent_requests=IdempotentRequest)

    def __init__(self, store, fail_once=None):
        self.db = store                 # the worker's view of the store (the class keeps the provider)
        self.auth = type("Auth", (), {"identity": ALICE})()
        self.ran, self.effects, self.fail_once = [], [], fail_once

    @command(PERSON, idempotency=OPTIONAL, input=OrganizationNameInput)
    def create(self, caller, session, name, idempotency_key=None):
        self.ran.append(name)
        org = organizations.create_collective(session, caller.identity, name)
        after_commit(session, lambda: self.effects.append(org["id"]))
        if self.fail_once is not None:
            failure, self.fail_once = self.fail_once, None
            raise failure
        return org


@pytest.fixture
def store(make_store):
    return make_store("orgs")


def count(store, model):
    with store.read() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_the_command_gets_validated_values_and_its_change_commits_with_its_event(store):
    service = Service(store)
    org = service.create("  Clinic ")
    assert service.ran == ["Clinic"] and org["name"] == "Clinic"      # trimmed by the declared contract
    assert (count(store, Organization), count(store, OutboxEvent)) == (1, 1)
    assert service.effects == [org["id"]]                              # after the commit


def test_bad_input_is_refused_before_the_command_runs_and_changes_nothing(store):
    service = Service(store)
    with pytest.raises(ValidationFailed) as refused:
        service.create("x" * 201)
    assert (refused.value.code, refused.value.field) == ("name_too_long", "name")
    assert service.ran == [] and count(store, Organization) == 0


def test_a_refusal_rolls_back_the_change_its_events_and_its_after_commit_effects(store):
    service = Service(store, fail_once=Conflict("no", code="refused"))
    with pytest.raises(Conflict):
        service.create("Clinic", "k1")
    assert (count(store, Organization), count(store, OutboxEvent), count(store, IdempotentRequest)) == (0, 0, 0)
    assert service.effects == []


def test_a_key_replays_the_first_answer_and_refuses_other_values(store):
    service = Service(store)
    first = service.create("Clinic", "k1")
    again = service.create(" Clinic", "k1")         # the same request once validated: a replay
    assert again == dict(first, **{idempotency.REPLAYED: True})
    assert service.ran == ["Clinic"] and service.effects == [first["id"]]
    with pytest.raises(Conflict) as reused:
        service.create("Other", "k1")
    assert reused.value.code == "idempotency_key_reused"
    assert count(store, Organization) == 1


def test_losing_a_unique_key_race_runs_once_more_and_replays_the_winner(store, monkeypatch):
    """Two requests with one key committing at once (PostgreSQL): the loser's commit fails on the key's
    row; run again, it finds the winner's answer. Simulated: the first lookup misses a stored answer."""
    service = Service(store)
    first = service.create("Clinic", "k1")
    real, lookups = idempotency.find_replay, []

    def misses_once(*args):
        lookups.append(args)
        return None if len(lookups) == 1 else real(*args)

    monkeypatch.setattr(idempotency, "find_replay", misses_once)
    assert service.create("Clinic", "k1") == dict(first, **{idempotency.REPLAYED: True})
    assert len(lookups) == 2 and count(store, Organization) == 1


def test_a_second_clash_is_not_retried_again(store):
    service = Service(store, fail_once=IntegrityError("insert", {}, Exception("unique")))
    assert service.create("Clinic")["name"] == "Clinic"             # once more, and it commits
    assert service.ran == ["Clinic", "Clinic"] and count(store, Organization) == 1


def test_a_request_delivered_again_after_its_change_committed_cannot_write(store):
    Service(store.for_request("request-1")).create("Clinic")
    with pytest.raises(ServiceUnavailable) as interrupted:
        Service(store.for_request("request-1")).create("Clinic")
    assert interrupted.value.code == "request_interrupted"
    assert (count(store, Organization), count(store, HandledRequest)) == (1, 1)
    Service(store.for_request("request-2")).create("Clinic")
    assert count(store, Organization) == 2


def test_a_request_whose_change_rolled_back_runs_when_delivered_again(store):
    with pytest.raises(Conflict):
        Service(store.for_request("request-1"), fail_once=Conflict("no", code="refused")).create("Clinic")
    assert count(store, HandledRequest) == 0
    Service(store.for_request("request-1")).create("Clinic")
    assert (count(store, Organization), count(store, HandledRequest)) == (1, 1)
