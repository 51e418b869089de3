"""A spend and its dry run through the credits entrypoints (Nameko's worker_factory, a real database,
members and orgs as mocks: tests/unit/credits/facts.py). The right to use the agent is decided from the
read models inside the spend's transaction; members and orgs are asked only to confirm a refusal, and
the local answer stands when they cannot answer."""
import pytest
from sqlalchemy import event, func, select

from common.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable, ValidationFailed
from common.event_types import AGENT_ASSIGNEE_REMOVED, MEMBER_REMOVED, ORGANIZATION_DELETED
from common.events import change_event
from common.readmodels import agent_state
from services.credits import ledger, spend_batches
from services.credits.models import Account, AgentAccess, IdempotentRequest, LedgerEntry, MemberUsage, OutboxEvent
from tests.unit.credits import domain
from tests.unit.credits.facts import (
    ADMIN_ACTOR,
    AGENT,
    ORG,
    OTHER_ORG,
    agent,
    agent_event,
    credits_worker,
    deliver,
    member,
    membership_event,
    next_version,
    rpc_calls,
)


@pytest.fixture
def store(credits_store):
    return credits_store        # each test on SQLite and on PostgreSQL (the spend's two paths)


def count(store, model, *conditions):
    with store.read() as session:
        return session.scalar(select(func.count()).select_from(model).where(*conditions))
# ---- spend: decided from the read models, in the spend's transaction -----------------------------------
def funded(store, alice):
    domain.add_grant(store, alice, ORG, "100", "paid")


def nothing_spent(store):
    return (count(store, LedgerEntry, LedgerEntry.kind == "spend"), count(store, MemberUsage),
            count(store, IdempotentRequest), count(store, OutboxEvent, OutboxEvent.type == "credits.spent"))


def test_a_spend_asks_neither_orgs_nor_members_when_the_facts_are_here(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store, bob, ["member"])
    agent(store, assignees=["bob"])
    answer = service.spend(ORG, AGENT, "2.5", "key-1")
    assert answer["replayed"] is False
    assert (answer["spend"]["amount"], answer["spend"]["user_id"], answer["spend"]["agent_id"]) == \
        ("2.5000", "bob", AGENT)
    assert nothing_spent(store) == (1, 1, 1, 1)     # the grant was key-less: only the spend's key is stored
    assert ledger.credits_page(store, ORG)["balance"] == "97.5000"
    assert service.spend(ORG, AGENT, "2.5", "key-1")["replayed"] is True
    assert rpc_calls(service) == []


def test_with_orgs_and_members_down_a_member_who_may_use_the_agent_still_spends(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store, bob, ["builder"])
    agent(store, contributors=["bob"])
    service.owners.members_down = ServiceUnavailable("The members service is not running.")
    service.owners.orgs_down = ServiceUnavailable("The orgs service is not running.")
    assert service.spend(ORG, AGENT, "1", "key-1")["spend"]["amount"] == "1.0000"
    assert service.owners.asked == []


def not_a_member(store, owners):
    pass


def billing_only(store, owners):
    member(store, "bob", ["billing"])
    agent(store, assignees=["bob"])


def organization_deleted(store, owners):
    member(store, "bob", ["member"])
    agent(store, assignees=["bob"])
    deliver(store, change_event(ORGANIZATION_DELETED, "delete", ORG, ADMIN_ACTOR, "organization", ORG))


def unknown_agent(store, owners):
    member(store, "bob", ["member"])


def not_assigned(store, owners):
    member(store, "bob", ["member"])
    agent(store, contributors=["bob"])      # a Member's contributions count for nothing
    owners.knows_agent(contributors=["bob"])


def another_organizations_agent(store, owners):
    member(store, "bob", ["member"])
    agent(store, org=OTHER_ORG, assignees=["bob"])
    owners.knows_agent(org=OTHER_ORG, assignees=["bob"])


def deleted_agent(store, owners):
    member(store, "bob", ["member"])
    agent(store, assignees=["bob"], active=False)


MEMBERS = ("members", ORG, ["bob"])
ORGS = ("orgs", ORG, [AGENT])
REFUSALS = [  # the situation, the refusal (orgs' codes), the confirmations asked first
    (not_a_member, NotFound, "organization_not_found", [MEMBERS]),
    (organization_deleted, NotFound, "organization_not_found", [MEMBERS]),
    (billing_only, Forbidden, "forbidden", [MEMBERS]),
    (unknown_agent, NotFound, "agent_not_found", [ORGS, MEMBERS]),
    (not_assigned, NotFound, "agent_not_found", [ORGS, MEMBERS]),
    (another_organizations_agent, NotFound, "agent_not_found", [ORGS, MEMBERS]),
    (deleted_agent, NotFound, "agent_not_found", [ORGS, MEMBERS]),
]


