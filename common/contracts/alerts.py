"""An organization's budget alert settings (issue 15): percents of members' monthly limits, a balance floor."""
from marshmallow import fields
from marshmallow.validate import Range

from common.contracts.base import Coded, Contract
from common.contracts.fields import Amount, Distinct, ListOf

MAX_MEMBER_BUDGET_PERCENTS = 5
PERCENTS = Coded("The alert percents must be a list of whole percents, e.g. [80, 100] ([] for none).",
                 "invalid_member_budget_percents")
PERCENT = Coded("Each alert percent must be a whole number from 1 to 100.", "invalid_member_budget_percent")


class AlertSettingsInput(Contract):
    """The whole settings: 0 to 5 distinct whole percents (a list too long is refused as such, before its
    items are looked at), and a floor of zero or more, or null for none."""
    member_budget_percents = ListOf(
        fields.Integer(strict=True, validate=[Range(1, 100, error=PERCENT)],
                       error_messages={"invalid": PERCENT, "null": PERCENT}),
        required=True, max_items=MAX_MEMBER_BUDGET_PERCENTS,
        too_many=Coded(f"At most {MAX_MEMBER_BUDGET_PERCENTS} member budget percents.",
                       "too_many_member_budget_percents"),
        validate=[Distinct(Coded("The alert percents must not repeat a percent.", "duplicate_member_budget_percent"))],
        error_messages={"invalid": PERCENTS, "null": PERCENTS, "required": PERCENTS})
    balance_floor = Amount(allow_zero=True, allow_none=True)
