"""The credits ledger (services/credits/ledger.py) as plain functions over a migrated SQLite store: grants,
spends, expiries and the ledger pages, with what a spend asks of budgets.py (the monthly budget period, the
member's Allowance). Time is always passed in through `now=`. Commands run as the pipeline runs them
(tests/unit/credits/domain.py: their declared input loaded, in a unit of work); what only the pipeline
decides (the Idempotency-Key's fingerprint) is tested through the entrypoints (test_entrypoints.py,
test_spends.py)."""
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from common.auth import Identity
from common.db import Store
from common.errors import BadRequest, PaymentRequired, ValidationFailed
from common.migrate import upgrade
from common.money import MAX_BALANCE_UNITS, UNITS_PER_CREDIT
from common.paging import encode_cursor
from common.timeutil import as_utc, iso
from services.credits import allowances, ledger, spends
from services.credits.models import (
    Account,
    BudgetGroup,
    Grant,
    IdempotentRequest,
    LedgerEntry,
    MemberUsage,
    OutboxEvent,
)
from tests.unit.credits import domain

UTC = UTC
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ORG, OTHER_ORG, THIRD_ORG = "org-1", "org-2", "org-3"
AGENT = "agent-1"
CAROL = Identity("carol", "carol@example.com", "Carol")


def at(*parts):
    return datetime(*parts, tzinfo=UTC)


def units(credits):
    return int(credits * UNITS_PER_CREDIT)


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("credits-template") / "credits.sqlite"
    upgrade("credits", f"sqlite:///{path}")
    return path


@pytest.fixture
def store(migrated_template, tmp_path):
    """A fresh migrated credits database per test, like conftest's make_store("credits"), but copied from one
    migrated template (SQLite's backup API, so the WAL is included) instead of running the migrations each time:
    this file has many short tests."""
    path = tmp_path / "credits.sqlite"
    with closing(sqlite3.connect(migrated_template)) as source, closing(sqlite3.connect(path)) as target:
        source.backup(target)
    return Store(f"sqlite:///{path}")


def grant(store, who, amount, type="free", expires_at=None, org=ORG, now=T0, key=None):
    return domain.add_grant(store, who, org, amount, type, expires_at=expires_at, key=key, now=now)


_keys = iter(range(10 ** 9))


def spend(store, who, amount, org=ORG, agent=AGENT, key=None, now=T0):
    return domain.spend(store, who, org, agent, amount, key or f"key-{next(_keys)}", now=now)


def refused(call):
    with pytest.raises(PaymentRequired) as err:
        call()
    return err.value


def entries(store, org=ORG):
    """The organization's ledger rows, oldest first."""
    with store.read() as session:
        return session.scalars(select(LedgerEntry).where(LedgerEntry.organization_id == org)
                               .order_by(LedgerEntry.seq)).all()


def account_balance(store, org=ORG):
    with store.read() as session:
        account = session.get(Account, org)
        return None if account is None else account.balance


def grant_row(store, grant_id):
    with store.read() as session:
        return session.get(Grant, grant_id)


def usage(store, user_id, period, org=ORG):
    with store.read() as session:
        row = session.get(MemberUsage, (org, user_id, period))
        return None if row is None else row.used


def events(store, type):
    with store.read() as session:
        return [e.envelope for e in session.scalars(select(OutboxEvent).where(OutboxEvent.type == type)
                                                    .order_by(OutboxEvent.id))]


def budget_group(store, owner, limit, members, org=ORG, now=T0, name="Team"):
    """A group with a monthly limit (a string, or None for no limit) holding `members` (user ids)."""
    group = domain.create_group(store, owner, org, {"name": name, "monthly_limit": limit}, now=now)
    for user_id in members:
        domain.assign_member(store, owner, org, group["id"], user_id, now=now)
    return group


def assert_invariant(store, org=ORG, now=None):
    """account.balance == sum of live grants' remaining == grants - spends - expiries over the ledger, and
    each entry's balance_after is the running sum (product rules §4, models.py)."""
    with store.read() as session:
        balance = session.get(Account, org).balance
        grants = session.scalars(select(Grant).where(Grant.organization_id == org)).all()
        rows = session.scalars(select(LedgerEntry).where(LedgerEntry.organization_id == org)
                               .order_by(LedgerEntry.seq)).all()
    live = [g for g in grants if now is None or g.expires_at is None or as_utc(g.expires_at) > now]
    assert balance == sum(g.remaining for g in live)
    sign = {"grant": 1, "spend": -1, "expiry": -1}
    running = 0
    for entry in rows:
        running += sign[entry.kind] * entry.amount
        assert entry.balance_after == running, (entry.kind, entry.amount)
    assert running == balance
    return balance


# ---- period_of / period_bounds ----------------------------------------------------------------------------
@pytest.mark.parametrize("now, period, start, resets_at", [
    (at(2026, 3, 10, 12), "2026-03", at(2026, 3, 1), at(2026, 4, 1)),
    (at(2026, 1, 1), "2026-01", at(2026, 1, 1), at(2026, 2, 1)),
    (at(2026, 11, 30, 23, 59, 59, 999999), "2026-11", at(2026, 11, 1), at(2026, 12, 1)),
    (at(2026, 12, 1), "2026-12", at(2026, 12, 1), at(2027, 1, 1)),
    (at(2026, 12, 31, 23, 59, 59, 999999), "2026-12", at(2026, 12, 1), at(2027, 1, 1)),
    (at(2027, 1, 1), "2027-01", at(2027, 1, 1), at(2027, 2, 1)),
    (at(2028, 2, 29, 8), "2028-02", at(2028, 2, 1), at(2028, 3, 1)),
])
def test_period_of_and_bounds(now, period, start, resets_at):
    assert allowances.period_of(now) == period
    assert allowances.period_bounds(now) == (start, resets_at)


def test_period_is_taken_in_utc_whatever_the_zone_of_now():
    """00:30 on the 1st in Jakarta (UTC+7) is still the previous month in UTC."""
    jakarta = timezone(timedelta(hours=7))
    now = datetime(2026, 4, 1, 0, 30, tzinfo=jakarta)
    assert allowances.period_of(now) == "2026-03"
    assert allowances.period_bounds(now) == (at(2026, 3, 1), at(2026, 4, 1))


