"""The credits service's entrypoints with Nameko's worker_factory: the database is real, members and
orgs are mocks (tests/unit/credits/facts.py). Permissions and members' roles come from the read models;
members is asked only to confirm a refusal. Spends are in test_spends.py."""
import inspect
from datetime import UTC, datetime, timedelta

import pytest

from common import readmodels
from common.commands import declaration_of
from common.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable, ValidationFailed
from common.event_types import MEMBER_ROLES_CHANGED, ORGANIZATION_DELETED, ORGANIZATION_RENAMED
from common.events import change_event
from common.readmodels import organization_state
from common.timeutil import utcnow
from services.credits import allowances, budgets, ledger
from services.credits.models import READ_MODELS, MemberUsage
from services.credits.service import CreditsService
from tests.unit.credits import domain
from tests.unit.credits.facts import (
    ORG,
    credits_worker,
    deliver,
    member,
    membership_event,
    next_version,
    rpc_calls,
)

T_ORG = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def members_of(store, group_id):
    return budgets.group_snapshot(store, ORG, group_id)["member_ids"]


@pytest.fixture
def store(make_store):
    return make_store("credits")


def new_group(store, who, builder_limit=None, name="Nurses"):
    return domain.create_group(store, who, ORG, {"name": name, "monthly_limit": "10",
                                                 "builder_limit": builder_limit})["id"]


def seat(store, who, group_id, user_id, is_builder=False):
    """Put someone in the group directly (as an earlier request did)."""
    domain.assign_member(store, who, ORG, group_id, user_id, is_builder)


# ---- every command runs in the pipeline's unit of work (common.commands) ---------------------------------
def test_every_command_takes_its_session_or_its_unit_of_work():
    """No command of the service is written the old way (the pipeline's transitional path)."""
    commands = {name: method for name, method in vars(CreditsService).items()
                if declaration_of(method) is not None and declaration_of(method).kind == "command"}
    taken = {name: list(inspect.signature(method.__wrapped__).parameters)[2] for name, method in commands.items()}
    assert taken == {name: "uow" if declaration_of(method).phases else "session" for name, method in commands.items()}
    assert {name for name, given in taken.items() if given == "uow"} == {"spend", "add_budget_group_member"}


# ---- add_budget_group_member ---------------------------------------------------------------------------
def test_add_member_puts_them_in_the_group_without_asking_members(store, alice):
    group = new_group(store, alice)
    service = credits_worker(store, alice)
    member(store, "bob", ["member"])
    answer = service.add_budget_group_member(ORG, group, "bob")
    assert answer["created"] is True
    assert {k: answer["membership"][k] for k in ("user_id", "budget_group_id", "added_by")} == \
        {"user_id": "bob", "budget_group_id": group, "added_by": "alice"}
    assert members_of(store, group) == ["bob"]
    again = service.add_budget_group_member(ORG, group, "bob")
    assert again["created"] is False
    assert rpc_calls(service) == []


def test_the_builder_limit_counts_the_builders_from_the_read_model(store, alice):
    group = new_group(store, alice, builder_limit=1)
    seat(store, alice, group, "carl", is_builder=True)
    service = credits_worker(store, alice)
    carl = member(store, "carl", ["builder"])
    member(store, "erin", ["builder"])
    with pytest.raises(Conflict) as err:
        service.add_budget_group_member(ORG, group, "erin")
    assert (err.value.code, err.value.details) == ("builder_limit_reached", {"builder_limit": 1, "builders": 1})
    assert members_of(store, group) == ["carl"]
    # carl is no Builder any more: once the event is applied, erin fits.
    deliver(store, membership_event(MEMBER_ROLES_CHANGED, dict(carl, roles=["member"], version=next_version())))
    assert service.add_budget_group_member(ORG, group, "erin")["created"] is True
    assert members_of(store, group) == ["carl", "erin"]
    assert rpc_calls(service) == []


def test_someone_not_a_member_here_is_confirmed_with_members_first(store, alice):
    group = new_group(store, alice)
    service = credits_worker(store, alice)
    with pytest.raises(NotFound) as err:
        service.add_budget_group_member(ORG, group, "bob")
    assert err.value.code == "member_not_found"
    service.owners.knows_member("bob", ["member"])          # added a moment ago, the event not here yet
    assert service.add_budget_group_member(ORG, group, "bob")["created"] is True
    assert service.owners.asked == [("members", ORG, ["bob"])] * 2


