"""The credits service's entrypoints with Nameko's worker_factory (members and orgs are mocks, the
database is real), and orgs' check_agent_use, which every spend asks first."""
import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import func, select

from common.auth import Identity
from common.errors import BadRequest, Conflict, Forbidden, NotFound, ValidationFailed
from common.timeutil import utcnow
from services.credits import budgets, ledger
from services.credits.models import Account, IdempotentRequest, LedgerEntry, MemberUsage, OutboxEvent
from services.credits.service import CreditsService
from services.orgs import agent_people, agents, organizations
from services.orgs.service import OrgsService

ORG = "org-clinic"
AGENT = "agent-1"


class Reply:
    """What `method.call_async(...)` gives back: `.result()` answers (or raises) then."""

    def __init__(self, answer):
        self.answer = answer

    def result(self):
        return self.answer()


def answer_with(method, fn):
    """Make the RPC method proxy answer `fn(*args)`; returns the list of the calls' args."""
    calls = []

    def call_async(*args, **kwargs):
        calls.append(args)
        return Reply(lambda: fn(*args, **kwargs))
    method.call_async.side_effect = call_async
    return calls


def credits_worker(store, identity, roles=("owner",), org=ORG):
    service = worker_factory(CreditsService, db=store)
    service.auth.require.return_value = identity
    service.members.my_membership.call_async.return_value.result.return_value = {
        "organization_id": org, "user_id": identity.id, "roles": list(roles), "member_count": 5}
    return service


def roles_lookup(service, roles):
    """members.member_roles answers from `roles` ({user_id: [roles]}); returns the ids asked about, per call."""
    asked = []

    def member_roles(org_id, user_ids):
        assert org_id == ORG
        asked.append(list(user_ids))
        return {u: roles[u] for u in user_ids if u in roles}
    answer_with(service.members.member_roles, member_roles)
    return asked


def count(store, model, *conditions):
    with store.read() as session:
        return session.scalar(select(func.count()).select_from(model).where(*conditions))


def members_of(store, group_id):
    return budgets.group_snapshot(store, ORG, group_id)["member_ids"]


@pytest.fixture
def store(make_store):
    return make_store("credits")


def new_group(store, who, builder_limit=None, name="Nurses"):
    return budgets.create_group(store, who, ORG, {"name": name, "monthly_limit": "10",
                                                  "builder_limit": builder_limit})["id"]


def seat(store, who, group_id, user_id, is_builder=False):
    """Put someone in the group directly (as an earlier request did)."""
    snapshot = budgets.group_snapshot(store, ORG, group_id)
    budgets.assign_member(store, who, ORG, group_id, user_id, is_builder, 0, snapshot)


# ---- add_budget_group_member ---------------------------------------------------------------------------
def test_add_member_puts_them_in_the_group(store, alice):
    group = new_group(store, alice)
    service = credits_worker(store, alice)
    asked = roles_lookup(service, {"bob": ["member"]})
    answer = service.add_budget_group_member(ORG, group, "bob")
    assert answer["created"] is True
    assert {k: answer["membership"][k] for k in ("user_id", "budget_group_id", "added_by")} == \
        {"user_id": "bob", "budget_group_id": group, "added_by": "alice"}
    assert asked == [["bob"]]      # a non-Builder: the others' roles do not matter
    assert members_of(store, group) == ["bob"]
    service.members.my_membership.call_async.assert_called_once_with(ORG)
    again = service.add_budget_group_member(ORG, group, "bob")
    assert again["created"] is False


def test_adding_a_builder_asks_members_for_the_roles_of_the_groups_other_members(store, alice):
    group = new_group(store, alice, builder_limit=1)
    seat(store, alice, group, "carl", is_builder=True)
    service = credits_worker(store, alice)
    asked = roles_lookup(service, {"carl": ["builder"], "erin": ["builder"]})
    with pytest.raises(Conflict) as err:
        service.add_budget_group_member(ORG, group, "erin")
    assert (err.value.code, err.value.details) == ("builder_limit_reached", {"builder_limit": 1, "builders": 1})
    assert asked == [["erin"], ["carl"]]
    assert members_of(store, group) == ["carl"]


