"""Time in the credits ledger, on each real database (SQLite and PostgreSQL): month roll-over of budget
usage, expiry of free credit and the spend order. Time is injected (the domain functions take `now`; the
commands run as the pipeline runs them, tests/unit/credits/domain.py), never slept; the databases are the
running system's own credits database (fresh organization ids).

The dates are far in the future on purpose: the running system's expiry job writes off credit whose
date has passed by the real clock, and must not race these tests."""
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from common.auth import Identity
from common.db import Store
from common.errors import PaymentRequired
from services.credits import ledger
from tests.unit.credits import domain

UTC = UTC


@pytest.fixture
def ledger_store(system):
    return Store(system.database_url("credits"))


def people():
    suffix = uuid.uuid4().hex[:8]
    return (Identity(f"owner-{suffix}", f"owner-{suffix}@example.com", "Owner"),
            Identity(f"member-{suffix}", f"member-{suffix}@example.com", "Member"), f"org-{suffix}")


def capped(store, owner, org, member, limit, now):
    group = domain.create_group(store, owner, org, {"name": "Capped", "monthly_limit": limit}, now=now)
    domain.assign_member(store, owner, org, group["id"], member.id, now=now)
    return group


def test_budget_usage_resets_on_the_first_of_the_month(ledger_store):
    owner, member, org = people()
    last_moment = datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    domain.add_grant(ledger_store, owner, org, "100", "paid", now=last_moment - timedelta(days=40))
    capped(ledger_store, owner, org, member, "3", last_moment - timedelta(days=40))

    domain.spend(ledger_store, member, org, "agent", "2", "a", now=last_moment - timedelta(days=1))
    with pytest.raises(PaymentRequired) as refused:
        domain.spend(ledger_store, member, org, "agent", "1.0001", "b", now=last_moment)
    assert refused.value.code == "budget_exceeded"
    assert (refused.value.details["used"], refused.value.details["resets_at"]) == \
        ("2.0000", "2100-01-01T00:00:00.000000Z")
    domain.spend(ledger_store, member, org, "agent", "1", "c", now=last_moment)     # exactly up to the limit

    new_year = datetime(2100, 1, 1, tzinfo=UTC)
    allowance = ledger.allowance_of(ledger_store, org, member.id, now=new_year)
    assert (allowance.used, allowance.can_spend, allowance.binding_limit) == (0, 3 * 10000, "budget_group")
    answer = domain.spend(ledger_store, member, org, "agent", "3", "d", now=new_year)["spend"]
    assert answer["budget"]["period"] == "2100-01" and answer["budget"]["used"] == "3.0000"
    # December's usage stays what it was: a new month never rewrites the past.
    assert ledger.allowance_of(ledger_store, org, member.id, now=last_moment).used == 3 * 10000
    assert ledger.credits_page(ledger_store, org, now=new_year)["spent_this_period"] == "3.0000"


def test_expired_free_credit_is_not_spendable_and_written_off_once(ledger_store):
    owner, member, org = people()
    start = datetime(2099, 11, 1, tzinfo=UTC)
    expiry = start + timedelta(days=10)
    free = domain.add_grant(ledger_store, owner, org, "5", "free", expires_at=expiry.isoformat(), now=start)
    domain.add_grant(ledger_store, owner, org, "1", "paid", now=start)
    domain.spend(ledger_store, member, org, "agent", "2", "before", now=expiry - timedelta(microseconds=1))

    with pytest.raises(PaymentRequired) as refused:       # 3 free left, but expired: only 1 paid counts
        domain.spend(ledger_store, member, org, "agent", "1.5", "after", now=expiry)
    assert refused.value.code == "insufficient_credits"
    # The spend wrote the expired credit off first, in its own transaction: settling finds nothing more.
    assert ledger.settle_expiries(ledger_store, org, now=expiry) == 0
    assert ledger.settle_expiries(ledger_store, org, now=expiry + timedelta(days=1)) == 0
    entries = ledger.ledger_page(ledger_store, org)["items"]
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in entries] == [
        ("expiry", "3.0000", "1.0000"), ("spend", "2.0000", "4.0000"), ("grant", "1.0000", "6.0000"),
        ("grant", "5.0000", "5.0000")]
    assert entries[0]["grant_id"] == free["id"] and entries[0]["actor"] == {"id": "system"}
    assert ledger.credits_page(ledger_store, org, now=expiry)["balance"] == "1.0000"
    domain.spend(ledger_store, member, org, "agent", "1", "paid", now=expiry)
    assert ledger.credits_page(ledger_store, org, now=expiry)["balance"] == "0.0000"


def test_spends_take_free_credit_first_then_the_soonest_expiring(ledger_store):
    owner, member, org = people()
    now = datetime(2099, 11, 23, tzinfo=UTC)
    paid_old = domain.add_grant(ledger_store, owner, org, "1", "paid", now=now - timedelta(days=2))
    paid_new = domain.add_grant(ledger_store, owner, org, "1", "paid", now=now - timedelta(days=1))
    free_forever = domain.add_grant(ledger_store, owner, org, "1", "free", now=now)
    free_late = domain.add_grant(ledger_store, owner, org, "1", "free", expires_at="2100-06-01T00:00:00Z", now=now)
    free_soon = domain.add_grant(ledger_store, owner, org, "1", "free", expires_at="2099-12-01T00:00:00Z", now=now)
    domain.spend(ledger_store, member, org, "agent", "4.5", "all-but-half", now=now)
    spend = ledger.ledger_page(ledger_store, org, kind="spend")["items"][0]
    assert [(a["grant_id"], a["amount"]) for a in spend["allocations"]] == [
        (free_soon["id"], "1.0000"), (free_late["id"], "1.0000"), (free_forever["id"], "1.0000"),
        (paid_old["id"], "1.0000"), (paid_new["id"], "0.5000")]
