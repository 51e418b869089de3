"""Auto top-up (SPEC §11): credit bought by itself when spends take the balance to or below a threshold.

Billing hears of the spends that leave the balance at or below the threshold: credits keeps the threshold
beside its alert settings and emits credits.balance_low with the balance (common.event_types.BALANCE_STATE),
so the spend path gains nothing. An event that cannot start a top-up (auto top-up switched off meanwhile, or
a balance above a threshold raised meanwhile) costs billing one read and no write. One that
finds the balance at or below the threshold starts a top-up in the reaction's transaction: a pending
`auto_topup` transaction sized to bring the balance back to the target in one charge (at least 5.00 USD).
A unique index keeps one pending at a time per organization, whatever number of spends cross together;
the monthly cap is never passed (then none starts, and `auto_topup.cap_reached` is raised once a month).
The charge runs once the reaction is saved (common.unit_of_work.after_commit), as a purchase's does
(purchases.charge). A failed top-up counts; three in a row switch auto top-up off (`auto_topup.disabled`,
actor system); a success resets the count. Enabling it at or below the threshold starts one at once.
"""
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from common.event_types import AUTO_TOPUP_STATE, BALANCE_STATE
from common.money import format_amount, parse_amount
from common.timeutil import as_utc, parse_iso, utcnow
from common.unit_of_work import after_commit
from services.billing import payment_methods, purchases
from services.billing.events import (
    AUTO_TOPUP_CAP_REACHED,
    AUTO_TOPUP_DISABLED,
    AUTO_TOPUP_FAILED,
    AUTO_TOPUP_UPDATED,
    emit,
)
from services.billing.models import AutoTopup, Customer, PaymentMethod, Transaction
from services.billing.schemas import usd

FAILURES_BEFORE_OFF = 3
SYSTEM = {"id": "system"}


def settings_dict(row):
    if row is None:
        return {"enabled": False, "threshold": None, "target": None, "monthly_cap_usd": None,
                "payment_method_id": None, "consecutive_failures": 0}
    return {"enabled": row.enabled, "threshold": format_amount(row.threshold), "target": format_amount(row.target),
            "monthly_cap_usd": usd(row.monthly_cap_cents) if row.monthly_cap_cents is not None else None,
            "payment_method_id": row.payment_method_id, "consecutive_failures": row.consecutive_failures}


def topup_state(row):
    """What credits keeps of the settings (common.event_types.AUTO_TOPUP_STATE)."""
    return {AUTO_TOPUP_STATE: [{"organization_id": row.organization_id, "enabled": row.enabled,
                                "threshold": format_amount(row.threshold)}]}


def get(store, organization_id):
    with store.read() as session:
        return settings_dict(session.get(AutoTopup, organization_id))


def put(uow, charge, current_balance, identity, organization_id, values, credits_per_usd):
    """Replace the settings (audited); enabling them at or below the threshold starts a top-up at once
    (`charge(transaction_id)` charges it once saved). `current_balance()`: the balance now, asked of credits
    when auto top-up is switched on (billing's own knows it only as fast as credits' events arrive: a grant
    made a moment before would be missed)."""
    balance = current_balance() if values["enabled"] else None
    with uow.write() as session:
        if values["payment_method_id"] is not None:
            payment_methods.live(session, organization_id, values["payment_method_id"])
        row = session.get(AutoTopup, organization_id, with_for_update=True)
        before = settings_dict(row)
        if row is None:
            row = AutoTopup(organization_id=organization_id, consecutive_failures=0)
            session.add(row)
        row.enabled, row.threshold, row.target = values["enabled"], values["threshold"], values["target"]
        row.monthly_cap_cents, row.payment_method_id = values["monthly_cap_usd"], values["payment_method_id"]
        if row.enabled and not before["enabled"]:
            row.consecutive_failures = 0
        row.updated_by, row.updated_at = identity.id, utcnow()
        after = settings_dict(row)
        changed = {k: after[k] for k in after if after[k] != before[k] and k != "consecutive_failures"}
        if changed:
            emit(session, AUTO_TOPUP_UPDATED, "update", organization_id, identity, "auto_topup", organization_id,
                 before={k: before[k] for k in changed}, after=changed, state=topup_state(row))
        if balance is not None:
            start_if_due(session, charge, row, balance, credits_per_usd)
        return after


def balance_of(event):
    """(balance in units, when) a spend's event carries (common.event_types.BALANCE_STATE), or None."""
    for state in (event.get("state") or {}).get(BALANCE_STATE) or []:
        if state.get("organization_id") == event["organization_id"]:
            at = event["occurred_at"]           # a datetime once the consumer parsed the event
            return parse_amount(state["balance"], allow_zero=True), parse_iso(at) if isinstance(at, str) else as_utc(at)
    return None


def may_start(store, event):
    """Whether a spend's event may start a top-up: its organization has auto top-up on and the balance it left
    is at or below the threshold. One read, no write: most spends' events end here (the one reaction rule
    records an event in the transaction of its effect, and these have none)."""
    found = balance_of(event)
    if found is None:
        return False
    with store.read() as session:
        settings = session.get(AutoTopup, event["organization_id"])
        return settings is not None and settings.enabled and found[0] <= settings.threshold


