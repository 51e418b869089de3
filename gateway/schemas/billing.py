"""Buying credit (SPEC §11): payment methods, purchases, transactions, and the provider's webhook answer.
The billing service applies the rules of the bodies (common.contracts.billing); the gateway checks their
JSON types and passes them on, and /openapi.json states the rules from the same contracts."""
from decimal import Decimal

from marshmallow import Schema, ValidationError, fields, validate

from common.contracts.billing import (
    TRANSACTION_STATUSES,
    TRANSACTION_TYPES,
    AutoTopupInput,
    PaymentMethodInput,
    PurchaseInput,
)
from gateway.schemas.common import ContractField, ListQuery, Strict, date_time, page_of


class UsdShape(fields.Field):
    """The JSON type of an amount in USD: a string such as "25.00", or a number, passed on as its text."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal, float)):
            raise ValidationError(f"{attr} must be an amount in USD written as a string, e.g. \"25.00\".")
        return value if isinstance(value, str) else str(value)


# ---- requests -------------------------------------------------------------------------------------
class PaymentMethodBody(Strict):
    provider_payment_method_id = ContractField(
        PaymentMethodInput.field("provider_payment_method_id"), shape=fields.String(), required=True,
        metadata={"description": "the provider's payment method id: one Stripe.js made, or a test id such as "
                                 "pm_card_visa, pm_card_visa_chargeDeclined, pm_card_chargeCustomerFail"})


class PurchaseBody(Strict):
    amount_usd = ContractField(PurchaseInput.field("amount_usd"), shape=UsdShape(), required=True,
                               metadata={"description": "USD, 5.00 to 10000.00; buys amount × the price in credits"})
    payment_method_id = ContractField(PurchaseInput.field("payment_method_id"), shape=fields.String(),
                                      load_default=None, allow_none=True,
                                      metadata={"description": "one of the organization's payment methods; "
                                                               "absent: the default one"})


class TransactionQuery(ListQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(TRANSACTION_STATUSES))
    type = fields.String(load_default=None, validate=validate.OneOf(TRANSACTION_TYPES))


# ---- responses ------------------------------------------------------------------------------------
class PaymentMethod(Schema):
    id = fields.String()
    organization_id = fields.String()
    brand = fields.String()
    last4 = fields.String()
    exp_month = fields.Integer()
    exp_year = fields.Integer()
    is_default = fields.Boolean()
    created_by = fields.String()
    created_at = date_time()


PaymentMethodPage = page_of(PaymentMethod, "PaymentMethodPage")


class RemovedPaymentMethod(Schema):
    id = fields.String()
    removed = fields.Boolean()


class TransactionCard(Schema):
    id = fields.String()
    brand = fields.String()
    last4 = fields.String()


class NextAction(Schema):
    type = fields.String(allow_none=True, metadata={"description": "e.g. use_stripe_sdk (3-D Secure)"})
    client_secret = fields.String(allow_none=True, metadata={"description": "for Stripe.js to finish it"})


class Transaction(Schema):
    id = fields.String()
    organization_id = fields.String()
    type = fields.String(metadata={"enum": TRANSACTION_TYPES})
    status = fields.String(metadata={"enum": TRANSACTION_STATUSES})
    amount_usd = fields.String(metadata={"description": "USD with 2 decimals"})
    credits = fields.String(metadata={"description": "exact decimal: the credit it buys"})
    payment_method = fields.Nested(TransactionCard, allow_none=True)
    failure_code = fields.String(allow_none=True)
    failure_message = fields.String(allow_none=True)
    created_by = fields.String(metadata={"description": "the member who bought, or system (auto top-up)"})
    created_at = date_time()
    completed_at = date_time(allow_none=True)
    next_action = fields.Nested(NextAction, allow_none=True,
                                metadata={"description": "pending only: what the customer must do"})


TransactionPage = page_of(Transaction, "TransactionPage")


class WebhookReceipt(Schema):
    received = fields.Boolean()
    transaction_id = fields.String(allow_none=True)


class AutoTopupBody(Strict):
    enabled = ContractField(AutoTopupInput.field("enabled"), shape=fields.Boolean(), required=True)
    threshold = ContractField(AutoTopupInput.field("threshold"), shape=fields.Raw(), required=True,
                              metadata={"description": "credits: a spend taking the balance to or below it starts "
                                                       "a top-up"})
    target = ContractField(AutoTopupInput.field("target"), shape=fields.Raw(), required=True,
                           metadata={"description": "credits, above the threshold: what a top-up brings the "
                                                    "balance back to (in one charge, at least 5.00 USD)"})
    monthly_cap_usd = ContractField(AutoTopupInput.field("monthly_cap_usd"), shape=fields.Raw(), load_default=None,
                                    allow_none=True, metadata={"description": "USD a calendar month; null: no cap"})
    payment_method_id = ContractField(AutoTopupInput.field("payment_method_id"), shape=fields.String(),
                                      load_default=None, allow_none=True,
                                      metadata={"description": "null: the default card"})


class AutoTopup(Schema):
    enabled = fields.Boolean()
    threshold = fields.String(allow_none=True)
    target = fields.String(allow_none=True)
    monthly_cap_usd = fields.String(allow_none=True)
    payment_method_id = fields.String(allow_none=True)
    consecutive_failures = fields.Integer(metadata={"description": "3 in a row switch auto top-up off"})
    credits_per_usd = fields.Integer(metadata={"description": "the price: the credits one USD buys, in a purchase "
                                                              "or a top-up"})
