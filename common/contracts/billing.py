"""Buying credit (SPEC §11): a purchase's amount in USD, a payment method's provider id, the transactions'
filters, the auto top-up settings."""
import re
from decimal import Decimal, InvalidOperation

from marshmallow import ValidationError, fields, validates_schema
from marshmallow.validate import Length, OneOf

from common.contracts.base import Coded, Contract
from common.contracts.fields import Amount, StrictBool

MIN_PURCHASE_CENTS, MAX_PURCHASE_CENTS = 500, 1_000_000          # 5.00 to 10,000.00 USD
TRANSACTION_TYPES = ("manual_purchase", "auto_topup", "subscription", "enterprise")
TRANSACTION_STATUSES = ("pending", "success", "failed", "cancelled")
PROVIDER_ID_MAX_LENGTH = 255
_USD = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
MAX_MONTHLY_CAP_CENTS = 100_000_000                               # 1,000,000.00 USD a month


class Usd(fields.Field):
    """An amount in USD ("25.00", or a JSON number with at most 2 decimals) to whole cents, within
    [min_cents, max_cents]; `name` is the field the messages name."""
    def __init__(self, name, min_cents, max_cents, **kwargs):
        self.name, self.min_cents, self.max_cents = name, min_cents, max_cents
        self.bounds = f"from {min_cents / 100:.2f} to {max_cents / 100:.2f}"
        self.malformed = Coded(f"{name} must be an amount in USD such as \"25.00\" (at most 2 decimals).",
                               "invalid_amount")
        self.openapi = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,2})?$",
                        "maxLength": len(str(max_cents)) + 1,
                        "description": f"USD with at most 2 decimals, {self.bounds}"}
        super().__init__(**kwargs)
        self.error_messages.update({"required": Coded(f"{name} is required.", "amount_required"),
                                    "null": Coded(f"{name} is required.", "amount_required")})

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValidationError(self.malformed)
        text = value.strip() if isinstance(value, str) else repr(value)
        if not _USD.fullmatch(text):
            raise ValidationError(self.malformed)
        try:
            cents = int(Decimal(text) * 100)
        except InvalidOperation:
            raise ValidationError(self.malformed) from None
        if not self.min_cents <= cents <= self.max_cents:
            raise ValidationError(Coded(f"{self.name} must be {self.bounds}.", "amount_out_of_range"))
        return cents


def _provider_id(name):
    message = Coded(f"{name} must be the payment provider's id of a payment method, such as pm_card_visa.",
                    "invalid_payment_method")
    return fields.String(required=True, validate=[Length(1, PROVIDER_ID_MAX_LENGTH, error=message)],
                         error_messages={"invalid": message, "null": message,
                                         "required": Coded(f"{name} is required.", "payment_method_required")})


class PaymentMethodInput(Contract):
    provider_payment_method_id = _provider_id("provider_payment_method_id")


class PurchaseInput(Contract):
    amount_usd = Usd("amount_usd", MIN_PURCHASE_CENTS, MAX_PURCHASE_CENTS, required=True)
    payment_method_id = fields.String(allow_none=True, validate=[Length(1, 36)],
                                      error_messages={"invalid": Coded("payment_method_id must be the id of one "
                                                                       "of the organization's payment methods.",
                                                                       "invalid_payment_method")})


class TransactionFilters(Contract):
    status = fields.String(allow_none=True, validate=[OneOf(TRANSACTION_STATUSES, error=Coded(
        f"status must be one of {', '.join(TRANSACTION_STATUSES)}.", "invalid_status"))])
    type = fields.String(allow_none=True, validate=[OneOf(TRANSACTION_TYPES, error=Coded(
        f"type must be one of {', '.join(TRANSACTION_TYPES)}.", "invalid_type"))])


class AutoTopupInput(Contract):
    """Auto top-up settings (SPEC §11): when a spend takes the balance to or below `threshold`, a top-up
    brings it back to `target` (above the threshold), never past `monthly_cap_usd` a month (null: no cap),
    charged to `payment_method_id` (null: the default card)."""
    enabled = StrictBool(required=True, error_messages={
        "invalid": Coded("enabled must be true or false.", "invalid_type"),
        "required": Coded("enabled is required.", "enabled_required")})
    threshold = Amount(required=True, allow_zero=True)
    target = Amount(required=True)
    # A cap below one top-up's 5.00 minimum would let none through: the purchase minimum is its floor too.
    monthly_cap_usd = Usd("monthly_cap_usd", MIN_PURCHASE_CENTS, MAX_MONTHLY_CAP_CENTS, allow_none=True,
                          load_default=None)
    payment_method_id = fields.String(allow_none=True, load_default=None, validate=[Length(1, 36)])

    @validates_schema
    def _target_above_threshold(self, data, **kwargs):
        if data["target"] <= data["threshold"]:
            raise ValidationError(Coded("target must be above threshold.", "target_not_above_threshold"),
                                  field_name="target")