def test_a_naive_now_is_taken_as_utc():
    assert allowances.period_of(datetime(2026, 12, 31, 23, 59)) == "2026-12"
    assert allowances.period_bounds(datetime(2026, 12, 31, 23, 59)) == (at(2026, 12, 1), at(2027, 1, 1))


# ---- grants ---------------------------------------------------------------------------------------------
def test_a_grant_credits_the_account_and_writes_one_ledger_entry(store, alice):
    answer = grant(store, alice, "12.5", "paid")
    assert answer == {"id": answer["id"], "organization_id": ORG, "type": "paid", "amount": "12.5000",
                      "remaining": "12.5000", "expires_at": None, "expired": False, "created_by": "alice",
                      "created_at": "2026-03-10T12:00:00.000000Z", "ledger_entry_id": answer["ledger_entry_id"]}
    assert account_balance(store) == 125000
    [entry] = entries(store)
    assert (entry.id, entry.kind, entry.amount, entry.balance_after, entry.actor_id, entry.actor_email,
            entry.grant_id, entry.grant_type) == (answer["ledger_entry_id"], "grant", 125000, 125000, "alice",
                                                  "alice@example.com", answer["id"], "paid")
    [event] = events(store, "credits.granted")
    assert event["after"] == {"type": "paid", "amount": "12.5000", "expires_at": None}
    assert event["actor"] == {"id": "alice", "email": "alice@example.com"}


def test_a_free_grant_keeps_its_expiry(store, alice):
    answer = grant(store, alice, "5", "free", expires_at="2026-04-01T00:00:00Z")
    assert answer["expires_at"] == "2026-04-01T00:00:00.000000Z"
    assert as_utc(grant_row(store, answer["id"]).expires_at) == at(2026, 4, 1)


def test_an_expiry_with_an_offset_is_kept_in_utc(store, alice):
    answer = grant(store, alice, "5", "free", expires_at="2026-04-01T07:00:00+07:00")
    assert answer["expires_at"] == "2026-04-01T00:00:00.000000Z"
    assert ledger.allowance_of(store, ORG, "alice", now=at(2026, 3, 31, 23, 59)).can_spend == units(5)
    assert ledger.allowance_of(store, ORG, "alice", now=at(2026, 4, 1)).can_spend == 0


# A grant's Idempotency-Key (replayed, or reused for another grant: 409) is the pipeline's: test_entrypoints.py.


# ---- validation of add_grant: its declared input (common.contracts.credits.GrantInput), then the domain's ----
def assert_nothing_written(store, org=ORG):
    assert entries(store, org) == []
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(Grant)) == 0
        assert session.scalar(select(func.count()).select_from(IdempotentRequest)) == 0
        assert session.scalar(select(func.count()).select_from(OutboxEvent)) == 0


@pytest.mark.parametrize("type", ["bonus", "FREE", "", None, "paid "])
def test_grant_type_must_be_free_or_paid(store, alice, type):
    with pytest.raises(ValidationFailed) as err:
        grant(store, alice, "1", type, key="k")
    assert (err.value.code, err.value.field) == ("invalid_grant_type", "type")
    assert_nothing_written(store)


def test_only_free_credit_may_expire(store, alice):
    with pytest.raises(ValidationFailed) as err:
        grant(store, alice, "1", "paid", expires_at="2026-12-31T00:00:00Z", key="k")
    assert (err.value.code, err.value.field) == ("expiry_only_for_free", "expires_at")
    assert_nothing_written(store)


@pytest.mark.parametrize("expires_at", ["2026-03-10T12:00:00Z", "2026-03-10T11:59:59.999999Z", "2020-01-01T00:00:00Z",
                                        "2026-03-10T18:59:00+07:00"])
def test_expiry_must_be_in_the_future(store, alice, expires_at):
    """At `now` itself is not in the future either (a grant that expires as it is made is useless)."""
    with pytest.raises(ValidationFailed) as err:
        grant(store, alice, "1", "free", expires_at=expires_at, key="k")
    assert (err.value.code, err.value.field) == ("expiry_in_past", "expires_at")
    assert_nothing_written(store)


@pytest.mark.parametrize("expires_at", ["tomorrow", "", "2026-13-01T00:00:00Z", 1767225600, ["2027-01-01"]])
def test_expiry_must_be_an_iso_time(store, alice, expires_at):
    with pytest.raises(ValidationFailed) as err:
        grant(store, alice, "1", "free", expires_at=expires_at, key="k")
    assert (err.value.code, err.value.field) == ("invalid_time", "expires_at")
    assert_nothing_written(store)


@pytest.mark.parametrize("amount, code", [("0", "invalid_amount"), ("-1", "invalid_amount"), (1.5, "invalid_amount"),
                                          (None, "amount_required"), ("0.00001", "too_many_decimal_places"),
                                          ("1000000000.0001", "amount_too_large")])
def test_grant_amount_is_checked(store, alice, amount, code):
    with pytest.raises(ValidationFailed) as err:
        grant(store, alice, amount, "paid", key="k")
    assert (err.value.code, err.value.field) == (code, "amount")
    assert_nothing_written(store)


def test_a_grant_over_the_most_an_account_may_hold_is_refused(store, alice):
    """An account one unit short of the most it may hold (set up through the models, ledger included, as
    1000 grants of the largest amount would be slow) takes one more unit; the next is refused and nothing
    of it is written."""
    with store.write() as session:
        session.add(Account(organization_id=ORG, balance=MAX_BALANCE_UNITS - 1, updated_at=T0))
        session.add(Grant(id="big", organization_id=ORG, type="paid", amount=MAX_BALANCE_UNITS - 1,
                          remaining=MAX_BALANCE_UNITS - 1, created_by="alice", created_at=T0))
        session.add(LedgerEntry(id="big-entry", organization_id=ORG, kind="grant", amount=MAX_BALANCE_UNITS - 1,
                                balance_after=MAX_BALANCE_UNITS - 1, actor_id="alice", grant_id="big",
                                grant_type="paid", occurred_at=T0))
    grant(store, alice, "0.0001", "paid", now=T0 + timedelta(seconds=1))
    assert account_balance(store) == MAX_BALANCE_UNITS
    with pytest.raises(ValidationFailed) as err:
        grant(store, alice, "0.0001", "free", key="over", now=T0 + timedelta(seconds=2))
    assert (err.value.code, err.value.field) == ("balance_limit", "amount")
    assert account_balance(store) == MAX_BALANCE_UNITS
    assert [e.id for e in entries(store)][0] == "big-entry" and len(entries(store)) == 2
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(Grant)) == 2
        assert session.get(IdempotentRequest, ("alice", "over")) is None
    assert len(events(store, "credits.granted")) == 1
    assert_invariant(store)


