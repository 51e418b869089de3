"""The audit service's read model of memberships (common.readmodels): fed by the events the trail stores,
in the same transaction as each entry (reactions.py), and what the trails' permission checks are
decided on (service.py), with members asked only to confirm a refusal. Migrated SQLite store; the
members service is a mock."""
import logging

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from common import readmodels
from common.errors import Forbidden, NotFound, ServiceUnavailable, ValidationFailed
from common.event_types import MEMBER_ADDED, MEMBER_REMOVED, MEMBER_ROLES_CHANGED, ORGANIZATION_DELETED
from common.events import change_event, parse_change_event
from common.membership_facts import Memberships
from common.readmodels import membership_state
from services.audit import reactions, trail
from services.audit.models import READ_MODELS, AuditEntry, MembershipFact
from services.audit.service import AuditService

ORG = "o1"
OWNER = {"id": "carol", "email": "carol@example.com"}


def membership_event(type, user_id, roles, version, active=True, org=ORG):
    action = {MEMBER_ADDED: "create", MEMBER_REMOVED: "delete"}.get(type, "update")
    return change_event(type, action, org, OWNER, "member", user_id,
                        after={"roles": roles} if active else {},
                        state={"memberships": [membership_state(org, user_id, roles, version, active=active)]})


def put(store, message):
    """What the service does with a consumed change event: check it, then react."""
    return reactions.handle_change_event(store, parse_change_event(message))


def fact(store, user_id, org=ORG):
    with store.read() as session:
        row = session.get(MembershipFact, (org, user_id))
        return None if row is None else (sorted(row.roles), row.active, row.version)


def entry_count(store):
    with store.read() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry))


def audit_worker(store, identity, confirmed=()):
    """The service as Nameko runs it, its read model real; members.membership_states (the confirm of a
    refusal) answers `confirmed`."""
    service = worker_factory(AuditService, db=store)
    service.auth.identity = identity
    service.memberships = Memberships(store, READ_MODELS, owner=lambda: service.members)
    service.members.membership_states.call_async.return_value.result.return_value = list(confirmed)
    return service


@pytest.fixture
def store(make_store):
    return make_store("audit")


# ---- permission checks on the read model ---------------------------------------------------------------
@pytest.mark.parametrize("roles", [["owner"], ["admin"], ["admin", "billing"]])
def test_the_trails_answer_from_the_read_model_without_asking_members(store, alice, roles):
    put(store, membership_event(MEMBER_ADDED, "alice", roles, 1))
    service = audit_worker(store, alice)
    [entry] = service.list_entries(ORG)["items"]
    assert entry["type"] == MEMBER_ADDED
    with pytest.raises(NotFound) as err:            # allowed; the agent simply has no trail here
        service.list_agent_entries(ORG, "a1")
    assert err.value.code == "agent_not_found"
    assert service.members.mock_calls == []


def test_a_non_member_is_refused_404_once_members_confirms_it(store, bob):
    put(store, membership_event(MEMBER_ADDED, "alice", ["owner"], 1))
    service = audit_worker(store, bob, confirmed=[])
    for read in (lambda: service.list_entries(ORG), lambda: service.list_agent_entries(ORG, "a1")):
        with pytest.raises(NotFound) as err:
            read()
        assert err.value.code == "organization_not_found"
    service.members.membership_states.call_async.assert_called_with(ORG, ["bob"])


def test_the_filters_are_the_declared_input_checked_after_the_permission(store, alice, bob):
    """An empty filter (a query string's) is none; a bad one is a 422 naming it, to a member allowed to
    read the trail only: a stranger is refused first."""
    put(store, membership_event(MEMBER_ADDED, "alice", ["owner"], 1))
    service = audit_worker(store, alice)
    assert len(service.list_entries(ORG, {"since": "", "action": None, "entity_type": "member"})["items"]) == 1
    assert service.list_entries(ORG, {"entity_type": "agent"})["items"] == []
    for read in (service.list_entries, lambda org, filters: service.list_agent_entries(org, "a1", filters)):
        with pytest.raises(ValidationFailed) as err:
            read(ORG, {"since": "yesterday"})
        assert err.value.field == "since"
    with pytest.raises(NotFound):
        audit_worker(store, bob, confirmed=[]).list_entries(ORG, {"since": "yesterday"})


def test_a_member_added_a_moment_ago_is_not_refused(store, bob):
    """The event has not arrived yet; the confirm brings the membership, which is kept."""
    service = audit_worker(store, bob, confirmed=[membership_state(ORG, "bob", ["admin"], 1)])
    assert service.list_entries(ORG)["items"] == []
    assert fact(store, "bob") == (["admin"], True, 1)


