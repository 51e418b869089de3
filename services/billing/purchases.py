"""Buying credit (SPEC §11): a transaction per payment attempt, charged at the provider, its credit granted
by credits exactly once per successful payment.

A purchase, a phased command (common.unit_of_work: the provider is called between transactions, never in
one), runs in this order so that no charge is ever lost or made twice:
1. the stored answer of an earlier request with the Idempotency-Key: the transaction it made, as it stands
   now (a retry never charges again; a declined one is declined again);
2. the transaction, `pending`, committed with the key's answer (its id);
3. the payment created at the provider (nothing charged), its id committed with the transaction;
4. the payment confirmed (the charge), then settled: `settle`.
A process that dies after 4 leaves a pending transaction whose payment the provider knows by id: the
provider's webhook or the reconciliation job (reconciliation.py) settles it. One that dies before 3's commit
charged nothing: the reconciliation cancels it.

`settle` is the one way a payment's outcome is recorded, whoever learnt it: a success asks credits for the
credit first (keyed by the transaction's id: granted once, however often asked; `grant` makes that call),
then marks the transaction `success`; a decline marks it `failed`; each status change is one event.
"""
import uuid

from common import idempotency
from common.contracts.billing import MIN_PURCHASE_CENTS
from common.errors import PaymentRequired, ValidationFailed
from common.money import format_amount
from common.timeutil import utcnow
from services.billing import payment_methods
from services.billing.events import (
    TRANSACTION_CANCELLED,
    TRANSACTION_CREATED,
    TRANSACTION_FAILED,
    TRANSACTION_SUCCEEDED,
    emit,
)
from services.billing.models import Customer, PaymentMethod, Transaction
from services.billing.provider import FAILED, PENDING, SUCCEEDED, UNCONFIRMED
from services.billing.schemas import transaction_dict, usd

MANUAL_PURCHASE, AUTO_TOPUP = "manual_purchase", "auto_topup"
MIN_TOPUP_CENTS = MIN_PURCHASE_CENTS
UNITS_PER_CENT = 100                # a credit is 10,000 units (common.money); a USD buys `price` credits


def credits_for(amount_cents, credits_per_usd):
    """The credit (in units) `amount_cents` buys: amount × price, exact."""
    return amount_cents * credits_per_usd * UNITS_PER_CENT


def payment_failed(transaction):
    return PaymentRequired(f"The payment was declined: {transaction.failure_message or transaction.failure_code}",
                           code="payment_failed", details={"decline_code": transaction.failure_code,
                                                           "transaction": transaction_dict(transaction)})


def answer(transaction):
    """A purchase's answer as its transaction stands: the transaction, or 402 payment_failed."""
    if transaction.status == "failed":
        raise payment_failed(transaction)
    return transaction_dict(transaction)


def replay(session, stored):
    """A retry's answer: the transaction the key made, as it stands now (marked replayed), or its 402."""
    return {**answer(session.get(Transaction, stored["transaction_id"])), idempotency.REPLAYED: True}


def purchase(uow, provider, grant, identity, organization_id, amount_cents, payment_method_id, credits_per_usd):
    with uow.read() as session:
        replayed = uow.replay(session)
        if replayed is not None:
            return replay(session, replayed)
        method = (payment_methods.live(session, organization_id, payment_method_id) if payment_method_id
                  else payment_methods.default_of(session, organization_id))
        if method is None:
            raise ValidationFailed("Add a payment method first.", code="no_payment_method", field="payment_method_id")
    customer = payment_methods.customer_id(uow, provider, organization_id)
    transaction = start(uow, identity.as_actor(), organization_id, MANUAL_PURCHASE, amount_cents,
                        credits_for(amount_cents, credits_per_usd), method)
    if transaction is None:                   # a twin request with the key got there first
        with uow.read() as session:
            return replay(session, uow.replay(session))
    return answer(charge(uow, provider, grant, transaction.id, customer))