# ---- spend order ---------------------------------------------------------------------------------------
def allocation_of(entry_id, store):
    """The grants a spend drew from, as its ledger entry records them."""
    with store.read() as session:
        return session.scalar(select(LedgerEntry.allocations).where(LedgerEntry.id == entry_id))


# Each case: two grants of 5, `later` granted before `first`, which the spend order (product rules §4) draws from first.
@pytest.mark.parametrize("later, first", [
    pytest.param(dict(type="paid", now=T0 - timedelta(days=2)), dict(type="free", now=T0 - timedelta(days=1)),
                 id="free credit before paid credit, even older paid credit"),
    pytest.param(dict(type="free", expires_at="2026-06-01T00:00:00Z"),
                 dict(type="free", expires_at="2026-04-01T00:00:00Z"), id="the soonest expiring free grant first"),
    pytest.param(dict(type="free", now=T0 - timedelta(days=5)), dict(type="free", expires_at="2027-01-01T00:00:00Z"),
                 id="free credit without expiry after expiring free credit"),
    pytest.param(dict(type="paid", now=T0 - timedelta(hours=1)), dict(type="paid", now=T0 - timedelta(hours=2)),
                 id="paid credit oldest first"),
])
def test_a_spend_draws_first_from_the_grant_the_spend_order_puts_first(store, alice, later, first):
    later, first = grant(store, alice, "5", **later), grant(store, alice, "5", **first)
    answer = spend(store, alice, "1")["spend"]
    assert allocation_of(answer["id"], store) == [{"grant_id": first["id"], "type": first["type"], "amount": "1.0000"}]
    assert grant_row(store, first["id"]).remaining == units(4)
    assert grant_row(store, later["id"]).remaining == units(5)


def test_one_spend_across_several_grants_allocates_in_spend_order(store, alice):
    paid_new = grant(store, alice, "100", "paid", now=T0 - timedelta(days=1))
    paid_old = grant(store, alice, "3", "paid", now=T0 - timedelta(days=3))
    free_forever = grant(store, alice, "2.5", "free", now=T0 - timedelta(days=4))
    free_late = grant(store, alice, "1.25", "free", expires_at="2026-05-01T00:00:00Z", now=T0 - timedelta(days=2))
    free_soon = grant(store, alice, "0.0001", "free", expires_at="2026-04-01T00:00:00Z", now=T0 - timedelta(days=1))
    result = spend(store, alice, "10.0001")
    assert result["replayed"] is False
    assert allocation_of(result["spend"]["id"], store) == [
        {"grant_id": free_soon["id"], "type": "free", "amount": "0.0001"},
        {"grant_id": free_late["id"], "type": "free", "amount": "1.2500"},
        {"grant_id": free_forever["id"], "type": "free", "amount": "2.5000"},
        {"grant_id": paid_old["id"], "type": "paid", "amount": "3.0000"},
        {"grant_id": paid_new["id"], "type": "paid", "amount": "3.2500"},
    ]
    assert [grant_row(store, g["id"]).remaining for g in (free_soon, free_late, free_forever, paid_old, paid_new)] \
        == [0, 0, 0, 0, units(96.75)]
    assert account_balance(store) == units(96.75)
    assert assert_invariant(store) == units(96.75)


def test_a_spend_answer_and_its_ledger_entry(store, alice):
    grant(store, alice, "20", "paid")
    result = spend(store, alice, "2.5", now=T0 + timedelta(hours=1))
    answer = result["spend"]
    assert answer == {"id": answer["id"], "organization_id": ORG, "agent_id": AGENT, "user_id": "alice",
                      "amount": "2.5000", "occurred_at": "2026-03-10T13:00:00.000000Z",
                      "budget": {"budget_group_id": None, "budget_group_name": None, "limit": None, "used": "2.5000",
                                 "remaining": None, "period": "2026-03",
                                 "period_start": "2026-03-01T00:00:00.000000Z",
                                 "resets_at": "2026-04-01T00:00:00.000000Z"}}
    spend_entry = entries(store)[-1]
    assert (spend_entry.kind, spend_entry.amount, spend_entry.balance_after, spend_entry.actor_id,
            spend_entry.agent_id, spend_entry.grant_id) == ("spend", 25000, 175000, "alice", AGENT, None)
    assert usage(store, "alice", "2026-03") == 25000
    [event] = events(store, "credits.spent")
    assert event["after"] == {"amount": "2.5000", "agent_id": AGENT, "user_id": "alice"}


def test_a_spend_of_exactly_the_balance_leaves_zero(store, alice):
    grant(store, alice, "1.2345", "paid")
    spend(store, alice, "1.2345")
    assert account_balance(store) == 0
    error = refused(lambda: spend(store, alice, "0.0001"))
    assert error.code == "insufficient_credits"


@pytest.mark.parametrize("amount, code", [("0", "invalid_amount"), (0.5, "invalid_amount"), (None, "amount_required"),
                                          ("1.00001", "too_many_decimal_places")])
def test_spend_amount_is_checked(store, alice, amount, code):
    grant(store, alice, "5", "paid")
    with pytest.raises(ValidationFailed) as err:
        spend(store, alice, amount)
    assert (err.value.code, err.value.field) == (code, "amount")
    assert len(entries(store)) == 1


# ---- expiry --------------------------------------------------------------------------------------------
EXPIRES = "2026-04-01T00:00:00Z"
AFTER_EXPIRY = at(2026, 4, 1)          # expires_at itself: the credit no longer counts


def test_credit_counts_until_just_before_its_expiry(store, alice):
    grant(store, alice, "5", "free", expires_at=EXPIRES)
    just_before = AFTER_EXPIRY - timedelta(microseconds=1)
    assert ledger.allowance_of(store, ORG, "alice", now=just_before).can_spend == units(5)
    assert ledger.allowance_of(store, ORG, "alice", now=AFTER_EXPIRY).can_spend == 0
    spend(store, alice, "5", now=just_before)
    assert account_balance(store) == 0