def on_balance_low(session, charge, event, credits_per_usd):
    """A spend's event that may start a top-up (may_start): decided again in the reaction's transaction."""
    found = balance_of(event)
    settings = session.get(AutoTopup, event["organization_id"], with_for_update=True)
    if found is not None and settings is not None:
        start_if_due(session, charge, settings, found[0], credits_per_usd, as_of=found[1])


def start_if_due(session, charge, settings, balance, credits_per_usd, as_of=None, now=None):
    """The pending top-up (its charge asked for after the commit), or None: off, above the threshold, a
    balance from before the last top-up's credit (`as_of`: when it was the balance), one pending already, no
    card, or the monthly cap reached."""
    if not settings.enabled or balance > settings.threshold:
        return None
    now = now or utcnow()
    organization_id = settings.organization_id
    if as_of is not None and last_topped_up(session, organization_id) >= as_of:
        return None                         # that balance is from before the last top-up's credit
    unit_price = credits_per_usd * purchases.UNITS_PER_CENT          # units one cent buys
    cents = max(purchases.MIN_TOPUP_CENTS, -(-(settings.target - balance) // unit_price))
    if settings.monthly_cap_cents is not None and spent_this_month(session, organization_id, now) + cents > \
            settings.monthly_cap_cents:
        cap_reached(session, settings, now)
        return None
    method = chosen_card(session, settings)
    if method is None or session.get(Customer, organization_id) is None:
        return None
    try:
        with session.begin_nested():        # the unique index: one pending top-up per organization
            transaction = purchases.new_transaction(session, SYSTEM, organization_id, purchases.AUTO_TOPUP, cents,
                                                    purchases.credits_for(cents, credits_per_usd), method)
    except IntegrityError:
        return None
    after_commit(session, lambda: charge(transaction.id))
    return transaction


def last_topped_up(session, organization_id):
    """When the last successful top-up's credit came in (a time before any, if none)."""
    latest = session.scalar(select(func.max(Transaction.completed_at)).where(
        Transaction.organization_id == organization_id, Transaction.type == purchases.AUTO_TOPUP,
        Transaction.status == "success"))
    return as_utc(latest) if latest is not None else datetime.min.replace(tzinfo=UTC)


def chosen_card(session, settings):
    """The card a top-up is charged to: the one the settings name while it is still the organization's, else
    none; the default one when they name none. Never a refusal: this runs in a reaction, where one would
    requeue the event for ever (the card the settings name was checked when they were saved; it may be gone)."""
    if settings.payment_method_id is None:
        return payment_methods.default_of(session, settings.organization_id)
    method = session.get(PaymentMethod, settings.payment_method_id)
    live = method is not None and method.organization_id == settings.organization_id and method.removed_at is None
    return method if live else None


def spent_this_month(session, organization_id, now):
    month_start = datetime(now.year, now.month, 1, tzinfo=now.tzinfo)
    return session.scalar(select(func.coalesce(func.sum(Transaction.amount_cents), 0)).where(
        Transaction.organization_id == organization_id, Transaction.type == purchases.AUTO_TOPUP,
        Transaction.status.in_(("pending", "success")), Transaction.created_at >= month_start)) or 0


def cap_reached(session, settings, now):
    """Once per calendar month: the event (audited) that no top-up starts until the next month."""
    period = now.strftime("%Y-%m")
    if settings.cap_reached_period == period:
        return
    settings.cap_reached_period = period
    emit(session, AUTO_TOPUP_CAP_REACHED, "update", settings.organization_id, SYSTEM, "auto_topup",
         settings.organization_id, after={"period": period, "monthly_cap_usd": usd(settings.monthly_cap_cents)})


def after_settled(session, transaction):
    """In the transaction that settled an automatic top-up: count its failure, or reset the count."""
    if transaction.type != purchases.AUTO_TOPUP:
        return
    settings = session.get(AutoTopup, transaction.organization_id, with_for_update=True)
    if settings is None:
        return
    if transaction.status == "success":
        settings.consecutive_failures = 0
        return
    settings.consecutive_failures += 1
    emit(session, AUTO_TOPUP_FAILED, "update", transaction.organization_id, SYSTEM, "auto_topup",
         transaction.organization_id, after={"transaction_id": transaction.id, "failure_code": transaction.failure_code,
                                             "consecutive_failures": settings.consecutive_failures})
    if settings.enabled and settings.consecutive_failures >= FAILURES_BEFORE_OFF:
        settings.enabled = False
        emit(session, AUTO_TOPUP_DISABLED, "update", transaction.organization_id, SYSTEM, "auto_topup",
             transaction.organization_id, before={"enabled": True}, state=topup_state(settings),
             after={"enabled": False, "consecutive_failures": settings.consecutive_failures,
                    "reason": f"{FAILURES_BEFORE_OFF} top-ups in a row failed"})
