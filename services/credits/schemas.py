"""Marshmallow schemas of the credits service: the shapes its RPC methods answer with. Amounts are
stored as units (common.money) and answered as strings such as "12.5000"."""
from marshmallow import Schema, fields

from common.money import format_amount
from common.schemas import UtcDateTime


class MoneyText(fields.Field):
    """An amount in an answer: units (common.money) written as "12.5000" (None stays None: "no limit").
    Amounts in requests are common.contracts.fields.Amount's."""

    def _serialize(self, value, attr, obj, **kwargs):
        return format_amount(value)


class GrantSchema(Schema):
    """Dumps a grant as a dict carrying `expired` (computed at the time of asking): its credit, if
    any is left, counts as 0 once expired."""
    id = fields.String()
    organization_id = fields.String()
    type = fields.String()
    amount = MoneyText()
    remaining = fields.Function(lambda grant: format_amount(0 if grant["expired"] else grant["remaining"]))
    expires_at = UtcDateTime()
    expired = fields.Boolean()
    created_by = fields.String()
    created_at = UtcDateTime()


class LedgerEntrySchema(Schema):
    id = fields.String()
    organization_id = fields.String()
    kind = fields.String()
    amount = MoneyText()
    balance_after = MoneyText()
    actor = fields.Function(lambda e: {"id": e.actor_id} if e.actor_email is None
                            else {"id": e.actor_id, "email": e.actor_email})
    user_id = fields.Function(lambda e: e.actor_id if e.kind == "spend" else None)   # who used the agent
    agent_id = fields.String(allow_none=True)
    grant_id = fields.String(allow_none=True)
    grant_type = fields.String(allow_none=True)
    allocations = fields.Raw(allow_none=True)
    occurred_at = UtcDateTime()


class BudgetGroupSchema(Schema):
    """Dumps a dict of the group's columns plus `member_count`."""
    id = fields.String()
    organization_id = fields.String()
    name = fields.String()
    monthly_limit = MoneyText()
    monthly_limit_label = fields.Function(
        lambda g: "No limit" if g["monthly_limit"] is None else format_amount(g["monthly_limit"]))
    builder_limit = fields.Integer(allow_none=True)
    member_count = fields.Integer()
    created_by = fields.String()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class GroupMembershipSchema(Schema):
    user_id = fields.String()
    budget_group_id = fields.String(attribute="group_id")
    added_by = fields.String()
    added_at = UtcDateTime()


grant_schema = GrantSchema()
ledger_entry_schema = LedgerEntrySchema()
budget_group_schema = BudgetGroupSchema()
group_membership_schema = GroupMembershipSchema()