@pytest.mark.parametrize(("situation", "error", "code", "asked"), REFUSALS, ids=[r[0].__name__ for r in REFUSALS])
def test_a_refusal_confirmed_by_the_owners_stands_and_writes_nothing(store, alice, bob, situation, error, code,
                                                                     asked):
    funded(store, alice)
    service = credits_worker(store, bob, roles=None)
    situation(store, service.owners)
    with pytest.raises(error) as err:
        service.spend(ORG, AGENT, "2.5", "key-1")
    assert err.value.code == code
    assert service.owners.asked == asked
    assert nothing_spent(store) == (0, 0, 0, 0)
    assert ledger.credits_page(store, ORG)["balance"] == "100.0000"
    with pytest.raises(error) as err:
        service.evaluate_spend(ORG, AGENT, "1")     # the dry run decides alike
    assert err.value.code == code


def test_a_refusal_is_confirmed_with_orgs_and_its_newer_state_allows_the_spend(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store, bob, ["member"])
    local = agent(store)                                     # bob not assigned here (yet)
    service.owners.knows_agent(assignees=["bob"])             # assigned in orgs a moment ago
    assert service.spend(ORG, AGENT, "2", "key-1")["replayed"] is False
    assert service.owners.asked == [ORGS, MEMBERS]
    with store.read() as session:
        row = session.get(AgentAccess, AGENT)
        assert (row.assignees, row.version > local["version"]) == (["bob"], True)
    service.spend(ORG, AGENT, "2", "key-2")                  # now decided here alone
    assert len(service.owners.asked) == 2
    assert nothing_spent(store)[0] == 2


def test_an_older_state_from_orgs_does_not_undo_a_newer_revocation(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store, bob, ["member"])
    stale = agent_state(AGENT, ORG, [], ["bob"], next_version())
    agent(store)                                             # the unassignment, newer
    service.owners.agents[AGENT] = stale
    with pytest.raises(NotFound) as err:
        service.spend(ORG, AGENT, "2", "key-1")
    assert err.value.code == "agent_not_found"


def test_a_member_added_a_moment_ago_is_confirmed_with_members(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store, bob, roles=None)
    agent(store, assignees=["bob"])
    service.owners.knows_member("bob", ["member"])
    assert service.spend(ORG, AGENT, "1", "key-1")["replayed"] is False
    assert service.owners.asked == [MEMBERS]


def test_a_builder_role_granted_a_moment_ago_lets_a_contributor_spend(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store, bob, ["member"])
    agent(store, contributors=["bob"])
    service.owners.knows_agent(contributors=["bob"])
    service.owners.knows_member("bob", ["builder"])
    assert service.spend(ORG, AGENT, "1", "key-1")["replayed"] is False
    assert service.owners.asked == [ORGS, MEMBERS]


@pytest.mark.parametrize("down", ["orgs", "both"])
def test_the_local_refusal_stands_when_orgs_cannot_answer(store, alice, bob, down):
    funded(store, alice)
    service = credits_worker(store, bob, ["member"])
    agent(store)
    service.owners.knows_agent(assignees=["bob"])            # orgs would have allowed it
    if down in ("orgs", "both"):
        service.owners.orgs_down = ServiceUnavailable("The orgs service is not running.", code="service_unavailable")
    if down in ("members", "both"):
        service.owners.members_down = ServiceUnavailable("The members service is not running.",
                                                         code="service_unavailable")
    with pytest.raises(NotFound) as err:
        service.spend(ORG, AGENT, "2", "key-1")
    assert err.value.code == "agent_not_found"
    assert nothing_spent(store) == (0, 0, 0, 0)


def test_a_non_members_refusal_stands_when_members_cannot_answer(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store, bob, roles=None)
    agent(store, assignees=["bob"])
    service.owners.knows_member("bob", ["member"])           # members would have allowed it
    service.owners.members_down = ServiceUnavailable("The members service is not running.",
                                                     code="service_unavailable")
    with pytest.raises(NotFound) as err:
        service.spend(ORG, AGENT, "2", "key-1")
    assert err.value.code == "organization_not_found"
    assert service.owners.asked == [MEMBERS]


