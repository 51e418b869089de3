"""Credits: the balance and its grants, the ledger, spending (and what one may still spend), budget groups."""
from decimal import Decimal

from marshmallow import Schema, ValidationError, fields, validate

from common.contracts.alerts import AlertSettingsInput
from common.contracts.budgets import BudgetGroupInput
from common.contracts.credits import GrantInput, SpendInput
from gateway.schemas.common import (
    GRANT_TYPES,
    ContractField,
    ErrorDetail,
    ListQuery,
    Strict,
    StrictBoolean,
    date_time,
    page_of,
)


# ---- requests -------------------------------------------------------------------------------------
# The credits service applies the rules of its bodies (common.contracts: credits, budgets, alerts). Where it
# checks a body before anything else (alert settings) the gateway applies them too, with the same answers;
# elsewhere it checks only the JSON types, as it always did, and passes the values on.
class AmountShape(fields.Field):
    """The JSON type of an amount: a string such as "12.50", or a number (read as a Decimal, never a float),
    passed on as its text. Its rules are common.contracts.fields.Amount's."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise ValidationError(f"{attr} must be a decimal number written as a string, e.g. \"12.50\".")
        return str(value)


def _amount(contract, description, **kwargs):
    return ContractField(contract, shape=AmountShape(), metadata={"description": description}, **kwargs)


class GrantBody(Strict):
    amount = _amount(GrantInput.field("amount"), "credits, more than 0, at most 4 decimal places", required=True)
    type = ContractField(GrantInput.field("type"), shape=fields.String(validate=validate.OneOf(GRANT_TYPES)),
                         required=True)
    expires_at = ContractField(GrantInput.field("expires_at"), shape=fields.String(), load_default=None,
                               allow_none=True, metadata={"description": "free credit only: ISO 8601 time in "
                                                                         "the future"})


class SpendBody(Strict):
    agent_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    amount = _amount(SpendInput.field("amount"), "credits, more than 0, at most 4 decimal places (optional in a "
                     "dry run)", load_default=None)
    dry_run = StrictBoolean(load_default=False, metadata={
        "description": "true: only evaluate (nothing charged, no Idempotency-Key needed)"})
    user_id = fields.String(load_default=None, validate=validate.Length(min=1, max=128), metadata={
        "description": "API keys only (required for them): the member this spend is made for, checked as that "
                       "member's own spend; a person spends as themselves"})


class BudgetGroupBody(Strict):
    # One body for create and edit, where the name's rule differs (required on create): the service says.
    name = ContractField(BudgetGroupInput.field("name"), allow_none=True,
                         metadata={"description": "required on create; trimmed; 1 to 200 characters"})
    monthly_limit = _amount(BudgetGroupInput.field("monthly_limit"),
                            "credits each member may spend per calendar month (UTC); null: no limit", allow_none=True)
    builder_limit = ContractField(BudgetGroupInput.field("builder_limit"), shape=fields.Integer(strict=True),
                                  allow_none=True, metadata={
        "description": "how many members holding Builder the group may contain; null: any number"})


LEDGER_KINDS = ["grant", "spend", "expiry"]


class LedgerQuery(ListQuery):
    kind = fields.String(load_default=None, validate=validate.OneOf(LEDGER_KINDS))


# ---- responses: balance, ledger, spends -----------------------------------------------------------
class Grant(Schema):
    id = fields.String()
    organization_id = fields.String()
    type = fields.String(metadata={"enum": GRANT_TYPES})
    amount = fields.String()
    remaining = fields.String()
    expires_at = date_time(allow_none=True)
    expired = fields.Boolean()
    created_by = fields.String()
    created_at = date_time()


class Credits(Schema):
    organization_id = fields.String()
    balance = fields.String(metadata={"description": "exact decimal: credit that can be spent now"})
    free_balance = fields.String()
    paid_balance = fields.String()
    spent_this_period = fields.String()
    period = fields.String(metadata={"description": "calendar month, UTC, e.g. 2026-11"})
    resets_at = date_time()
    active_grant_count = fields.Integer()
    grants = fields.List(fields.Nested(Grant), metadata={
        "description": "grants still holding credit, in the order spends use them (at most 100)"})


class Allocation(Schema):
    grant_id = fields.String()
    type = fields.String(metadata={"enum": GRANT_TYPES})
    amount = fields.String()


class LedgerEntry(Schema):
    id = fields.String()
    organization_id = fields.String()
    kind = fields.String(metadata={"enum": LEDGER_KINDS})
    amount = fields.String(metadata={"description": "positive; kind says which way"})
    balance_after = fields.String()
    actor = fields.Dict(metadata={"description": '{"id", "email"} or {"id": "system"}'})
    user_id = fields.String(allow_none=True, metadata={"description": "spends: the member who used the agent"})
    agent_id = fields.String(allow_none=True)
    grant_id = fields.String(allow_none=True)
    grant_type = fields.String(allow_none=True, metadata={"enum": GRANT_TYPES})
    allocations = fields.List(fields.Nested(Allocation), allow_none=True,
                              metadata={"description": "spends: the grants it drew on; null for other kinds"})
    occurred_at = date_time()


LedgerPage = page_of(LedgerEntry, "LedgerPage")


class Budget(Schema):
    budget_group_id = fields.String(allow_none=True)
    budget_group_name = fields.String(allow_none=True)
    limit = fields.String(allow_none=True, metadata={"description": "monthly limit; null: no limit"})
    used = fields.String(metadata={"description": "spent this period"})
    remaining = fields.String(allow_none=True)
    period = fields.String()
    period_start = date_time()
    resets_at = date_time()


class Spend(Schema):
    id = fields.String()
    organization_id = fields.String()
    agent_id = fields.String()
    user_id = fields.String()
    amount = fields.String()
    occurred_at = date_time()
    budget = fields.Nested(Budget)


class Allowance(Schema):
    """What the caller can still spend in an organization, and which limit binds (Allowance in
    services/credits/budgets.py)."""
    can_spend = fields.String(metadata={"description": "the most the caller can spend now"})
    binding_limit = fields.String(metadata={"enum": ["balance", "budget_group"],
                                            "description": "what can_spend comes from"})
    budget = fields.Nested(Budget)


class SpendEvaluation(Allowance):
    dry_run = fields.Boolean()
    organization_id = fields.String()
    agent_id = fields.String()
    amount = fields.String(allow_none=True)
    allowed = fields.Boolean(allow_none=True, metadata={"description": "null when no amount was given"})
    refusal = fields.Nested(ErrorDetail, allow_none=True)


class OrganizationUsage(Allowance):
    organization_id = fields.String()
    organization_name = fields.String()
    used = fields.String(metadata={"description": "the caller's spend this period"})


OrganizationUsagePage = page_of(OrganizationUsage, "OrganizationUsagePage")


# ---- responses: budget groups ---------------------------------------------------------------------
class BudgetGroup(Schema):
    id = fields.String()
    organization_id = fields.String()
    name = fields.String()
    monthly_limit = fields.String(allow_none=True)
    monthly_limit_label = fields.String(metadata={"description": 'the limit, or "No limit"'})
    builder_limit = fields.Integer(allow_none=True)
    member_count = fields.Integer()
    created_by = fields.String()
    created_at = date_time()
    updated_at = date_time()


BudgetGroupPage = page_of(BudgetGroup, "BudgetGroupPage")


class BudgetGroupMemberUsage(Schema):
    user_id = fields.String()
    used = fields.String()
    limit = fields.String(allow_none=True)
    remaining = fields.String(allow_none=True)
    added_at = date_time()


class BudgetGroupDetail(BudgetGroup):
    period = fields.String()
    period_start = date_time()
    resets_at = date_time()
    members = fields.Nested(page_of(BudgetGroupMemberUsage, "BudgetGroupMemberUsagePage"), metadata={
        "description": "a page of the members, by user id (limit and cursor of the request page them)"})


class BudgetGroupMembership(Schema):
    user_id = fields.String()
    budget_group_id = fields.String()
    added_by = fields.String()
    added_at = date_time()


# ---- alerts ---------------------------------------------------------------------------------------
class AlertSettingsBody(Strict):
    """The whole settings (a PUT replaces them: a field left out is cleared), checked here with the credits
    service's rules and answers (it checks them before anything else); passed on as sent."""
    member_budget_percents = ContractField(AlertSettingsInput.field("member_budget_percents"), enforce=True,
                                           load_default=list, metadata={
        "description": "0 to 5 distinct whole percents of a member's monthly limit (their budget group's), "
                       "e.g. [80, 100]; members without a limit never cross one"})
    balance_floor = _amount(AlertSettingsInput.field("balance_floor"), "alert when a spend takes the balance from "
                            "above this amount to it or below; null: no floor", enforce=True, load_default=None,
                            allow_none=True)