def test_only_owner_or_admin_manage_group_members(store, alice):
    group = new_group(store, alice)
    for roles in (["member"], ["builder"], ["billing"], ["member", "billing"]):
        service = credits_worker(store, alice, roles)
        with pytest.raises(Forbidden) as err:
            service.add_budget_group_member(ORG, group, "bob")
        assert err.value.code == "forbidden", roles
        service.members.member_roles.call_async.assert_not_called()
    assert members_of(store, group) == []


def test_add_to_an_unknown_group_is_budget_group_not_found(store, alice):
    service = credits_worker(store, alice, ["admin"])
    roles_lookup(service, {"bob": ["builder"]})
    with pytest.raises(NotFound) as err:
        service.add_budget_group_member(ORG, "no-such-group", "bob")
    assert err.value.code == "budget_group_not_found"


def test_create_group_refuses_bad_fields_before_asking_members(store, alice):
    service = credits_worker(store, alice)
    with pytest.raises(ValidationFailed) as err:
        service.create_budget_group(ORG, {"name": "N", "builder_limit": 1.5})
    assert err.value.code == "invalid_builder_limit"
    service.members.my_membership.call_async.assert_not_called()


# ---- spend ---------------------------------------------------------------------------------------------
def funded(store, alice):
    ledger.add_grant(store, alice, ORG, "100", "paid")


def nothing_spent(store):
    return (count(store, LedgerEntry, LedgerEntry.kind == "spend"), count(store, MemberUsage),
            count(store, IdempotentRequest), count(store, OutboxEvent, OutboxEvent.type == "credits.spent"))


def test_spend_asks_orgs_first_and_charges(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store, bob, ["member"])
    service.orgs.check_agent_use.call_async.return_value.result.return_value = \
        {"organization_id": ORG, "agent_id": AGENT}
    answer = service.spend(ORG, AGENT, "2.5", "key-1")
    assert answer["replayed"] is False
    assert (answer["spend"]["amount"], answer["spend"]["user_id"], answer["spend"]["agent_id"]) == \
        ("2.5000", "bob", AGENT)
    service.orgs.check_agent_use.call_async.assert_called_once_with(ORG, AGENT)
    assert nothing_spent(store) == (1, 1, 1, 1)     # the grant was key-less: only the spend's key is stored
    assert ledger.credits_page(store, ORG)["balance"] == "97.5000"


REFUSALS = [
    NotFound("Agent not found.", code="agent_not_found", field="agent_id"),
    Forbidden("Your roles in this organization do not allow using agents.", code="forbidden"),
    NotFound("Organization not found.", code="organization_not_found", field="organization_id"),
]


def test_a_refused_agent_use_writes_nothing(store, alice, bob):
    funded(store, alice)
    before = nothing_spent(store)
    assert before == (0, 0, 0, 0)
    for refusal in REFUSALS:
        service = credits_worker(store, bob, ["member"])

        def refuse(*args, refusal=refusal):
            raise refusal
        answer_with(service.orgs.check_agent_use, refuse)
        with pytest.raises(type(refusal)) as err:
            service.spend(ORG, AGENT, "2.5", "key-1")
        assert err.value.code == refusal.code
        service.orgs.check_agent_use.call_async.assert_called_once_with(ORG, AGENT)
    assert nothing_spent(store) == before
    assert ledger.credits_page(store, ORG)["balance"] == "100.0000"