def test_an_unassignment_applied_refuses_the_next_spend(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store, bob, ["member"])
    assigned = agent(store, assignees=["bob"])
    service.spend(ORG, AGENT, "1", "key-1")
    unassigned = dict(assigned, assignees=[], version=next_version())
    assert deliver(store, agent_event(AGENT_ASSIGNEE_REMOVED, unassigned)) is True
    service.owners.agents[AGENT] = unassigned                 # orgs confirms it
    with pytest.raises(NotFound) as err:
        service.spend(ORG, AGENT, "1", "key-2")
    assert err.value.code == "agent_not_found"
    assert nothing_spent(store)[0] == 1


def test_a_removal_applied_refuses_the_next_spend(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store, bob, roles=None)
    membership = member(store, "bob", ["member"])
    agent(store, assignees=["bob"])
    service.spend(ORG, AGENT, "1", "key-1")
    removed = dict(membership, active=False, version=next_version())
    assert deliver(store, membership_event(MEMBER_REMOVED, removed, action="delete")) is True
    with pytest.raises(NotFound) as err:
        service.spend(ORG, AGENT, "1", "key-2")
    assert err.value.code == "organization_not_found"
    assert service.owners.asked == [MEMBERS]                 # members no longer knows bob either
    with pytest.raises(NotFound):
        service.spend(ORG, AGENT, "1", "key-1")              # not even a replay of an earlier spend
    assert nothing_spent(store)[0] == 1


def test_the_access_check_runs_in_the_spend_before_anything_is_charged(store, alice, bob):
    """The check is the spend's own (read in its first phase), a refusal is confirmed with the owners
    before it is given, and it leaves nothing behind. (SQLite's path: on PostgreSQL the check is decided from
    the facts read in the spend's one statement, agent_access.refusal_from; the tests around it run there too.)"""
    if not store.is_sqlite:
        pytest.skip("the access object's session is SQLite's path")
    funded(store, alice)
    checked, confirmed = [], []

    class Refusing:
        def refusal_in(self, session, user_id, organization_id, agent_id):
            checked.append(session.execute(select(func.count()).select_from(LedgerEntry)).scalar())
            return Forbidden("no")

        def confirmed_refusal(self, user_id, organization_id, agent_id, refusal):
            confirmed.append((user_id, organization_id, agent_id))
            return refusal
    with pytest.raises(Forbidden):
        domain.spend(store, bob, ORG, AGENT, "1", "key-1", access=Refusing())
    assert checked == [1] and confirmed == [("bob", ORG, AGENT)]                   # the grant's entry
    assert (nothing_spent(store), count(store, Account)) == ((0, 0, 0, 0), 1)   # the grant's account only


def test_a_bad_amount_or_missing_key_is_refused_before_any_check(store, bob):
    service = credits_worker(store, bob, roles=None)
    for amount, code in (("abc", "invalid_amount"), ("0", "invalid_amount"), ("-1", "invalid_amount"),
                         (None, "amount_required"), (2.5, "invalid_amount"), (0.5, "invalid_amount"),
                         (True, "invalid_amount"),
                         ("1.00001", "too_many_decimal_places"), ("1000000001", "amount_too_large")):
        with pytest.raises(ValidationFailed) as err:
            service.spend(ORG, AGENT, amount, "key-1")
        assert (err.value.code, err.value.field) == (code, "amount"), amount
    for key in (None, ""):
        with pytest.raises(BadRequest) as err:
            service.spend(ORG, AGENT, "1", key)
        assert (err.value.code, err.value.field) == ("idempotency_key_required", "Idempotency-Key")
    for key in ("k" * 201, "tab\tinside", 5):                   # checked as the gateway does
        with pytest.raises(BadRequest) as err:
            service.spend(ORG, AGENT, "1", key)
        assert err.value.code == "invalid_idempotency_key"
    assert rpc_calls(service) == []
    assert count(store, Account) == 0


def test_the_dry_run_is_decided_from_the_same_facts(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store, bob, ["member"])
    agent(store, assignees=["bob"])
    answer = service.evaluate_spend(ORG, AGENT, "5")
    assert (answer["allowed"], answer["dry_run"], answer["can_spend"]) == (True, True, "100.0000")
    assert service.evaluate_spend(ORG, AGENT)["allowed"] is None
    assert rpc_calls(service) == []
    assert nothing_spent(store) == (0, 0, 0, 0)


# ---- the Idempotency-Key's fingerprint: the spend's values as its declared input loaded them -------------
@pytest.mark.parametrize("change", [{"amount": "4"}, {"amount": "3.0001"}, {"agent_id": "agent-2"},
                                    {"organization_id": OTHER_ORG, "agent_id": "agent-3"}])
