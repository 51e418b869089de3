"""Nameko entrypoints of the billing service: thin; payment methods in payment_methods.py, purchases and the
one way a payment is settled in purchases.py, the provider's webhook and the reconciliation job in
reconciliation.py, the transactions list in transactions.py; the provider itself (Stripe's SDK, pointed
at localstripe unless STRIPE_API_KEY is set) in provider.py.

Who may do what is decided by the pipeline (common.commands) on billing's read model of memberships
(Owner and Billing: Action.MANAGE_PAYMENTS; an API key with usage:read may list transactions). Commands that
call the provider are phased (`phases=True`): the provider is called between transactions, never inside one.
A successful payment's credit is granted by credits (`grant_payment`, keyed by the transaction's id),
called as the system: only the platform may grant paid credit.
"""
import logging

from nameko.timer import timer

from common.auth import Auth
from common.commands import CREDENTIAL, REQUIRED, command, query
from common.config import settings
from common.contracts.billing import AutoTopupInput, PaymentMethodInput, PurchaseInput, TransactionFilters
from common.db import Database
from common.events import BILLING_QUEUE, change_event_or_none
from common.framework.consume import consume
from common.heap import FrozenStartupHeap
from common.membership_facts import MembershipFacts
from common.money import format_amount, parse_amount
from common.outbox import OutboxRelay
from common.permissions import Action, Scope
from common.readmodels import ReadModelFill
from common.rpc import call, service_proxy
from common.unit_of_work import UnitOfWork
from services.billing import auto_topup, payment_methods, purchases, reactions, reconciliation, transactions
from services.billing.models import READ_MODELS, HandledRequest, IdempotentRequest, OutboxEvent
from services.billing.provider import Stripe

log = logging.getLogger(__name__)

RECONCILE_SECONDS = settings().payments.reconcile_seconds


class BillingService:
    name = "billing"

    auth = Auth()
    heap = FrozenStartupHeap()      # common.heap: fewer long garbage-collector pauses under load
    db = Database(handled_requests=HandledRequest, idempotent_requests=IdempotentRequest)
    outbox = OutboxRelay(OutboxEvent)
    members = service_proxy("members")      # only to confirm refusals (common.membership_facts)
    credits = service_proxy("credits")      # grant_payment: a successful payment's credit
    memberships = MembershipFacts(READ_MODELS, owner="members")
    fill = ReadModelFill(READ_MODELS)

    @property
    def provider(self):
        return Stripe()

    @query(CREDENTIAL)
    def ping(self, caller):
        self.fill.check()       # degraded until the read model was first filled from members
        return "pong"

    # ---- payment methods ---------------------------------------------------------------------------
    @command(Action.MANAGE_PAYMENTS, input=PaymentMethodInput, phases=True)
    def add_payment_method(self, caller, uow, organization_id, provider_payment_method_id):
        return payment_methods.add(uow, self.provider, caller.identity, organization_id, provider_payment_method_id)

    @query(Action.MANAGE_PAYMENTS)
    def list_payment_methods(self, caller, organization_id, cursor=None, limit=None):
        return payment_methods.page(self.db, organization_id, cursor, limit)

    @command(Action.MANAGE_PAYMENTS)
    def set_default_payment_method(self, caller, session, organization_id, payment_method_id):
        return payment_methods.set_default(session, caller.identity, organization_id, payment_method_id)

    @command(Action.MANAGE_PAYMENTS, phases=True)
    def remove_payment_method(self, caller, uow, organization_id, payment_method_id):
        return payment_methods.remove(uow, self.provider, caller.identity, organization_id, payment_method_id)

    # ---- purchases and transactions ----------------------------------------------------------------
    @command(Action.MANAGE_PAYMENTS, idempotency=REQUIRED, input=PurchaseInput, phases=True)
    def purchase(self, caller, uow, organization_id, amount_usd, idempotency_key, payment_method_id=None):
        """Buy `amount_usd` (cents, as the contract loaded it) of credit: the transaction, `success` with
        its credit in the balance, `pending` with what the client must do (3-D Secure), or 402
        payment_failed. The same key never charges twice."""
        return purchases.purchase(uow, self.provider, self._grant, caller.identity, organization_id, amount_usd,
                                  payment_method_id, settings().payments.credits_per_usd)

    # ---- auto top-up ----------------------------------------------------------------------------------
    @query(Action.MANAGE_PAYMENTS)
    def get_auto_topup(self, caller, organization_id):
        return dict(auto_topup.get(self.db, organization_id), credits_per_usd=settings().payments.credits_per_usd)

    @command(Action.MANAGE_PAYMENTS, input=AutoTopupInput, phases=True)
    def set_auto_topup(self, caller, uow, organization_id, enabled, threshold, target, monthly_cap_usd=None,
                       payment_method_id=None):
        """Replace the settings; at or below the threshold already, a top-up starts at once (charged once
        the settings are saved, before this answers)."""
        values = {"enabled": enabled, "threshold": threshold, "target": target, "monthly_cap_usd": monthly_cap_usd,
                  "payment_method_id": payment_method_id}
        price = settings().payments.credits_per_usd
        saved = auto_topup.put(uow, self._charge, lambda: self._balance(organization_id), caller.identity,
                               organization_id, values, price)
        return dict(saved, credits_per_usd=price)

    @query(Action.MANAGE_PAYMENTS, key_scope=Scope.USAGE_READ, input={"filters": TransactionFilters})
    def list_transactions(self, caller, organization_id, filters=None, cursor=None, limit=None):
        return transactions.page(self.db, organization_id, filters, cursor, limit)

    # ---- the provider's side -----------------------------------------------------------------------
    @command(CREDENTIAL, phases=True)
    def stripe_webhook(self, caller, uow, payload, signature):
        """The provider's event: its signature is the credential (400 invalid_signature, nothing changes)."""
        return reconciliation.handle_webhook(uow, self.provider, self._grant, payload, signature)

    @timer(interval=RECONCILE_SECONDS)
    def reconcile(self):
        try:
            changed = reconciliation.reconcile(UnitOfWork(self.db), self.provider, self._grant)
        except Exception:           # the provider or a service away: the next run tries again
            log.warning("could not reconcile pending transactions", exc_info=True)
            return
        if changed:
            log.info("reconciled %d pending transaction(s)", changed)

    def _charge(self, transaction_id):
        """Charge a pending automatic top-up (auto_topup.py), once the transaction that started it is saved.
        A failure is the top-up's (settled as failed, or left pending for the reconciliation), not the
        caller's: it is logged."""
        try:
            purchases.charge(UnitOfWork(self.db), self.provider, self._grant, transaction_id)
        except Exception:
            log.warning("automatic top-up %s: the charge did not complete", transaction_id, exc_info=True)

    def _balance(self, organization_id):
        """The balance now, from credits (asked as the system; the one read billing asks another service)."""
        with self.auth.as_system():
            return parse_amount(call(self.credits.account_balance, organization_id), allow_zero=True)

    def _grant(self, transaction):
        """credits grants the transaction's credit (once per transaction, however often asked)."""
        with self.auth.as_system():
            call(self.credits.grant_payment, transaction.organization_id, transaction.id,
                 format_amount(transaction.credits), purchases.buyer_of(transaction))

    # ---- events of other services ------------------------------------------------------------------
    @consume(BILLING_QUEUE, requeue_on_error=True)
    def on_change_event(self, message):
        event = change_event_or_none(message)
        if event is not None:
            reactions.handle_change_event(self.db, event, self._charge)