def test_expired_credit_cannot_be_spent(store, alice):
    grant(store, alice, "5", "free", expires_at=EXPIRES)
    error = refused(lambda: spend(store, alice, "1", key="late", now=AFTER_EXPIRY))
    assert error.code == "insufficient_credits"
    assert error.details == {"requested": "1.0000"}
    # The spend is not in the ledger, and its key is free. The expired credit was written off first, in
    # its own transaction (by the system, as the expiry job would have): that stands.
    assert [(e.kind, e.actor_id) for e in entries(store)] == [("grant", "alice"), ("expiry", "system")]
    with store.read() as session:
        assert session.get(IdempotentRequest, ("alice", "late")) is None


def test_paid_credit_is_spent_while_free_credit_has_expired(store, alice):
    grant(store, alice, "5", "free", expires_at=EXPIRES)
    paid = grant(store, alice, "3", "paid")
    result = spend(store, alice, "2", now=AFTER_EXPIRY + timedelta(days=1))
    assert allocation_of(result["spend"]["id"], store) == [{"grant_id": paid["id"], "type": "paid", "amount": "2.0000"}]
    # The spend first wrote the expired free credit off, then charged.
    assert [(e.kind, e.amount, e.balance_after) for e in entries(store)] == [
        ("grant", units(5), units(5)), ("grant", units(3), units(8)), ("expiry", units(5), units(3)),
        ("spend", units(2), units(1))]
    assert_invariant(store)


def test_expired_credit_is_written_off_once_by_the_system(store, alice):
    free = grant(store, alice, "5", "free", expires_at=EXPIRES)
    grant(store, alice, "2", "paid")
    spend(store, alice, "1.5")                        # drawn from the free grant: 3.5 left in it
    later = AFTER_EXPIRY + timedelta(hours=3)
    assert ledger.settle_expiries(store, ORG, now=later) == 1
    assert ledger.settle_expiries(store, ORG, now=later + timedelta(days=1)) == 0
    expiries = [e for e in entries(store) if e.kind == "expiry"]
    assert len(expiries) == 1
    [item] = ledger.ledger_page(store, ORG, kind="expiry")["items"]
    assert item == {"id": expiries[0].id, "organization_id": ORG, "kind": "expiry", "amount": "3.5000",
                    "balance_after": "2.0000", "actor": {"id": "system"}, "user_id": None, "agent_id": None,
                    "grant_id": free["id"], "grant_type": "free", "allocations": None,
                    "occurred_at": "2026-04-01T03:00:00.000000Z"}
    row = grant_row(store, free["id"])
    assert (row.remaining, as_utc(row.expired_at)) == (0, later)
    assert account_balance(store) == units(2)
    [event] = events(store, "credits.expired")
    assert event["actor"] == {"id": "system"}
    assert (event["before"], event["after"]) == ({"remaining": "3.5000"},
                                                 {"remaining": "0.0000", "ledger_entry_id": expiries[0].id})
    assert_invariant(store)


def test_settling_before_the_expiry_does_nothing(store, alice):
    grant(store, alice, "5", "free", expires_at=EXPIRES)
    assert ledger.settle_expiries(store, ORG, now=AFTER_EXPIRY - timedelta(microseconds=1)) == 0
    assert [e.kind for e in entries(store)] == ["grant"]
    assert account_balance(store) == units(5)


def test_a_spend_writes_expired_credit_off_once_even_when_it_is_refused(store, alice):
    """The write-off runs in its own transaction before the spend's: a refused spend leaves it recorded,
    and settling later finds nothing more to write off (exactly once)."""
    grant(store, alice, "5", "free", expires_at=EXPIRES)
    refused(lambda: spend(store, alice, "1", now=AFTER_EXPIRY))
    assert ledger.settle_expiries(store, ORG, now=AFTER_EXPIRY) == 0
    assert [(e.kind, e.balance_after) for e in entries(store)] == [("grant", units(5)), ("expiry", 0)]
    assert len(events(store, "credits.expired")) == 1


def test_fully_spent_grants_produce_no_expiry_entry(store, alice):
    free = grant(store, alice, "5", "free", expires_at=EXPIRES)
    spend(store, alice, "5")
    assert ledger.settle_expiries(store, ORG, now=AFTER_EXPIRY) == 0
    assert ledger.expire_due_grants(store, now=AFTER_EXPIRY) == 0
    assert [e.kind for e in entries(store)] == ["grant", "spend"]
    assert grant_row(store, free["id"]).expired_at is None
    assert events(store, "credits.expired") == []


def test_several_expired_grants_are_written_off_in_expiry_order(store, alice):
    a = grant(store, alice, "1", "free", expires_at="2026-03-20T00:00:00Z")
    b = grant(store, alice, "2", "free", expires_at="2026-03-15T00:00:00Z")
    grant(store, alice, "4", "free", expires_at="2026-05-01T00:00:00Z")       # not due yet
    grant(store, alice, "8", "paid")
    assert ledger.settle_expiries(store, ORG, now=at(2026, 3, 25)) == 2
    expiries = [(e.grant_id, e.amount, e.balance_after) for e in entries(store) if e.kind == "expiry"]
    assert expiries == [(b["id"], units(2), units(13)), (a["id"], units(1), units(12))]
    assert_invariant(store)


def test_expire_due_grants_covers_every_organization(store, alice):
    grant(store, alice, "1", "free", expires_at="2026-03-20T00:00:00Z", org=ORG)
    grant(store, alice, "2", "free", expires_at="2026-03-21T00:00:00Z", org=ORG)
    grant(store, alice, "3", "free", expires_at="2026-03-22T00:00:00Z", org=OTHER_ORG)
    grant(store, alice, "4", "free", expires_at="2026-06-01T00:00:00Z", org=THIRD_ORG)   # not due
    grant(store, alice, "5", "paid", org=THIRD_ORG)
    assert ledger.expire_due_grants(store, now=at(2026, 4, 1)) == 3
    assert ledger.expire_due_grants(store, now=at(2026, 4, 1)) == 0
    assert (account_balance(store, ORG), account_balance(store, OTHER_ORG), account_balance(store, THIRD_ORG)) \
        == (0, 0, units(9))
    assert [e.kind for e in entries(store, THIRD_ORG)] == ["grant", "grant"]
    for org in (ORG, OTHER_ORG, THIRD_ORG):
        assert_invariant(store, org)