class AlertSettings(Schema):
    organization_id = fields.String()
    member_budget_percents = fields.List(fields.Integer(), metadata={"description": "ascending; [] for none"})
    balance_floor = fields.String(allow_none=True)
    updated_by = fields.String(allow_none=True, metadata={"description": "null until settings were first set"})
    updated_at = date_time(allow_none=True)


ALERT_KINDS = ["member_budget", "balance_floor", "auto_topup_failed", "auto_topup_cap_reached", "auto_topup_disabled"]


class Alert(Schema):
    """A threshold a spend crossed: raised once per threshold, member and calendar month."""
    id = fields.String()
    organization_id = fields.String()
    kind = fields.String(metadata={"enum": ALERT_KINDS})
    threshold = fields.String(allow_none=True, metadata={
        "description": 'member_budget: the percent, e.g. "80"; balance_floor: the floor, an amount such as "5.0000"; '
                       'null for the auto top-up alerts'})
    user_id = fields.String(allow_none=True, metadata={"description": "the member; null for the balance floor"})
    period = fields.String(metadata={"description": "calendar month, UTC, e.g. 2026-11"})
    value = fields.String(allow_none=True,
                          metadata={"description": "the member's usage this month, or the balance, after the spend"})
    limit = fields.String(allow_none=True, metadata={"description": "the member's monthly limit, or the floor"})
    spend_id = fields.String(allow_none=True, metadata={"description": "the ledger entry of the spend that crossed it"})
    transaction_id = fields.String(allow_none=True, metadata={"description": "auto_topup_failed: the failed top-up"})
    raised_at = date_time()


AlertPage = page_of(Alert, "AlertPage")
