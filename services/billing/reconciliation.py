"""Pending transactions settled from the provider's side: its signed webhook, and a periodic job that asks
it about every transaction still pending, so a lost answer and a lost webhook both end in the right state
(SPEC §11). Both settle through purchases.settle, so a payment is recorded, and its credit granted, once."""
from datetime import timedelta

from sqlalchemy import select

from common.config import settings
from common.timeutil import as_utc, utcnow
from services.billing import purchases
from services.billing.models import Transaction
from services.billing.provider import UNCONFIRMED

# The provider's events about a payment; any other is acknowledged and ignored.
PAYMENT_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled",
                  "payment_intent.requires_action")
# A pending transaction without a payment at the provider after this long was left by a process that died
# before creating it: nothing was charged (a purchase goes from one step to the next within the gateway's
# 10 s): four runs of the job, at least 20 s (2 minutes with the default BILLING_RECONCILE_SECONDS).
def uncharged_after():
    return timedelta(seconds=max(20.0, 4 * settings().payments.reconcile_seconds))
BATCH = 100


def handle_webhook(uow, provider, grant, payload, signature):
    """The provider's signed event (400 invalid_signature otherwise): the payment it names looked up at the
    provider (the event may be old or out of order) and settled. {"received": True, "transaction_id"}."""
    event = provider.webhook_event(payload, signature)
    if event.type not in PAYMENT_EVENTS:
        return {"received": True, "transaction_id": None}
    provider_id = event.data.object.id
    with uow.read() as session:
        transaction_id = session.scalar(select(Transaction.id).where(Transaction.provider_payment_id == provider_id))
    if transaction_id is None:      # not ours, or its id not saved yet: the job settles it then
        return {"received": True, "transaction_id": None}
    purchases.settle(uow, grant, transaction_id, provider.payment(provider_id))
    return {"received": True, "transaction_id": transaction_id}


def reconcile(uow, provider, grant, now=None):
    """Settle what the provider knows of every pending transaction (a batch); cancel those it never saw.
    Returns how many changed status."""
    now = now or utcnow()
    with uow.read() as session:
        pending = session.execute(select(Transaction.id, Transaction.provider_payment_id, Transaction.created_at)
                                  .where(Transaction.status == "pending").order_by(Transaction.created_at)
                                  .limit(BATCH)).all()
    changed = 0
    for transaction_id, provider_id, created_at in pending:
        old = as_utc(created_at) <= now - uncharged_after()
        if provider_id is None:
            if old:
                purchases.cancel(uow, transaction_id, "The payment was never sent to the provider.")
                changed += 1
            continue
        payment = provider.payment(provider_id)
        if payment.status == UNCONFIRMED:
            if old:                     # its process died before the charge: nothing was charged, and never will be
                provider.cancel_payment(provider_id)
                purchases.cancel(uow, transaction_id, "The payment was never confirmed at the provider.")
                changed += 1
            continue
        settled = purchases.settle(uow, grant, transaction_id, payment)
        changed += settled.status != "pending"
    return changed