def test_expire_due_grants_caps_the_organizations_per_run(store, alice):
    for org in (ORG, OTHER_ORG, THIRD_ORG):
        grant(store, alice, "1", "free", expires_at="2026-03-20T00:00:00Z", org=org)
    assert ledger.expire_due_grants(store, now=at(2026, 4, 1), max_organizations=2) == 2
    assert ledger.expire_due_grants(store, now=at(2026, 4, 1), max_organizations=2) == 1


def test_expiry_is_also_written_off_before_a_grant(store, alice):
    grant(store, alice, "5", "free", expires_at=EXPIRES)
    grant(store, alice, "1", "paid", now=AFTER_EXPIRY)
    assert [(e.kind, e.amount, e.balance_after) for e in entries(store)] == [
        ("grant", units(5), units(5)), ("expiry", units(5), 0), ("grant", units(1), units(1))]


def test_credits_page_settles_and_shows_live_grants(store, alice):
    grant(store, alice, "5", "free", expires_at=EXPIRES)
    soon = grant(store, alice, "1", "free", expires_at="2026-03-31T00:00:00Z")
    paid = grant(store, alice, "3", "paid")
    spend(store, alice, "0.5", now=T0 + timedelta(minutes=1))
    page = ledger.credits_page(store, ORG, now=AFTER_EXPIRY)
    assert {k: v for k, v in page.items() if k != "grants"} == {
        "organization_id": ORG, "balance": "3.0000", "free_balance": "0.0000", "paid_balance": "3.0000",
        "spent_this_period": "0.0000", "period": "2026-04", "resets_at": "2026-05-01T00:00:00.000000Z",
        "active_grant_count": 1}
    assert [g["id"] for g in page["grants"]] == [paid["id"]]
    assert [e.kind for e in entries(store)].count("expiry") == 2
    assert grant_row(store, soon["id"]).remaining == 0
    march = ledger.credits_page(store, ORG, now=at(2026, 3, 31, 23))
    assert (march["spent_this_period"], march["balance"]) == ("0.5000", "3.0000")


# ---- month roll-over of the budget ---------------------------------------------------------------------
LAST_INSTANT = at(2026, 3, 31, 23, 59, 59, 999999)
NEXT_MONTH = at(2026, 4, 1)


def test_usage_resets_exactly_at_the_first_of_the_month_utc(store, alice, bob):
    grant(store, alice, "100", "paid")
    budget_group(store, alice, "10", ["bob"])
    spend(store, bob, "6", now=at(2026, 3, 31, 8))
    answer = spend(store, bob, "4", now=LAST_INSTANT)["spend"]
    assert answer["budget"]["period"] == "2026-03"
    assert (answer["budget"]["used"], answer["budget"]["remaining"]) == ("10.0000", "0.0000")
    assert usage(store, "bob", "2026-03") == units(10)
    error = refused(lambda: spend(store, bob, "0.0001", now=LAST_INSTANT))
    assert error.code == "budget_exceeded"

    assert ledger.allowance_of(store, ORG, "bob", now=NEXT_MONTH).used == 0
    answer = spend(store, bob, "10", now=NEXT_MONTH)["spend"]
    assert answer["budget"] == {"budget_group_id": answer["budget"]["budget_group_id"], "budget_group_name": "Team",
                                "limit": "10.0000", "used": "10.0000", "remaining": "0.0000", "period": "2026-04",
                                "period_start": "2026-04-01T00:00:00.000000Z",
                                "resets_at": "2026-05-01T00:00:00.000000Z"}
    assert (usage(store, "bob", "2026-03"), usage(store, "bob", "2026-04")) == (units(10), units(10))


def test_december_rolls_over_into_january_of_the_next_year(store, alice, bob):
    grant(store, alice, "100", "paid")
    budget_group(store, alice, "5", ["bob"])
    december = spend(store, bob, "5", now=at(2026, 12, 31, 23, 59, 59, 999999))["spend"]["budget"]
    assert (december["period"], december["period_start"], december["resets_at"]) \
        == ("2026-12", "2026-12-01T00:00:00.000000Z", "2027-01-01T00:00:00.000000Z")
    allowance = ledger.allowance_of(store, ORG, "bob", now=at(2027, 1, 1))
    assert (allowance.used, allowance.budget_left, allowance.can_spend) == (0, units(5), units(5))
    january = spend(store, bob, "5", now=at(2027, 1, 1))["spend"]["budget"]
    assert (january["period"], january["used"], january["resets_at"]) \
        == ("2027-01", "5.0000", "2027-02-01T00:00:00.000000Z")
    assert (usage(store, "bob", "2026-12"), usage(store, "bob", "2027-01")) == (units(5), units(5))


def test_budget_exceeded_names_the_limit_usage_and_reset(store, alice, bob):
    grant(store, alice, "100", "paid")
    group = budget_group(store, alice, "10", ["bob"], name="Nurses")
    spend(store, bob, "7.5", now=at(2026, 3, 5))
    error = refused(lambda: spend(store, bob, "3", now=at(2026, 3, 20)))
    assert (error.status, error.code, error.field) == (402, "budget_exceeded", "amount")
    assert error.details == {"budget_group_id": group["id"], "budget_group_name": "Nurses", "limit": "10.0000",
                             "used": "7.5000", "remaining": "2.5000", "requested": "3.0000", "period": "2026-03",
                             "period_start": "2026-03-01T00:00:00.000000Z",
                             "resets_at": "2026-04-01T00:00:00.000000Z"}
    assert "Nurses" in error.message and "2026-04-01T00:00:00.000000Z" in error.message
    assert account_balance(store) == units(92.5)


def test_usage_counts_per_member_not_per_group(store, alice, bob):
    grant(store, alice, "100", "paid")
    budget_group(store, alice, "10", ["bob", "carol"])
    spend(store, bob, "10")
    spend(store, CAROL, "10")              # carol has her own 10 this month
    assert (usage(store, "bob", "2026-03"), usage(store, "carol", "2026-03")) == (units(10), units(10))


def test_a_member_in_no_group_is_not_capped(store, alice, bob):
    grant(store, alice, "100", "paid")
    budget_group(store, alice, "1", ["carol"])
    spend(store, bob, "50")
    assert account_balance(store) == units(50)


