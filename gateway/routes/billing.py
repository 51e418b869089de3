"""Buying credit (SPEC §11): payment methods, purchases, transactions, and the payment provider's webhook."""
from common import idempotency
from common.permissions import Scope
from common.rpc import call
from gateway.http import json_response, route
from gateway.request_input import idempotency_key, load, read_json
from gateway.schemas.billing import (
    AutoTopup,
    AutoTopupBody,
    PaymentMethod,
    PaymentMethodBody,
    PaymentMethodPage,
    PurchaseBody,
    RemovedPaymentMethod,
    Transaction,
    TransactionPage,
    TransactionQuery,
    WebhookReceipt,
)
from gateway.schemas.common import ListQuery


class BillingRoutes:
    # ---- payment methods ---------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/payment-methods",
           "The organization's cards: brand, last 4 digits, expiry, which is the default (Owner/Billing)",
           response=PaymentMethodPage(), errors=(403,), query_schema=ListQuery(),
           query={"cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_payment_methods(self, request, org_id):
        query = load(ListQuery(), request.args.to_dict())
        page = call(self.billing.list_payment_methods, org_id, query["cursor"], query["limit"])
        return json_response(PaymentMethodPage().dump(page))

    @route("POST", "/v1/organizations/<org_id>/payment-methods",
           "Add a card by the provider's payment method id; the first is the default (Owner/Billing)",
           body=PaymentMethodBody(), response=PaymentMethod(), status=201, errors=(403, 422, 503))
    def add_payment_method(self, request, org_id):
        body = read_json(request, PaymentMethodBody())
        method = call(self.billing.add_payment_method, org_id, body["provider_payment_method_id"])
        return json_response(PaymentMethod().dump(method), 201)

    @route("PUT", "/v1/organizations/<org_id>/payment-methods/<payment_method_id>/default",
           "Make this card the default one (Owner/Billing)", response=PaymentMethod(), errors=(403,))
    def set_default_payment_method(self, request, org_id, payment_method_id):
        method = call(self.billing.set_default_payment_method, org_id, payment_method_id)
        return json_response(PaymentMethod().dump(method))

    @route("DELETE", "/v1/organizations/<org_id>/payment-methods/<payment_method_id>",
           "Remove a card (detached at the provider; transactions keep naming it) (Owner/Billing)",
           response=RemovedPaymentMethod(), errors=(403,))
    def remove_payment_method(self, request, org_id, payment_method_id):
        answer = call(self.billing.remove_payment_method, org_id, payment_method_id)
        return json_response(RemovedPaymentMethod().dump(answer))

    # ---- purchases and transactions ----------------------------------------------------------------
    @route("POST", "/v1/organizations/<org_id>/purchases",
           "Buy credit with a card: 201 with the transaction (success: the credit is in the balance; pending: "
           "what the customer must do), 402 payment_failed with the decline code (Owner/Billing)",
           body=PurchaseBody(), response=Transaction(), status=201, errors=(402, 403, 422, 503),
           headers={"Idempotency-Key": "required: a retry with the same key and body never charges again and "
                                       "answers the transaction as it stands (header Idempotent-Replayed: true); "
                                       "the same key with another body is 409 idempotency_key_reused"})
    def purchase(self, request, org_id):
        body = read_json(request, PurchaseBody())
        transaction = call(self.billing.purchase, org_id, body["amount_usd"], idempotency_key(request),
                           body["payment_method_id"])
        return json_response(Transaction().dump(transaction), 201, headers=idempotency.replay_headers(transaction))

    @route("GET", "/v1/organizations/<org_id>/transactions",
           "Payment attempts, newest first, by status and type (Owner/Billing; API keys: usage:read)",
           response=TransactionPage(), errors=(403,), key_scope=Scope.USAGE_READ, query_schema=TransactionQuery(),
           query={"status": "pending | success | failed | cancelled",
                  "type": "manual_purchase | auto_topup | subscription | enterprise",
                  "cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_transactions(self, request, org_id):
        query = load(TransactionQuery(), request.args.to_dict())
        filters = {"status": query["status"], "type": query["type"]}
        page = call(self.billing.list_transactions, org_id, filters, query["cursor"], query["limit"])
        return json_response(TransactionPage().dump(page))

    # ---- auto top-up ----------------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/auto-topup", "Auto top-up settings (Owner/Billing)",
           response=AutoTopup(), errors=(403,))
    def get_auto_topup(self, request, org_id):
        return json_response(AutoTopup().dump(call(self.billing.get_auto_topup, org_id)))

    @route("PUT", "/v1/organizations/<org_id>/auto-topup",
           "Replace the auto top-up settings (Owner/Billing; audited); enabling it at or below the threshold "
           "starts a top-up at once", body=AutoTopupBody(), response=AutoTopup(), errors=(403, 404, 422))
    def set_auto_topup(self, request, org_id):
        body = read_json(request, AutoTopupBody())
        answer = call(self.billing.set_auto_topup, org_id, body["enabled"], body["threshold"], body["target"],
                      body["monthly_cap_usd"], body["payment_method_id"])
        return json_response(AutoTopup().dump(answer))

    # ---- the provider ------------------------------------------------------------------------------
    @route("POST", "/v1/billing/stripe/webhook",
           "The payment provider's signed events (no bearer token: the Stripe-Signature header is checked; "
           "a bad one is 400 invalid_signature and changes nothing)",
           public=True, response=WebhookReceipt(), errors=(400,),
           headers={"Stripe-Signature": "required: the provider's signature of the body"})
    def stripe_webhook(self, request):
        answer = call(self.billing.stripe_webhook, request.get_data(as_text=True),
                      request.headers.get("Stripe-Signature"))
        return json_response(WebhookReceipt().dump(answer))
