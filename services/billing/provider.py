"""The payment provider: one adapter, Stripe through its official SDK, pointed at localstripe (the fake Stripe
server `make run` and the tests start) unless STRIPE_API_KEY names a Stripe account (common.config).

The billing service is the only part of the system that talks to it, never inside a database transaction
(a call takes up to CALL_TIMEOUT_SECONDS). A payment is made in two calls so that no charge can be lost:
`create_payment` (nothing charged yet; its id is saved with the transaction), then `confirm_payment`
(the charge). A process that dies after the charge finds it again by that id (`payment`): the webhook
and the reconciliation job both look it up. Stripe gets the transaction's id as the Idempotency-Key of
the creation, so a retried creation is one PaymentIntent (localstripe ignores the key; the billing service
creates each payment once in any case).
"""
from dataclasses import dataclass

import stripe

from common.config import settings
from common.errors import BadRequest, ServiceUnavailable, ValidationFailed

CALL_TIMEOUT_SECONDS = 6            # the gateway waits 10 s for the whole request
SUCCEEDED, FAILED, PENDING = "succeeded", "failed", "pending"
UNCONFIRMED = "unconfirmed"         # created, never confirmed: nothing was charged


@dataclass(frozen=True)
class Card:
    provider_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class Payment:
    """Where a payment stands at the provider: SUCCEEDED, FAILED (with the decline's code and message),
    PENDING (`next_action`: what the customer must do, e.g. 3-D Secure, with the client secret), or
    UNCONFIRMED (created, never confirmed: its process died between the two steps; nothing was charged)."""
    provider_id: str
    status: str
    failure_code: str | None = None
    failure_message: str | None = None
    next_action: dict | None = None


def provider_unavailable():
    return ServiceUnavailable("The payment provider does not answer; nothing was charged twice. Try again.",
                              code="payment_provider_unavailable")


class Stripe:
    def __init__(self, payment_settings=None):
        payments = payment_settings or settings().payments
        self.client = stripe.StripeClient(
            payments.api_key, base_addresses={"api": payments.api_base} if payments.api_base else None,
            max_network_retries=0, http_client=stripe.RequestsClient(timeout=CALL_TIMEOUT_SECONDS))
        self.webhook_secret = payments.webhook_secret

    # ---- customers and cards ---------------------------------------------------------------------------
    def create_customer(self, organization_id):
        with _answers():
            return self.client.v1.customers.create(
                params={"metadata": {"organization_id": organization_id}},
                options={"idempotency_key": f"customer-{organization_id}"}).id

    def attach_card(self, customer_id, payment_method_id):
        """The card behind a payment method id (from Stripe.js, or a test id such as pm_card_visa), attached
        to the customer; 422 card_declined or invalid_payment_method when the provider refuses it."""
        with _answers(field="provider_payment_method_id"):
            method = self.client.v1.payment_methods.attach(payment_method_id, params={"customer": customer_id})
        card = method.card
        return Card(method.id, card.brand, card.last4, int(card.exp_month), int(card.exp_year))

    def detach_card(self, provider_id):
        with _answers(missing_is_fine=True):
            self.client.v1.payment_methods.detach(provider_id)

    # ---- payments --------------------------------------------------------------------------------------
    def create_payment(self, transaction_id, customer_id, provider_method_id, amount_cents):
        """A PaymentIntent for the amount, not charged yet; its id."""
        params = {"amount": amount_cents, "currency": "usd", "customer": customer_id,
                  "payment_method": provider_method_id, "metadata": {"transaction_id": transaction_id}}
        with _answers():
            return self.client.v1.payment_intents.create(
                params=params, options={"idempotency_key": f"transaction-{transaction_id}"}).id

    def confirm_payment(self, provider_id):
        """Charge it: the Payment as the provider answers (a decline is a FAILED payment, not an error)."""
        try:
            with _answers():
                intent = self.client.v1.payment_intents.confirm(provider_id)
        except _Declined as declined:
            return Payment(provider_id, FAILED, declined.code, declined.message)
        return _payment_of(intent)

    def cancel_payment(self, provider_id):
        """Cancel a payment that was never confirmed (nothing charged), so that it never can be."""
        with _answers(missing_is_fine=True):
            self.client.v1.payment_intents.cancel(provider_id)

    def payment(self, provider_id):
        """The payment as it stands now (the webhook's and the reconciliation's lookup)."""
        with _answers():
            return _payment_of(self.client.v1.payment_intents.retrieve(provider_id))

    def webhook_event(self, payload, signature):
        """The provider's event, if `signature` proves it sent `payload`; 400 invalid_signature otherwise."""
        try:
            return stripe.Webhook.construct_event(payload, signature, self.webhook_secret)
        except (stripe.SignatureVerificationError, ValueError):
            raise BadRequest("The webhook's signature does not match its body.", code="invalid_signature",
                             field="Stripe-Signature") from None


def _payment_of(intent):
    if intent.status == "succeeded":
        return Payment(intent.id, SUCCEEDED)
    fields = intent.to_dict()
    if intent.status == "requires_confirmation" or (intent.status == "requires_payment_method"
                                                     and not fields.get("last_payment_error")):
        return Payment(intent.id, UNCONFIRMED)
    if intent.status in ("requires_action", "processing"):
        action = fields.get("next_action") or {}
        return Payment(intent.id, PENDING, next_action={"type": action.get("type"),
                                                        "client_secret": fields.get("client_secret")})
    error = fields.get("last_payment_error") or {}
    return Payment(intent.id, FAILED, error.get("decline_code") or error.get("code") or intent.status,
                   error.get("message") or f"The payment ended as {intent.status}.")


class _Declined(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


class _answers:
    """The SDK's errors as the platform's: a card refused (a decline while charging; a 422 when attaching),
    the provider away (503), a request it refuses (422, naming `field`)."""

    def __init__(self, field=None, missing_is_fine=False):
        self.field, self.missing_is_fine = field, missing_is_fine

    def __enter__(self):
        return self

    def __exit__(self, kind, error, _traceback):
        if error is None or not isinstance(error, stripe.StripeError):
            return False
        if isinstance(error, stripe.CardError):
            code = (error.error.decline_code if error.error else None) or error.code or "card_declined"
            message = error.user_message or "The card was declined."
            if self.field is None:
                raise _Declined(code, message) from None
            raise ValidationFailed(message, code="card_declined", field=self.field,
                                   details={"decline_code": code}) from None
        if isinstance(error, (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError,
                              stripe.AuthenticationError)):
            raise provider_unavailable() from None
        if isinstance(error, stripe.InvalidRequestError):
            if self.missing_is_fine and error.http_status == 404:
                return True
            raise ValidationFailed(error.user_message or "The payment provider refused this payment method.",
                                   code="invalid_payment_method", field=self.field) from None
        raise provider_unavailable() from None