def test_a_group_without_a_monthly_limit_caps_nothing(store, alice, bob):
    grant(store, alice, "100", "paid")
    group = budget_group(store, alice, None, ["bob"])
    answer = spend(store, bob, "60")["spend"]
    assert answer["budget"]["budget_group_id"] == group["id"]
    assert (answer["budget"]["limit"], answer["budget"]["remaining"], answer["budget"]["used"]) \
        == (None, None, "60.0000")


def test_a_zero_monthly_limit_refuses_every_spend(store, alice, bob):
    grant(store, alice, "100", "paid")
    budget_group(store, alice, "0", ["bob"])
    error = refused(lambda: spend(store, bob, "0.0001"))
    assert error.code == "budget_exceeded"
    assert (error.details["limit"], error.details["remaining"]) == ("0.0000", "0.0000")


# ---- idempotency of spends -----------------------------------------------------------------------------
def test_the_same_key_replays_the_first_answer_and_charges_once(store, alice):
    grant(store, alice, "10", "paid")
    first = spend(store, alice, "3", key="k-1")
    again = spend(store, alice, "3", key="k-1", now=T0 + timedelta(minutes=5))
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert again["spend"] == dict(first["spend"], idempotent_replayed=True)
    assert account_balance(store) == units(7)
    assert [e.kind for e in entries(store)] == ["grant", "spend"]
    assert usage(store, "alice", "2026-03") == units(3)
    assert len(events(store, "credits.spent")) == 1


def test_a_replay_is_answered_even_when_the_balance_is_gone(store, alice):
    """The retry of a spend that succeeded must not be refused because later spends used the rest."""
    grant(store, alice, "5", "paid")
    first = spend(store, alice, "3", key="k-1")
    spend(store, alice, "2", key="k-2")
    again = spend(store, alice, "3", key="k-1")
    assert (again["replayed"], again["spend"]) == (True, dict(first["spend"], idempotent_replayed=True))
    assert account_balance(store) == 0


# The key's fingerprint (the same key for another spend or a grant: 409; the same amount written
# differently: the same request) is the pipeline's: test_spends.py, through the entrypoint.


def test_a_refused_spend_stores_nothing_and_its_key_works_after_a_grant(store, alice):
    grant(store, alice, "1", "paid")
    error = refused(lambda: spend(store, alice, "2", key="k-1"))
    assert error.code == "insufficient_credits"
    with store.read() as session:
        assert session.get(IdempotentRequest, ("alice", "k-1")) is None
    assert usage(store, "alice", "2026-03") is None
    assert events(store, "credits.spent") == []
    grant(store, alice, "1", "paid", now=T0 + timedelta(minutes=1))
    result = spend(store, alice, "2", key="k-1", now=T0 + timedelta(minutes=2))
    assert (result["replayed"], result["spend"]["amount"]) == (False, "2.0000")
    assert account_balance(store) == 0


def test_keys_are_per_user(store, alice, bob):
    grant(store, alice, "10", "paid")
    mine = spend(store, alice, "3", key="shared")
    theirs = spend(store, bob, "4", key="shared")
    assert (mine["replayed"], theirs["replayed"]) == (False, False)
    assert (theirs["spend"]["user_id"], theirs["spend"]["amount"]) == ("bob", "4.0000")
    assert theirs["spend"]["id"] != mine["spend"]["id"]
    assert account_balance(store) == units(3)


# ---- the invariant -------------------------------------------------------------------------------------
def test_balance_equals_grants_and_ledger_after_a_mixed_sequence(store, alice, bob):
    budget_group(store, alice, "20", ["bob"])
    steps = [
        lambda: grant(store, alice, "10", "free", expires_at="2026-03-15T00:00:00Z", now=at(2026, 3, 1)),
        lambda: grant(store, alice, "7.1234", "paid", now=at(2026, 3, 2)),
        lambda: spend(store, bob, "3.0001", now=at(2026, 3, 3)),
        lambda: grant(store, alice, "2.5", "free", now=at(2026, 3, 4)),
        lambda: spend(store, alice, "1.9999", now=at(2026, 3, 5)),
        lambda: ledger.settle_expiries(store, ORG, now=at(2026, 3, 16)),     # 5 of the first grant expire
        lambda: spend(store, bob, "4", now=at(2026, 3, 17)),                  # 2.5 free + 1.5 paid
        lambda: grant(store, alice, "1", "free", expires_at="2026-04-10T00:00:00Z", now=at(2026, 3, 18)),
        lambda: spend(store, alice, "0.1234", now=at(2026, 3, 19)),
        lambda: grant(store, alice, "3", "paid", now=at(2026, 4, 11)),       # writes off the 0.8766 first
        lambda: spend(store, bob, "5", now=at(2026, 4, 12)),
    ]
    for step in steps:
        step()
        assert_invariant(store)
    assert [(e.kind, e.amount, e.balance_after) for e in entries(store)] == [
        ("grant", 100000, 100000), ("grant", 71234, 171234), ("spend", 30001, 141233), ("grant", 25000, 166233),
        ("spend", 19999, 146234), ("expiry", 50000, 96234), ("spend", 40000, 56234), ("grant", 10000, 66234),
        ("spend", 1234, 65000), ("expiry", 8766, 56234), ("grant", 30000, 86234), ("spend", 50000, 36234)]
    assert assert_invariant(store, now=at(2026, 4, 12)) == 36234
    assert (usage(store, "bob", "2026-03"), usage(store, "bob", "2026-04")) == (70001, 50000)


def test_spends_never_overdraw(store, alice, bob):
    grant(store, alice, "1", "paid")
    spend(store, alice, "0.6")
    error = refused(lambda: spend(store, bob, "0.5"))
    assert (error.code, error.details) == ("insufficient_credits", {"requested": "0.5000"})
    spend(store, bob, "0.4")
    assert account_balance(store) == 0
    assert_invariant(store)


# ---- allowance and refusals ----------------------------------------------------------------------------
def allowance(balance, used=0, limit=None, grouped=True):
    group = BudgetGroup(id="g", organization_id=ORG, name="Team", monthly_limit=limit) if grouped else None
    return allowances.Allowance(balance=balance, used=used, group=group, now=T0)


def test_allowance_without_a_group_is_the_balance():
    a = allowance(500, grouped=False)
    assert (a.budget_left, a.can_spend, a.binding_limit) == (None, 500, "balance")
    assert a.refusal(500) is None
    assert a.refusal(501).code == "insufficient_credits"