def test_only_owner_or_admin_manage_group_members(store, alice):
    group = new_group(store, alice)
    for roles in (["member"], ["builder"], ["billing"], ["member", "billing"]):
        service = credits_worker(store, alice, roles)
        service.owners.knows_member("alice", roles)
        member(store, "bob", ["member"])
        with pytest.raises(Forbidden) as err:
            service.add_budget_group_member(ORG, group, "bob")
        assert err.value.code == "forbidden", roles
        assert service.owners.asked == [("members", ORG, ["alice"])]     # the refusal was confirmed
    assert members_of(store, group) == []


def test_a_role_granted_a_moment_ago_is_found_by_the_confirmation(store, alice):
    group = new_group(store, alice)
    service = credits_worker(store, alice, ["member"])
    member(store, "bob", ["member"])
    service.owners.knows_member("alice", ["admin"])
    assert service.add_budget_group_member(ORG, group, "bob")["created"] is True


def test_add_to_an_unknown_group_is_budget_group_not_found(store, alice):
    service = credits_worker(store, alice, ["admin"])
    member(store, "bob", ["builder"])
    with pytest.raises(NotFound) as err:
        service.add_budget_group_member(ORG, "no-such-group", "bob")
    assert err.value.code == "budget_group_not_found"


# The pipeline's order (common.commands): who may do it first, then their input.
def test_create_group_refuses_bad_fields_of_an_admin_and_a_stranger_before_reading_them(store, alice, bob):
    service = credits_worker(store, alice, roles=["admin"])
    with pytest.raises(ValidationFailed) as err:
        service.create_budget_group(ORG, {"name": "N", "builder_limit": 1.5})
    assert err.value.code == "invalid_builder_limit"
    assert rpc_calls(service) == []
    stranger = credits_worker(store, bob, roles=None)
    with pytest.raises(NotFound):
        stranger.create_budget_group(ORG, {"name": "N", "builder_limit": 1.5})


# ---- add_grant: its declared input and its Idempotency-Key, decided by the pipeline --------------------
def grant_count(store):
    return len(ledger.ledger_page(store, ORG, kind="grant")["items"])


def test_a_grant_with_the_same_key_is_replayed_not_doubled(store, alice):
    service = credits_worker(store, alice)
    first = service.add_grant(ORG, "3", "paid", None, "g-1")
    again = service.add_grant(ORG, "3.0000", "paid", None, "g-1")      # the same amount, written differently
    assert again == dict(first, idempotent_replayed=True)
    assert (ledger.credits_page(store, ORG)["balance"], grant_count(store)) == ("3.0000", 1)


def test_a_grant_key_reused_for_another_grant_is_a_conflict(store, alice):
    service = credits_worker(store, alice)
    service.add_grant(ORG, "3", "paid", None, "g-1")
    for other in (("4", "paid", None), ("3", "free", None), ("3", "free", "2999-01-01T00:00:00Z")):
        with pytest.raises(Conflict) as err:
            service.add_grant(ORG, *other, "g-1")
        assert (err.value.code, err.value.field) == ("idempotency_key_reused", "Idempotency-Key"), other
    assert (ledger.credits_page(store, ORG)["balance"], grant_count(store)) == ("3.0000", 1)


def test_a_grant_is_refused_for_bad_input_after_the_permission_and_the_key(store, alice, bob):
    service = credits_worker(store, alice, roles=["billing"])
    with pytest.raises(ValidationFailed) as err:
        service.add_grant(ORG, "0", "paid", None, "g-1")
    assert (err.value.code, err.value.field) == ("invalid_amount", "amount")
    with pytest.raises(BadRequest) as err:
        service.add_grant(ORG, "0", "paid", None, "tab\tinside")
    assert err.value.code == "invalid_idempotency_key"
    with pytest.raises(NotFound):
        credits_worker(store, bob, roles=None).add_grant(ORG, "0", "paid", None, "g-1")
    with pytest.raises(Forbidden):
        credits_worker(store, bob, roles=["member"]).add_grant(ORG, "0", "paid", None, "g-1")
    assert grant_count(store) == 0


