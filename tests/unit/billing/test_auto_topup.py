"""Auto top-up's decisions (services/billing/auto_topup.py) on a migrated SQLite store of the billing service, no
provider and no broker: when a spend's balance starts one, how it is sized, one pending at a time, the
monthly cap, stale balances, and three failures switching it off."""
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from common.timeutil import utcnow
from common.unit_of_work import effects_after_commit
from services.billing import auto_topup, purchases
from services.billing.models import AutoTopup, Customer, OutboxEvent, PaymentMethod, Transaction

ORG, PRICE = "org-1", 100                 # 100 credits per USD
UNITS = 10_000                            # units per credit (common.money)


@pytest.fixture
def store(make_store):
    store = make_store("billing")
    with store.write() as session:
        session.add(Customer(organization_id=ORG, provider_customer_id="cus_1", created_at=utcnow()))
        session.add(PaymentMethod(id="card-1", organization_id=ORG, provider_payment_method_id="pm_1", brand="visa",
                                  last4="4242", exp_month=12, exp_year=2030, is_default=True, created_by="alice",
                                  created_at=utcnow()))
        session.add(AutoTopup(organization_id=ORG, enabled=True, threshold=1000 * UNITS, target=5000 * UNITS,
                              monthly_cap_cents=None, consecutive_failures=0, updated_by="alice", updated_at=utcnow()))
    return store


def spent_to(store, balance_credits, at=None):
    """What a spend's event that left `balance_credits` does; the charges it asked for after the commit."""
    charged = []
    event = {"event_id": str(uuid.uuid4()), "type": "credits.balance_low", "organization_id": ORG,
             "occurred_at": at or utcnow(), "state": {"balance": [{"organization_id": ORG,
                                                                  "balance": str(balance_credits)}]}}
    if not auto_topup.may_start(store, event):
        return charged
    with store.write() as session:
        auto_topup.on_balance_low(session, charged.append, event, PRICE)
        after = effects_after_commit(session)
    for effect in after:                    # as the one reaction rule runs them (common.inbox)
        effect()
    return charged


def transactions(store):
    with store.read() as session:
        return session.scalars(select(Transaction).order_by(Transaction.created_at)).all()


def test_a_spend_at_or_below_the_threshold_starts_one_top_up_sized_to_the_target(store):
    assert spent_to(store, "1000.5") == []                                  # above: nothing
    [charged] = spent_to(store, "999")
    [topup] = transactions(store)
    assert (topup.id, topup.type, topup.status, topup.created_by) == (charged, "auto_topup", "pending", "system")
    assert (topup.amount_cents, topup.credits) == (4001, 4001 * UNITS)      # 40.01 USD: back to 5000 at once
    assert spent_to(store, "998") == [] and len(transactions(store)) == 1  # one pending at a time


def test_a_top_up_is_at_least_the_minimum_purchase(store):
    with store.write() as session:
        session.get(AutoTopup, ORG).target = 1001 * UNITS
    spent_to(store, "1000")
    assert transactions(store)[0].amount_cents == purchases.MIN_TOPUP_CENTS


def test_a_balance_from_before_the_last_top_ups_credit_starts_nothing(store):
    spent_to(store, "999")
    with store.write() as session:
        topup = session.scalars(select(Transaction)).one()
        topup.status, topup.completed_at = "success", utcnow()
    assert spent_to(store, "990", at=utcnow() - timedelta(seconds=5)) == []     # made before the credit came in
    assert len(spent_to(store, "990")) == 1                                      # a spend after it: a new one


def test_the_monthly_cap_is_never_passed_and_said_once(store):
    with store.write() as session:
        session.get(AutoTopup, ORG).monthly_cap_cents = 3000                     # 30.00 USD
    assert spent_to(store, "999") == []                                          # 40.01 USD would pass it
    assert spent_to(store, "998") == []
    with store.read() as session:
        said = [e.type for e in session.scalars(select(OutboxEvent))]
    assert said.count("auto_topup.cap_reached") == 1 and transactions(store) == []


def test_three_failures_in_a_row_switch_it_off_and_a_success_resets_the_count(store):
    def settle(status):
        with store.write() as session:
            topup = session.scalars(select(Transaction).where(Transaction.status == "pending")).one()
            topup.status, topup.completed_at = status, datetime.now(UTC)
            auto_topup.after_settled(session, topup)
    spent_to(store, "999")
    settle("failed")
    spent_to(store, "998")
    settle("success")
    with store.read() as session:
        assert session.get(AutoTopup, ORG).consecutive_failures == 0
    for balance in ("997", "996", "995"):
        spent_to(store, balance)
        settle("failed")
    with store.read() as session:
        settings = session.get(AutoTopup, ORG)
        said = [e.type for e in session.scalars(select(OutboxEvent))]
    assert (settings.enabled, settings.consecutive_failures) == (False, 3)
    assert said.count("auto_topup.disabled") == 1 and said.count("auto_topup.failed") == 4
    assert spent_to(store, "900") == []                                          # off: nothing more


def test_a_removed_card_named_by_the_settings_starts_nothing_and_refuses_nothing(store):
    """The reaction must not fail (a refusal would requeue the event for ever): no card, no top-up."""
    with store.write() as session:
        session.get(AutoTopup, ORG).payment_method_id = "card-1"
        session.get(PaymentMethod, "card-1").removed_at = utcnow()
    assert spent_to(store, "999") == [] and transactions(store) == []