def test_allowance_when_only_the_balance_binds():
    a = allowance(300, used=100, limit=1000)          # 900 left in the budget
    assert (a.budget_left, a.can_spend, a.binding_limit) == (900, 300, "balance")
    error = a.refusal(301)
    assert (error.code, error.details) == ("insufficient_credits", {"requested": "0.0301"})


def test_allowance_when_only_the_budget_binds():
    a = allowance(5000, used=800, limit=1000)
    assert (a.budget_left, a.can_spend, a.binding_limit) == (200, 200, "budget_group")
    assert a.refusal(200) is None
    error = a.refusal(201)
    assert (error.code, error.details["remaining"], error.details["requested"]) \
        == ("budget_exceeded", "0.0200", "0.0201")


def test_when_both_bind_the_smaller_budget_is_named():
    a = allowance(300, used=800, limit=1000)          # budget 200 left < balance 300
    assert (a.can_spend, a.binding_limit) == (200, "budget_group")
    assert a.refusal(400).code == "budget_exceeded"


def test_when_both_bind_the_smaller_balance_is_named():
    a = allowance(100, used=800, limit=1000)          # balance 100 < budget 200 left
    assert (a.can_spend, a.binding_limit) == (100, "balance")
    assert a.refusal(400).code == "insufficient_credits"
    # An amount between the balance and the budget is the balance's fault too.
    assert a.refusal(150).code == "insufficient_credits"


def test_when_both_are_equal_the_budget_is_named():
    a = allowance(200, used=800, limit=1000)
    assert (a.can_spend, a.binding_limit) == (200, "budget_group")
    assert a.refusal(201).code == "budget_exceeded"


def test_used_over_a_lowered_limit_leaves_zero_not_negative():
    a = allowance(1000, used=1500, limit=1000)
    assert (a.budget_left, a.can_spend, a.binding_limit) == (0, 0, "budget_group")
    assert a.budget()["remaining"] == "0.0000"


def test_allowance_with_a_group_without_limit():
    a = allowance(700, used=50, limit=None)
    assert (a.budget_left, a.can_spend, a.binding_limit) == (None, 700, "balance")
    assert a.budget()["limit"] is None and a.budget()["used"] == "0.0050"


def test_allowance_of_reads_the_store(store, alice, bob):
    grant(store, alice, "30", "paid")
    group = budget_group(store, alice, "10", ["bob"])
    spend(store, bob, "4")
    a = ledger.allowance_of(store, ORG, "bob", now=T0)
    assert (a.balance, a.used, a.group.id, a.budget_left, a.can_spend, a.binding_limit) \
        == (units(26), units(4), group["id"], units(6), units(6), "budget_group")
    assert a.as_dict() == {"can_spend": "6.0000", "binding_limit": "budget_group", "budget": {
        "budget_group_id": group["id"], "budget_group_name": "Team", "limit": "10.0000", "used": "4.0000",
        "remaining": "6.0000", "period": "2026-03", "period_start": "2026-03-01T00:00:00.000000Z",
        "resets_at": "2026-04-01T00:00:00.000000Z"}}


def test_evaluate_spend_without_amount_only_tells_the_allowance(store, alice):
    grant(store, alice, "8", "paid")
    answer = spends.evaluate_spend(store, alice, ORG, AGENT, None, now=T0)
    assert answer == {"can_spend": "8.0000", "binding_limit": "balance", "budget": {
        "budget_group_id": None, "budget_group_name": None, "limit": None, "used": "0.0000", "remaining": None,
        "period": "2026-03", "period_start": "2026-03-01T00:00:00.000000Z",
        "resets_at": "2026-04-01T00:00:00.000000Z"},
        "dry_run": True, "organization_id": ORG, "agent_id": AGENT, "amount": None, "allowed": None,
        "refusal": None}


def test_evaluate_spend_with_an_amount_says_allowed_or_why_not_and_charges_nothing(store, alice, bob):
    grant(store, alice, "8", "paid")
    budget_group(store, alice, "5", ["bob"])
    ok = spends.evaluate_spend(store, bob, ORG, AGENT, "5", now=T0)
    assert (ok["amount"], ok["allowed"], ok["refusal"]) == ("5.0000", True, None)
    no = spends.evaluate_spend(store, bob, ORG, AGENT, "5.0001", now=T0)
    assert (no["allowed"], no["refusal"]["code"], no["refusal"]["field"]) == (False, "budget_exceeded", "amount")
    assert no["refusal"]["details"]["requested"] == "5.0001"
    broke = spends.evaluate_spend(store, alice, ORG, AGENT, "9", now=T0)
    assert (broke["allowed"], broke["refusal"]["code"]) == (False, "insufficient_credits")
    assert account_balance(store) == units(8)
    assert [e.kind for e in entries(store)] == ["grant"]
    with pytest.raises(ValidationFailed):
        spends.evaluate_spend(store, bob, ORG, AGENT, "-1", now=T0)


def test_evaluate_spend_ignores_expired_credit_without_writing_it_off(store, alice):
    grant(store, alice, "5", "free", expires_at=EXPIRES)
    answer = spends.evaluate_spend(store, alice, ORG, AGENT, "1", now=AFTER_EXPIRY)
    assert (answer["can_spend"], answer["allowed"], answer["refusal"]["code"]) \
        == ("0.0000", False, "insufficient_credits")
    assert [e.kind for e in entries(store)] == ["grant"]


def test_usage_by_organization_for_an_org_without_account(store):
    [item] = ledger.usage_by_organization(store, "bob", ["nowhere"], now=T0)
    assert item == {"organization_id": "nowhere", "can_spend": "0.0000", "binding_limit": "balance",
                    "used": "0.0000", "budget": {
                        "budget_group_id": None, "budget_group_name": None, "limit": None, "used": "0.0000",
                        "remaining": None, "period": "2026-03", "period_start": "2026-03-01T00:00:00.000000Z",
                        "resets_at": "2026-04-01T00:00:00.000000Z"}}
    assert account_balance(store, "nowhere") is None       # a read creates no account