@pytest.mark.parametrize("roles", [["owner"], ["admin"]])
def test_an_owner_or_admin_demoted_by_an_applied_roles_changed_is_refused_403(store, alice, roles):
    put(store, membership_event(MEMBER_ADDED, "alice", roles, 1))
    put(store, membership_event(MEMBER_ROLES_CHANGED, "alice", ["member"], 2))
    service = audit_worker(store, alice, confirmed=[membership_state(ORG, "alice", ["member"], 2)])
    for read in (lambda: service.list_entries(ORG), lambda: service.list_agent_entries(ORG, "a1")):
        with pytest.raises(Forbidden) as err:
            read()
        assert err.value.code == "forbidden"


def test_a_removed_member_and_a_deleted_organization_count_for_nothing(store, alice, bob):
    put(store, membership_event(MEMBER_ADDED, "alice", ["owner"], 1))
    put(store, membership_event(MEMBER_ADDED, "bob", ["admin"], 1))
    put(store, membership_event(MEMBER_REMOVED, "bob", ["admin"], 2, active=False))
    with pytest.raises(NotFound):
        audit_worker(store, bob).list_entries(ORG)
    put(store, change_event(ORGANIZATION_DELETED, "delete", ORG, OWNER, "organization", ORG))
    with pytest.raises(NotFound):
        audit_worker(store, alice).list_entries(ORG)


def test_ping_is_degraded_until_the_read_model_is_filled(store):
    service = worker_factory(AuditService, db=store)
    assert service.ping() == "pong"
    service.fill.check.side_effect = ServiceUnavailable("filling", code="service_unavailable")
    with pytest.raises(ServiceUnavailable):
        service.ping()


# ---- an entry and its state: one transaction, each once ------------------------------------------------
def test_an_entry_and_its_state_are_stored_once(store):
    added = membership_event(MEMBER_ADDED, "alice", ["admin"], 1)
    assert put(store, added) is True
    assert fact(store, "alice") == (["admin"], True, 1)
    put(store, membership_event(MEMBER_ROLES_CHANGED, "alice", ["member"], 2))
    assert put(store, added) is False               # redelivered after a newer state: nothing changes
    assert entry_count(store) == 2
    assert fact(store, "alice") == (["member"], True, 2)


def test_no_entry_without_its_state_nor_state_without_its_entry(store, monkeypatch):
    added = membership_event(MEMBER_ADDED, "alice", ["admin"], 1)
    def failing(session, event):
        raise OSError("disk full")

    monkeypatch.setattr(trail, "add_changes", failing)
    with pytest.raises(OSError):
        put(store, added)
    assert entry_count(store) == 0 and fact(store, "alice") is None
    monkeypatch.undo()
    assert put(store, added) is True                # the requeued event, delivered again
    assert entry_count(store) == 1 and fact(store, "alice") == (["admin"], True, 1)


def test_a_lost_race_on_a_new_membership_row_leaves_the_event_to_its_next_delivery(store, monkeypatch):
    """No retry loop in the consumer: the transaction rolls back (entry included), the broker requeues
    the event, and the next delivery stores it."""
    real_apply, failures = readmodels.apply_event_state, iter([IntegrityError("insert", {}, Exception("pk"))])

    def apply_after_losing_once(session, models, event):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_apply(session, models, event)

    monkeypatch.setattr(readmodels, "apply_event_state", apply_after_losing_once)
    added = membership_event(MEMBER_ADDED, "alice", ["admin"], 1)
    with pytest.raises(IntegrityError):
        put(store, added)
    assert entry_count(store) == 0
    assert put(store, added) is True
    assert entry_count(store) == 1 and fact(store, "alice") == (["admin"], True, 1)


def test_an_older_state_after_a_newer_one_changes_nothing(store):
    put(store, membership_event(MEMBER_ROLES_CHANGED, "alice", ["member"], 2))
    assert put(store, membership_event(MEMBER_ADDED, "alice", ["owner"], 1)) is True   # late, still audited
    assert fact(store, "alice") == (["member"], True, 2)
    put(store, membership_event(MEMBER_REMOVED, "alice", ["member"], 3, active=False))
    put(store, membership_event(MEMBER_ROLES_CHANGED, "alice", ["admin"], 2))
    assert fact(store, "alice") == (["member"], False, 3)          # the tombstone holds
    assert entry_count(store) == 4


def test_a_state_that_is_not_well_formed_is_logged_and_the_entry_stored(store, caplog):
    """Requeueing could never fix a producer's bug; nothing of the broken state is applied."""
    event = membership_event(MEMBER_ADDED, "alice", ["admin"], 1)
    event["state"]["memberships"].append({"organization_id": ORG, "user_id": "bob"})    # no version
    with caplog.at_level(logging.ERROR):
        assert put(store, event) is True
    assert "not well-formed" in caplog.text
    assert entry_count(store) == 1 and fact(store, "alice") is None and fact(store, "bob") is None