# ---- my_usage: the caller's organizations, names and order from the read models ------------------------
def organization(store, org, name, type="collective", created_at=T_ORG, version=1, active=True):
    state = organization_state(org, name, type, created_at, version, active=active)
    with store.write() as session:
        readmodels.apply_state(session, READ_MODELS, readmodels.ORGANIZATIONS, state)
    return state


def test_my_usage_pages_the_callers_live_organizations_in_the_organization_lists_order(store, bob):
    period = allowances.period_of(utcnow())
    with store.write() as session:
        session.add(MemberUsage(organization_id="org-c", user_id="bob", period=period, used=25000,
                                updated_at=utcnow()))
    service = credits_worker(store, bob, roles=None)
    organization(store, "org-c", "Clinic", created_at=T_ORG)
    organization(store, "org-a", "Atelier", created_at=T_ORG + timedelta(days=1))
    organization(store, "org-b", "Bob", type="individual", created_at=T_ORG + timedelta(days=2))
    organization(store, "org-x", "Left", created_at=T_ORG)
    organization(store, "org-y", "Not mine", created_at=T_ORG)
    for org in ("org-a", "org-b", "org-c"):
        member(store, "bob", ["member"], org=org)
    member(store, "bob", ["member"], org="org-x", active=False)        # removed: a tombstone
    first = service.my_usage(limit=2)
    assert [(i["organization_id"], i["organization_name"], i["used"]) for i in first["items"]] == \
        [("org-b", "Bob", "0.0000"), ("org-c", "Clinic", "2.5000")]     # Individual first, then oldest
    assert all(i["budget"]["period"] == period for i in first["items"])
    rest = service.my_usage(cursor=first["next_cursor"], limit=2)
    assert [i["organization_id"] for i in rest["items"]] == ["org-a"] and rest["next_cursor"] is None
    with pytest.raises(BadRequest):
        service.my_usage(cursor="not-a-cursor")
    assert rpc_calls(service) == []


def test_my_usage_leaves_out_deleted_and_unknown_organizations_and_follows_renames(store, bob):
    service = credits_worker(store, bob, roles=None)
    for org in ("org-b", "org-a", "org-gone", "org-unknown"):
        member(store, "bob", ["billing"], org=org)
    for org in ("org-a", "org-b", "org-gone"):
        organization(store, org, org.upper())
    deliver(store, change_event(ORGANIZATION_DELETED, "delete", "org-gone", bob.as_actor(), "organization",
                                "org-gone", state={readmodels.ORGANIZATIONS: [
                                    organization_state("org-gone", "ORG-GONE", "collective", T_ORG, 2, False)]}))
    renamed = organization_state("org-a", "Renamed", "collective", T_ORG, 3)
    assert deliver(store, change_event(ORGANIZATION_RENAMED, "update", "org-a", bob.as_actor(), "organization",
                                       "org-a", state={readmodels.ORGANIZATIONS: [renamed]})) is True
    organization(store, "org-a", "Stale", version=2)                    # late: older than the rename
    items = service.my_usage()["items"]
    assert [(i["organization_id"], i["organization_name"]) for i in items] == [("org-a", "Renamed"), ("org-b", "ORG-B")]


def test_a_non_member_is_refused_as_for_an_unknown_organization(store, alice):
    service = credits_worker(store, alice, roles=None)
    for read in (lambda: service.get_credits(ORG), lambda: service.list_budget_groups(ORG),
                 lambda: service.list_alerts(ORG)):
        with pytest.raises(NotFound) as err:
            read()
        assert err.value.code == "organization_not_found"
    assert service.owners.asked == [("members", ORG, ["alice"])] * 3      # each refusal confirmed first


# ---- ping ----------------------------------------------------------------------------------------------
def test_ping_is_unavailable_until_the_read_models_were_filled(store, alice):
    service = credits_worker(store, alice)
    service.fill.check.side_effect = ServiceUnavailable("The credits service is filling its read models "
                                                        "(agents, memberships).", code="service_unavailable")
    with pytest.raises(ServiceUnavailable):
        service.ping()
    service.fill.check.side_effect = None
    assert service.ping() == "pong"
