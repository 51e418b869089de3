"""A budget group (product rules §5), and the members a lookup of groups names."""
from marshmallow import fields
from marshmallow.validate import Range

from common.contracts.base import Coded, Contract
from common.contracts.fields import Amount, Name

NAME_MAX_LENGTH = 200
BUILDER_LIMIT_MAX = 100000
BUILDER_LIMIT = Coded(f"builder_limit must be a whole number from 0 to {BUILDER_LIMIT_MAX}, or null.",
                      "invalid_builder_limit")


class BudgetGroupInput(Contract):
    """The fields a create or an edit (load with partial=True) sets; absent ones stay absent. A limit of
    null is no limit."""
    error_messages = {"type": Coded("The body must be an object.", "invalid_body"),
                      "unknown": Coded("Unknown field: {field}.", "unknown_field")}

    name = Name("Budget group name", NAME_MAX_LENGTH, required=True,
                blank=Coded("Budget group name is required.", "name_required"),
                invalid=Coded("name must be a string.", "invalid_type"),
                too_long=Coded(f"Name must be {NAME_MAX_LENGTH} characters or fewer.", "name_too_long"))
    monthly_limit = Amount(allow_zero=True, allow_none=True)
    builder_limit = fields.Integer(strict=True, allow_none=True, error_messages={"invalid": BUILDER_LIMIT},
                                   validate=[Range(0, BUILDER_LIMIT_MAX, error=BUILDER_LIMIT)])