def charge(uow, provider, grant, transaction_id, customer=None):
    """Steps 3 and 4 (see the module's text) for a pending transaction: the payment created at the provider
    and its id saved, then confirmed and settled. The transaction as it stands then."""
    with uow.read() as session:
        transaction = session.get(Transaction, transaction_id)
        method = session.get(PaymentMethod, transaction.payment_method_id)
        customer = customer or session.get(Customer, transaction.organization_id).provider_customer_id
    try:
        provider_id = provider.create_payment(transaction.id, customer, method.provider_payment_method_id,
                                              transaction.amount_cents)
    except Exception as error:                  # nothing was charged: the transaction ends here
        settle_failure(uow, transaction.id, getattr(error, "code", "payment_provider_error"), str(error))
        raise
    with uow.write() as session:
        session.get(Transaction, transaction.id, with_for_update=True).provider_payment_id = provider_id
    return settle(uow, grant, transaction.id, provider.confirm_payment(provider_id))


def start(uow, actor, organization_id, type, amount_cents, credits, method):
    """The transaction, pending, committed with the Idempotency-Key's answer; None if the key was taken
    meanwhile."""
    with uow.write() as session:
        if uow.replay(session) is not None:
            return None
        transaction = new_transaction(session, actor, organization_id, type, amount_cents, credits, method)
        uow.remember(session, {"transaction_id": transaction.id})
        return transaction


def new_transaction(session, actor, organization_id, type, amount_cents, credits, method):
    """A pending transaction and its event, in the session's transaction."""
    transaction = Transaction(
        id=str(uuid.uuid4()), organization_id=organization_id, type=type, status="pending",
        amount_cents=amount_cents, credits=credits, payment_method_id=method.id,
        payment_method_brand=method.brand, payment_method_last4=method.last4, created_by=actor["id"],
        created_by_email=actor.get("email") or None, created_at=utcnow())
    session.add(transaction)
    session.flush()
    emit(session, TRANSACTION_CREATED, "create", organization_id, actor, "transaction", transaction.id,
         after={"type": type, "status": "pending", "amount_usd": usd(amount_cents),
                "credits": format_amount(credits), "payment_method": f"{method.brand} {method.last4}"})
    return transaction


def settle(uow, grant, transaction_id, payment):
    """Record the payment's outcome (see the module's text); the transaction as it stands then."""
    if payment.status == SUCCEEDED:
        with uow.read() as session:
            transaction = session.get(Transaction, transaction_id)
        if transaction.status != "success":
            grant(transaction)              # credits, keyed by the transaction's id: once
        return _finish(uow, transaction_id, "success", TRANSACTION_SUCCEEDED)
    if payment.status == FAILED:
        return _finish(uow, transaction_id, "failed", TRANSACTION_FAILED, payment.failure_code,
                       payment.failure_message)
    if payment.status == UNCONFIRMED:         # the reconciliation cancels it once it is old enough
        with uow.read() as session:
            return session.get(Transaction, transaction_id)
    if payment.status == PENDING:
        with uow.write() as session:
            transaction = session.get(Transaction, transaction_id, with_for_update=True)
            if transaction.status == "pending":
                transaction.next_action = payment.next_action
            return transaction
    raise ValueError(payment.status)


def settle_failure(uow, transaction_id, code, message):
    """A payment that never reached the provider (it was away): failed, nothing charged."""
    return _finish(uow, transaction_id, "failed", TRANSACTION_FAILED, code, message[:500])


def cancel(uow, transaction_id, reason):
    """A pending transaction whose payment was never created at the provider (its process died first)."""
    return _finish(uow, transaction_id, "cancelled", TRANSACTION_CANCELLED, "never_charged", reason)


def _finish(uow, transaction_id, status, event_type, failure_code=None, failure_message=None):
    with uow.write() as session:
        transaction = session.get(Transaction, transaction_id, with_for_update=True)
        if transaction.status != "pending":
            return transaction              # settled already (by the answer, the webhook or the job)
        transaction.status, transaction.completed_at = status, utcnow()
        transaction.failure_code, transaction.failure_message = failure_code, failure_message
        transaction.next_action = None
        after = {"status": status}
        if failure_code:
            after.update(failure_code=failure_code, failure_message=failure_message)
        emit(session, event_type, "update", transaction.organization_id, buyer_of(transaction), "transaction",
             transaction.id, before={"status": "pending"}, after=after)
        from services.billing import auto_topup  # noqa: I001 (it builds on this module: imported when needed)
        auto_topup.after_settled(session, transaction)
        return transaction


def _creator(transaction):
    return {"id": transaction.created_by, "email": transaction.created_by_email}


def buyer_of(transaction):
    """Whom credits names as the grant's actor: the member who bought, or the system (auto top-up)."""
    return {"id": "system"} if transaction.type == AUTO_TOPUP else _creator(transaction)
