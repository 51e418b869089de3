"""Credit coming in (a grant, product rules §4) and going out (a spend): amounts are common.money's rules
(fields.Amount)."""
from marshmallow import ValidationError, fields
from marshmallow.validate import Length, OneOf

from common.contracts.base import Coded, Contract
from common.contracts.fields import Amount, IsoTime

FREE, PAID = "free", "paid"
GRANT_TYPES = (FREE, PAID)
GRANT_TYPE = Coded("type must be free or paid.", "invalid_grant_type")


class GrantExpiry(IsoTime):
    """When free credit expires: only free credit can (checked before the time itself; a wrong type is
    refused first, by the type field). Whether it is still in the future is checked when the grant is
    made, after a retry's stored answer was looked for."""

    def _deserialize(self, value, attr, data, **kwargs):
        if data is not None and data.get("type") != FREE:
            raise ValidationError(Coded("Only free credit can expire.", "expiry_only_for_free"))
        return super()._deserialize(value, attr, data, **kwargs)


class GrantInput(Contract):
    amount = Amount(required=True)
    type = fields.String(required=True, validate=[OneOf(GRANT_TYPES, error=GRANT_TYPE)],
                         error_messages={"invalid": GRANT_TYPE, "null": GRANT_TYPE, "required": GRANT_TYPE})
    expires_at = GrantExpiry(Coded("expires_at must be an ISO 8601 time, e.g. 2026-12-31T00:00:00Z.", "invalid_time"),
                             allow_none=True)


class SpendInput(Contract):
    """A spend's amount (optional in a dry run: Spend.field("amount") there is loaded only when given)."""
    amount = Amount(required=True)


class PaymentGrantInput(Contract):
    """Paid credit for a payment, as the billing service asks credits for it (services/credits/ledger.py)."""
    transaction_id = fields.String(required=True, validate=[Length(1, 36)])
    amount = Amount(required=True)
    buyer = fields.Dict(required=True)