def test_a_bad_amount_or_missing_key_is_refused_before_any_rpc_call(store, bob):
    service = credits_worker(store, bob, ["member"])
    for amount, code in (("abc", "invalid_amount"), ("0", "invalid_amount"), ("-1", "invalid_amount"),
                         (None, "amount_required"), (2.5, "invalid_amount"), (True, "invalid_amount"),
                         ("1.00001", "too_many_decimal_places"), ("1000000001", "amount_too_large")):
        with pytest.raises(ValidationFailed) as err:
            service.spend(ORG, AGENT, amount, "key-1")
        assert (err.value.code, err.value.field) == (code, "amount"), amount
    for key in (None, ""):
        with pytest.raises(BadRequest) as err:
            service.spend(ORG, AGENT, "1", key)
        assert (err.value.code, err.value.field) == ("idempotency_key_required", "Idempotency-Key")
    service.orgs.check_agent_use.call_async.assert_not_called()
    service.members.my_membership.call_async.assert_not_called()
    assert count(store, Account) == 0


# ---- my_usage ------------------------------------------------------------------------------------------
def usage_worker(store, identity, member_of):
    service = credits_worker(store, identity)
    service.members.my_memberships.call_async.return_value.result.return_value = [
        {"organization_id": org, "user_id": identity.id, "roles": ["member"], "member_count": 2} for org in member_of]
    return service


def test_my_usage_keeps_the_order_asked_for_and_drops_organizations_the_caller_is_not_in(store, bob):
    period = budgets.period_of(utcnow())
    with store.write() as session:
        session.add(MemberUsage(organization_id="org-c", user_id="bob", period=period, used=25000,
                                updated_at=utcnow()))
    service = usage_worker(store, bob, ["org-a", "org-b", "org-c"])
    items = service.my_usage(["org-c", "org-x", "org-a"])
    assert [(i["organization_id"], i["used"]) for i in items] == [("org-c", "2.5000"), ("org-a", "0.0000")]
    assert all(i["budget"]["period"] == period for i in items)


def test_my_usage_without_ids_lists_every_membership(store, bob):
    service = usage_worker(store, bob, ["org-b", "org-a"])
    assert [i["organization_id"] for i in service.my_usage()] == ["org-b", "org-a"]
    assert service.my_usage([]) == []
    assert service.my_usage(["org-x"]) == []


# ---- budget_groups_of_members --------------------------------------------------------------------------
def test_budget_groups_of_members_refuses_bad_ids_before_asking_members(store, alice):
    service = credits_worker(store, alice, ["member"])
    for user_ids in ([f"u{i}" for i in range(501)], [1], ["bob", None], "bob", None, {"bob": 1}, ("bob",)):
        with pytest.raises(ValidationFailed) as err:
            service.budget_groups_of_members(ORG, user_ids)
        assert (err.value.code, err.value.field) == ("invalid_type", "user_ids"), user_ids
    service.members.my_membership.call_async.assert_not_called()


def test_budget_groups_of_members_answers_any_member_for_up_to_500_ids(store, alice):
    group = new_group(store, alice)
    seat(store, alice, group, "u0007")
    service = credits_worker(store, alice, ["billing"])
    ids = [f"u{i:04d}" for i in range(500)]
    assert service.budget_groups_of_members(ORG, ids) == {"u0007": group}
    service.members.my_membership.call_async.assert_called_once_with(ORG)


# ---- orgs: check_agent_use ---------------------------------------------------------------------------------
def person(name):
    return Identity(name, f"{name}@example.com", name.title())


OWNER_ID = person("olga")


@pytest.fixture
def orgs_store(make_store):
    return make_store("orgs")


@pytest.fixture
def org(orgs_store):
    return organizations.create_collective(orgs_store, OWNER_ID, "Clinic")["id"]


def new_agent(orgs_store, org, who=OWNER_ID, roles=("owner",), name="Helper"):
    return agents.create_agent(orgs_store, who, list(roles), org, {"name": name})["id"]


def uses(orgs_store, who, roles, org, agent):
    return agents.check_agent_use(orgs_store, who, roles, org, agent)


@pytest.mark.parametrize("roles", [["owner"], ["admin"], ["owner", "billing"]])
def test_owner_or_admin_use_any_agent(orgs_store, org, roles):
    agent = new_agent(orgs_store, org)
    assert uses(orgs_store, person("pat"), roles, org, agent) == {"organization_id": org, "agent_id": agent}