def test_usage_by_organization_lists_each_organization_in_order(store, alice, bob):
    grant(store, alice, "50", "paid", org=ORG)
    grant(store, alice, "2", "paid", org=OTHER_ORG)
    budget_group(store, alice, "10", ["bob"], org=ORG)
    spend(store, bob, "3", org=ORG, now=at(2026, 3, 2))
    spend(store, bob, "1", org=OTHER_ORG, now=at(2026, 3, 2))
    spend(store, bob, "9", org=ORG, now=at(2026, 2, 27))         # last month: not counted
    items = ledger.usage_by_organization(store, "bob", [OTHER_ORG, ORG, "nowhere"], now=T0)
    assert [(i["organization_id"], i["used"], i["can_spend"], i["binding_limit"]) for i in items] == [
        (OTHER_ORG, "1.0000", "1.0000", "balance"), (ORG, "3.0000", "7.0000", "budget_group"),
        ("nowhere", "0.0000", "0.0000", "balance")]


# ---- ledger pages --------------------------------------------------------------------------------------
def five_entries(store, alice):
    """grant, grant, spend, spend, grant — at one-minute steps."""
    grant(store, alice, "10", "paid", now=T0)
    grant(store, alice, "5", "free", now=T0 + timedelta(minutes=1))
    spend(store, alice, "1", now=T0 + timedelta(minutes=2))
    spend(store, alice, "2", now=T0 + timedelta(minutes=3))
    grant(store, alice, "3", "paid", now=T0 + timedelta(minutes=4))
    return [e.id for e in entries(store)]


def test_ledger_is_newest_first(store, alice):
    ids = five_entries(store, alice)
    page = ledger.ledger_page(store, ORG)
    assert [i["id"] for i in page["items"]] == ids[::-1]
    assert [(i["kind"], i["amount"], i["balance_after"]) for i in page["items"]] == [
        ("grant", "3.0000", "15.0000"), ("spend", "2.0000", "12.0000"), ("spend", "1.0000", "14.0000"),
        ("grant", "5.0000", "15.0000"), ("grant", "10.0000", "10.0000")]
    assert page["next_cursor"] is None


def test_ledger_spend_item_shows_who_and_what(store, alice):
    five_entries(store, alice)
    item = ledger.ledger_page(store, ORG, kind="spend")["items"][0]
    assert {k: item[k] for k in ("actor", "user_id", "agent_id", "grant_id", "grant_type", "occurred_at")} == {
        "actor": {"id": "alice", "email": "alice@example.com"}, "user_id": "alice", "agent_id": AGENT,
        "grant_id": None, "grant_type": None, "occurred_at": "2026-03-10T12:03:00.000000Z"}
    assert len(item["allocations"]) == 1 and item["allocations"][0]["amount"] == "2.0000"


@pytest.mark.parametrize("kind, expected", [("grant", ["3.0000", "5.0000", "10.0000"]),
                                            ("spend", ["2.0000", "1.0000"]), ("expiry", [])])
def test_ledger_kind_filter(store, alice, kind, expected):
    five_entries(store, alice)
    page = ledger.ledger_page(store, ORG, kind=kind)
    assert [i["amount"] for i in page["items"]] == expected
    assert {i["kind"] for i in page["items"]} <= {kind}


@pytest.mark.parametrize("kind", ["grants", "Spend", "refund", ""])
def test_ledger_invalid_kind(store, alice, kind):
    with pytest.raises(ValidationFailed) as err:
        ledger.ledger_page(store, ORG, kind=kind)
    assert (err.value.status, err.value.code, err.value.field) == (422, "invalid_kind", "kind")


def test_ledger_keyset_paging_with_limit_two(store, alice):
    ids = five_entries(store, alice)
    seen, cursor, pages = [], None, 0
    while True:
        page = ledger.ledger_page(store, ORG, cursor=cursor, limit=2)
        pages += 1
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == ids[::-1]                 # every entry once, newest first


def test_ledger_paging_is_stable_when_entries_arrive_between_pages(store, alice):
    ids = five_entries(store, alice)
    first = ledger.ledger_page(store, ORG, limit=2)
    spend(store, alice, "0.5", now=T0 + timedelta(minutes=10))      # newer than everything on the first page
    second = ledger.ledger_page(store, ORG, cursor=first["next_cursor"], limit=2)
    assert [i["id"] for i in second["items"]] == [ids[2], ids[1]]


def test_ledger_paging_with_a_kind_filter(store, alice):
    five_entries(store, alice)
    first = ledger.ledger_page(store, ORG, kind="grant", limit=2)
    second = ledger.ledger_page(store, ORG, kind="grant", cursor=first["next_cursor"], limit=2)
    assert [i["amount"] for i in first["items"]] == ["3.0000", "5.0000"]
    assert [i["amount"] for i in second["items"]] == ["10.0000"]
    assert second["next_cursor"] is None


def test_ledger_of_another_organization_is_separate(store, alice):
    five_entries(store, alice)
    assert ledger.ledger_page(store, OTHER_ORG) == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("cursor", [
    "not-a-cursor!", "e30", "%%%", encode_cursor({"before": "3"}), encode_cursor({"before": True}),
    encode_cursor({"before": None}), encode_cursor({}), encode_cursor([1]), encode_cursor({"before": 1.5})])
def test_a_tampered_cursor_is_a_bad_request(store, alice, cursor):
    five_entries(store, alice)
    with pytest.raises(BadRequest) as err:
        ledger.ledger_page(store, ORG, cursor=cursor)
    assert (err.value.status, err.value.code, err.value.field) == (400, "invalid_cursor", "cursor")


@pytest.mark.parametrize("limit", [0, -1, 201, "2", True, 1.0])
def test_ledger_limit_is_checked(store, limit):
    with pytest.raises(ValidationFailed) as err:
        ledger.ledger_page(store, ORG, limit=limit)
    assert err.value.field == "limit"


def test_a_retried_free_grant_replays_even_after_its_expiry_passed(store, alice):
    """The expiry must be in the future when the grant is made; a retry of that same request, arriving
    after the expiry, gets the stored answer, not a 422."""
    first = grant(store, alice, "5", "free", expires_at=iso(T0 + timedelta(hours=1)), key="top-up")
    again = grant(store, alice, "5", "free", expires_at=iso(T0 + timedelta(hours=1)), key="top-up",
                  now=T0 + timedelta(hours=2))
    assert again == dict(first, idempotent_replayed=True)
    assert [e.kind for e in entries(store)] == ["grant"]
    with pytest.raises(ValidationFailed) as late:      # without the key it is a new grant, and too late
        grant(store, alice, "5", "free", expires_at=iso(T0 + timedelta(hours=1)), now=T0 + timedelta(hours=2))
    assert late.value.code == "expiry_in_past"