def test_the_same_key_for_another_spend_is_a_conflict(store, alice, bob, change):
    funded(store, alice)
    domain.add_grant(store, alice, OTHER_ORG, "10", "paid")
    service = credits_worker(store, bob, ["member"])
    member(store, "bob", ["member"], org=OTHER_ORG)
    agent(store, assignees=["bob"])
    agent(store, "agent-2", assignees=["bob"])
    agent(store, "agent-3", org=OTHER_ORG, assignees=["bob"])
    service.spend(ORG, AGENT, "3", "k-1")
    with pytest.raises(Conflict) as err:
        service.spend(**dict({"organization_id": ORG, "agent_id": AGENT, "amount": "3", "idempotency_key": "k-1"},
                             **change))
    assert (err.value.status, err.value.code, err.value.field) == (409, "idempotency_key_reused", "Idempotency-Key")
    assert (ledger.credits_page(store, ORG)["balance"], ledger.credits_page(store, OTHER_ORG)["balance"]) == \
        ("97.0000", "10.0000")


def test_the_same_amount_written_differently_is_the_same_request(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store, bob, ["member"])
    agent(store, assignees=["bob"])
    first = service.spend(ORG, AGENT, "3", "k-1")
    again = service.spend(ORG, AGENT, "3.0000", "k-1")
    assert (again["replayed"], again["spend"]) == (True, dict(first["spend"], idempotent_replayed=True))
    assert nothing_spent(store)[0] == 1


def test_a_grant_key_used_again_for_a_spend_is_a_conflict(store, alice):
    service = credits_worker(store, alice)
    agent(store)
    service.add_grant(ORG, "10", "paid", None, "k-1")
    with pytest.raises(Conflict) as err:
        service.spend(ORG, AGENT, "1", "k-1")
    assert err.value.code == "idempotency_key_reused"
    assert ledger.credits_page(store, ORG)["balance"] == "10.0000"


# ---- a request delivered twice (common.handled_requests): recorded by the spend's write phase --------------
def test_a_spend_request_delivered_again_replays_or_is_refused_and_charges_once(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store.for_request("rpc-1"), bob, ["member"])
    agent(store, assignees=["bob"])
    first = service.spend(ORG, AGENT, "1", "key-1")
    # The same request again: its key's answer is found in the read phase, before anything is written.
    assert service.spend(ORG, AGENT, "1", "key-1") == {"spend": dict(first["spend"], idempotent_replayed=True),
                                                        "replayed": True}
    with pytest.raises(ServiceUnavailable) as err:       # a request id that already wrote cannot write again
        service.spend(ORG, AGENT, "1", "key-2")
    assert err.value.code == "request_interrupted"
    assert nothing_spent(store) == (1, 1, 1, 1)
    assert ledger.credits_page(store, ORG)["balance"] == "99.0000"


# ---- what a spend costs the database ---------------------------------------------------------------------
def statements_of(store, run):
    """The statements `run()` sends, on the store's engine and, on PostgreSQL, the spends' (autocommit: each
    statement one round trip; the store's engine adds BEGIN and COMMIT and a ping, counted as they happen)."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split())[:60])

    def transaction(name):
        return lambda conn, *args: seen.append(name)
    engines = [store.engine] if store.is_sqlite else [store.engine, spend_batches.engine_of(store.url)]
    hooks = [(engine, "before_cursor_execute", record) for engine in engines]
    if not store.is_sqlite:
        hooks += [(store.engine, name.lower(), transaction(name)) for name in ("BEGIN", "COMMIT", "ROLLBACK")]
        hooks += [(store.engine.pool, "checkout", transaction("ping"))]
    for hook in hooks:
        event.listen(*hook)
    try:
        run()
    finally:
        for hook in hooks:
            event.remove(*hook)
    return seen


# The statements (round trips) of a spend through the entrypoint, transaction control included: the pipeline
# and the spend may not add any (the figure only goes down; bench/spend_targets.py counts them under load).
# On SQLite (no round trips: calls into the library) the statements of spend_statements.py; on PostgreSQL,
# one statement reads, one writes (spend_batches.py).
SPEND_STATEMENTS = {"sqlite": 17, "postgresql": 2}


def test_a_spend_makes_no_more_statements_than_it_did(store, alice, bob):
    funded(store, alice)
    service = credits_worker(store, bob, ["member"])
    agent(store, assignees=["bob"])
    service.spend(ORG, AGENT, "1", "warm-up")               # the member's usage row exists from here on
    made = statements_of(store, lambda: service.spend(ORG, AGENT, "1", "key-2"))
    assert len(made) <= SPEND_STATEMENTS[store.engine.dialect.name], made
    replayed = statements_of(store, lambda: service.spend(ORG, AGENT, "1", "key-2"))
    assert len(replayed) < len(made), replayed