@pytest.mark.parametrize("roles", [["member"], ["member", "billing"]])
def test_a_member_uses_only_assigned_agents(orgs_store, org, roles):
    bob = person("bob")
    assigned, other = new_agent(orgs_store, org, name="Assigned"), new_agent(orgs_store, org, name="Other")
    agent_people.assign(orgs_store, OWNER_ID, ["owner"], org, assigned, bob.id, roles)
    assert uses(orgs_store, bob, roles, org, assigned) == {"organization_id": org, "agent_id": assigned}
    with pytest.raises(NotFound) as err:
        uses(orgs_store, bob, roles, org, other)
    assert (err.value.code, err.value.field) == ("agent_not_found", "agent_id")


def test_a_builder_uses_agents_assigned_or_contributed_to(orgs_store, org):
    bob = person("bob")
    mine = new_agent(orgs_store, org, who=bob, roles=["builder"], name="Mine")
    assigned, other = new_agent(orgs_store, org, name="Assigned"), new_agent(orgs_store, org, name="Other")
    agent_people.assign(orgs_store, OWNER_ID, ["owner"], org, assigned, bob.id, ["builder"])
    assert uses(orgs_store, bob, ["builder"], org, mine)["agent_id"] == mine
    assert uses(orgs_store, bob, ["builder"], org, assigned)["agent_id"] == assigned
    with pytest.raises(NotFound) as err:
        uses(orgs_store, bob, ["builder"], org, other)
    assert err.value.code == "agent_not_found"


def test_a_contributor_who_lost_builder_no_longer_uses_the_agent(orgs_store, org):
    bob = person("bob")
    mine = new_agent(orgs_store, org, who=bob, roles=["builder"], name="Mine")
    with pytest.raises(NotFound) as err:
        uses(orgs_store, bob, ["member"], org, mine)
    assert err.value.code == "agent_not_found"


@pytest.mark.parametrize("agent", ["assigned", "no-such-agent"])
def test_billing_only_is_forbidden_before_any_lookup(orgs_store, org, agent):
    bob = person("bob")
    assigned = new_agent(orgs_store, org)
    agent_people.assign(orgs_store, OWNER_ID, ["owner"], org, assigned, bob.id, ["billing"])
    with pytest.raises(Forbidden) as err:
        uses(orgs_store, bob, ["billing"], org, assigned if agent == "assigned" else agent)
    assert err.value.code == "forbidden"


def test_unknown_deleted_or_another_organizations_agent_is_not_found(orgs_store, org):
    elsewhere = organizations.create_collective(orgs_store, OWNER_ID, "Elsewhere")["id"]
    theirs = new_agent(orgs_store, elsewhere, name="Theirs")
    gone = new_agent(orgs_store, org, name="Gone")
    agents.delete_agent(orgs_store, OWNER_ID, ["owner"], org, gone)
    for agent_id in (theirs, gone, "no-such-agent", None, "a" * 65):
        with pytest.raises(NotFound) as err:
            uses(orgs_store, OWNER_ID, ["owner"], org, agent_id)
        assert err.value.code == "agent_not_found"


def test_orgs_entrypoint_checks_use_with_the_callers_roles_from_members(orgs_store, org):
    bob = person("bob")
    agent = new_agent(orgs_store, org)
    service = worker_factory(OrgsService, db=orgs_store)
    service.auth.require.return_value = bob
    service.members.my_membership.call_async.return_value.result.return_value = \
        {"organization_id": org, "user_id": bob.id, "roles": ["member"], "member_count": 2}
    with pytest.raises(NotFound) as err:
        service.check_agent_use(org, agent)
    assert err.value.code == "agent_not_found"
    service.members.my_membership.call_async.assert_called_once_with(org)
    agent_people.assign(orgs_store, OWNER_ID, ["owner"], org, agent, bob.id, ["member"])
    assert service.check_agent_use(org, agent) == {"organization_id": org, "agent_id": agent}
