"""Marshmallow schemas of the HTTP API: what requests may contain and what answers look like."""
from decimal import Decimal

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from common.permissions import permitted_actions


class Strict(Schema):
    """Requests: unknown fields are refused with a 422 naming them."""


# ---- requests -------------------------------------------------------------------------------------
class OrganizationNameBody(Strict):
    # The orgs service owns the name rules and their exact messages (missing, empty, too long, not a
    # string), so the gateway passes whatever came, None when absent.
    name = fields.Raw(load_default=None, allow_none=True,
                      metadata={"type": "string", "description": "trimmed; 1 to 200 characters"})


class ActiveOrganizationBody(Strict):
    organization_id = fields.String(required=True, validate=validate.Length(max=64))


class ListQuery(Schema):
    class Meta:
        unknown = EXCLUDE
    cursor = fields.String(load_default=None)
    limit = fields.Integer(load_default=None, strict=False)


class AuditQuery(ListQuery):
    entity_type = fields.String(load_default=None)
    action = fields.String(load_default=None, validate=validate.OneOf(["create", "update", "delete"]))
    actor = fields.String(load_default=None)
    field = fields.String(load_default=None)
    target = fields.String(load_default=None)
    since = fields.String(load_default=None)
    until = fields.String(load_default=None)
    format = fields.String(load_default=None, validate=validate.OneOf(["json", "csv"]))


class MembersQuery(ListQuery):
    q = fields.String(load_default=None, metadata={"description": "search in name or email"})
    role = fields.String(load_default=None)
    sort = fields.String(load_default=None)
    format = fields.String(load_default=None, validate=validate.OneOf(["csv"]))


class StatusQuery(ListQuery):
    status = fields.String(load_default=None)


class InvitationsQuery(StatusQuery):
    q = fields.String(load_default=None, metadata={"description": "search in email"})


class RolesBody(Strict):
    roles = fields.List(fields.String(), required=True,
                        metadata={"description": "owner, admin, builder, member (Billing only by transfer)"})


class InvitationBody(Strict):
    # The members service owns the email rules and their messages; absent arrives as None.
    email = fields.Raw(load_default=None, allow_none=True, metadata={"type": "string"})
    roles = fields.List(fields.String(), required=True)
    agent_ids = fields.List(fields.String(), load_default=None,
                            metadata={"description": "agents to assign on acceptance"})


class BillingTransferBody(Strict):
    to_user_id = fields.String(required=True, validate=validate.Length(min=1, max=128))


def _agent_text(description):
    # The orgs service owns the agent field rules and their messages (it is the line every caller
    # meets); absent fields stay absent, so that PATCH changes only what it names.
    return fields.Raw(allow_none=True, metadata={"type": "string", "description": description})


class AgentBody(Strict):
    name = _agent_text("required on create; trimmed; 1 to 200 characters")
    code = _agent_text("up to 100 characters")
    mission = _agent_text("up to 2,000 characters")
    welcome_message = _agent_text("up to 2,000 characters")
    instructions = _agent_text("up to 20,000 characters")
    avatar_url = _agent_text("an http(s) URL, up to 2,048 characters; empty or null for none")


class AgentsQuery(ListQuery):
    q = fields.String(load_default=None, metadata={"description": "search in name"})


class UserIdBody(Strict):
    user_id = fields.String(required=True, validate=validate.Length(min=1, max=128))


class StrictBoolean(fields.Boolean):
    """true or false only (marshmallow's Boolean also takes 1, "yes", "on"...)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class TransferBody(Strict):
    destination_organization_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    dry_run = StrictBoolean(required=True, metadata={"description": "true: only report who keeps access"})


class AgentTrailQuery(ListQuery):
    entity_type = fields.String(load_default=None)
    action = fields.String(load_default=None, validate=validate.OneOf(["create", "update", "delete"]))
    actor = fields.String(load_default=None)
    field = fields.String(load_default=None)
    old_value = fields.String(load_default=None)
    new_value = fields.String(load_default=None)
    since = fields.String(load_default=None)
    until = fields.String(load_default=None)


class Amount(fields.Field):
    """An exact amount: a string such as "12.50", or a JSON number (read as a Decimal, never a float).
    Passed on as a string; the credits service owns the rules (positive, at most 4 places) and their
    error codes."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise ValidationError(f"{attr} must be a decimal number written as a string, e.g. \"12.50\".")
        return str(value)


def _amount(description, **kwargs):
    return Amount(metadata={"type": "string", "description": description}, **kwargs)


class GrantBody(Strict):
    amount = _amount("credits, more than 0, at most 4 decimal places", required=True)
    type = fields.String(required=True, validate=validate.OneOf(["free", "paid"]))
    expires_at = fields.String(load_default=None, allow_none=True,
                               metadata={"description": "free credit only: ISO 8601 time in the future"})


class SpendBody(Strict):
    agent_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    amount = _amount("credits, more than 0, at most 4 decimal places (optional in a dry run)", load_default=None)
    dry_run = StrictBoolean(load_default=False, metadata={
        "description": "true: only evaluate (nothing charged, no Idempotency-Key needed)"})


class BudgetGroupBody(Strict):
    name = fields.Raw(allow_none=True, metadata={"type": "string",
                                                 "description": "required on create; trimmed; 1 to 200 characters"})
    monthly_limit = _amount("credits each member may spend per calendar month (UTC); null: no limit",
                            allow_none=True)
    builder_limit = fields.Integer(strict=True, allow_none=True, metadata={
        "description": "how many members holding Builder the group may contain; null: any number"})


class LedgerQuery(ListQuery):
    kind = fields.String(load_default=None, validate=validate.OneOf(["grant", "spend", "expiry"]))


# ---- responses ------------------------------------------------------------------------------------
def page_of(item_schema, name):
    """The schema of a list answer: {"items": [...], "next_cursor": "..." | null}."""
    return type(name, (Schema,), {
        "items": fields.List(fields.Nested(item_schema)), "next_cursor": fields.String(allow_none=True)})


class ErrorDetail(Schema):
    code = fields.String()
    message = fields.String()
    field = fields.String(allow_none=True)
    details = fields.Dict(metadata={"description": "present on some errors, e.g. budget_exceeded: the group, "
                                                   "limit, used amount and reset time"})


class ErrorBody(Schema):
    error = fields.Nested(ErrorDetail)


class Membership(Schema):
    organization_id = fields.String()
    roles = fields.List(fields.String())


class Me(Schema):
    id = fields.String()
    email = fields.String()
    name = fields.String()
    active_organization_id = fields.String()
    memberships = fields.List(fields.Nested(Membership))


class OrganizationCard(Schema):
    id = fields.String()
    name = fields.String()
    type = fields.String(metadata={"enum": ["individual", "collective"]})
    roles = fields.List(fields.String())
    member_count = fields.Integer()
    active = fields.Boolean()
    created_at = fields.String()
    updated_at = fields.String()
    created_by = fields.String()
    permissions = fields.Function(lambda card: permitted_actions(card["roles"]),
                                  metadata={"type": "array", "description": "actions the caller's roles allow"})


OrganizationPage = page_of(OrganizationCard, "OrganizationPage")


class Member(Schema):
    user_id = fields.String()
    name = fields.String()
    email = fields.String()
    roles = fields.List(fields.String())
    budget_group_id = fields.String(allow_none=True)
    joined_at = fields.String()


MemberPage = page_of(Member, "MemberPage")


class Invitation(Schema):
    id = fields.String()
    organization_id = fields.String()
    organization_name = fields.String()
    email = fields.String()
    roles = fields.List(fields.String())
    agent_ids = fields.List(fields.String())
    status = fields.String(metadata={"enum": ["pending", "accepted", "rejected", "revoked", "expired"]})
    created_at = fields.String()
    last_sent_at = fields.String()
    expires_at = fields.String()
    ended_at = fields.String(allow_none=True)
    invited_by = fields.String()
    invited_by_email = fields.String()
    send_count = fields.Integer()


InvitationPage = page_of(Invitation, "InvitationPage")


class BillingTransfer(Schema):
    id = fields.String()
    organization_id = fields.String()
    from_user_id = fields.String()
    to_user_id = fields.String()
    status = fields.String(metadata={"enum": ["pending", "accepted", "declined", "cancelled"]})
    created_at = fields.String()
    ended_at = fields.String(allow_none=True)


BillingTransferPage = page_of(BillingTransfer, "BillingTransferPage")


class Grant(Schema):
    id = fields.String()
    organization_id = fields.String()
    type = fields.String(metadata={"description": "free | paid"})
    amount = fields.String()
    remaining = fields.String()
    expires_at = fields.String(allow_none=True)
    expired = fields.Boolean()
    created_by = fields.String()
    created_at = fields.String()


class Credits(Schema):
    organization_id = fields.String()
    balance = fields.String(metadata={"description": "exact decimal: credit that can be spent now"})
    free_balance = fields.String()
    paid_balance = fields.String()
    spent_this_period = fields.String()
    period = fields.String(metadata={"description": "calendar month, UTC, e.g. 2026-11"})
    resets_at = fields.String()
    active_grant_count = fields.Integer()
    grants = fields.List(fields.Nested(Grant), metadata={
        "description": "grants still holding credit, in the order spends use them (at most 100)"})


class Allocation(Schema):
    grant_id = fields.String()
    type = fields.String()
    amount = fields.String()


class LedgerEntry(Schema):
    id = fields.String()
    organization_id = fields.String()
    kind = fields.String(metadata={"description": "grant | spend | expiry"})
    amount = fields.String(metadata={"description": "positive; kind says which way"})
    balance_after = fields.String()
    actor = fields.Dict(metadata={"description": '{"id", "email"} or {"id": "system"}'})
    user_id = fields.String(allow_none=True, metadata={"description": "spends: the member who used the agent"})
    agent_id = fields.String(allow_none=True)
    grant_id = fields.String(allow_none=True)
    grant_type = fields.String(allow_none=True)
    allocations = fields.List(fields.Nested(Allocation), allow_none=True)
    occurred_at = fields.String()


LedgerPage = page_of(LedgerEntry, "LedgerPage")


class Budget(Schema):
    budget_group_id = fields.String(allow_none=True)
    budget_group_name = fields.String(allow_none=True)
    limit = fields.String(allow_none=True, metadata={"description": "monthly limit; null: no limit"})
    used = fields.String(metadata={"description": "spent this period"})
    remaining = fields.String(allow_none=True)
    period = fields.String()
    period_start = fields.String()
    resets_at = fields.String()


class Spend(Schema):
    id = fields.String()
    organization_id = fields.String()
    agent_id = fields.String()
    user_id = fields.String()
    amount = fields.String()
    occurred_at = fields.String()
    budget = fields.Nested(Budget)


class Allowance(Schema):
    """What the caller can still spend in an organization, and which limit binds (Allowance in
    services/credits/domain.py)."""
    can_spend = fields.String(metadata={"description": "the most the caller can spend now"})
    binding_limit = fields.String(metadata={"description": "balance | budget_group: what can_spend comes from"})
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


class BudgetGroup(Schema):
    id = fields.String()
    organization_id = fields.String()
    name = fields.String()
    monthly_limit = fields.String(allow_none=True)
    monthly_limit_label = fields.String(metadata={"description": 'the limit, or "No limit"'})
    builder_limit = fields.Integer(allow_none=True)
    member_count = fields.Integer()
    created_by = fields.String()
    created_at = fields.String()
    updated_at = fields.String()


BudgetGroupPage = page_of(BudgetGroup, "BudgetGroupPage")


class BudgetGroupMemberUsage(Schema):
    user_id = fields.String()
    used = fields.String()
    limit = fields.String(allow_none=True)
    remaining = fields.String(allow_none=True)
    added_at = fields.String()


class BudgetGroupDetail(BudgetGroup):
    period = fields.String()
    period_start = fields.String()
    resets_at = fields.String()
    members = fields.List(fields.Nested(BudgetGroupMemberUsage))
    members_next_cursor = fields.String(allow_none=True)


class BudgetGroupMembership(Schema):
    user_id = fields.String()
    budget_group_id = fields.String()
    added_by = fields.String()
    added_at = fields.String()


class Agent(Schema):
    id = fields.String()
    organization_id = fields.String()
    name = fields.String()
    code = fields.String()
    mission = fields.String()
    welcome_message = fields.String()
    instructions = fields.String()
    avatar_url = fields.String(allow_none=True)
    contributors = fields.List(fields.String(), metadata={"description": "user ids of contributing Builders"})
    assignees = fields.List(fields.String(), metadata={"description": "user ids of members assigned to it"})
    created_by = fields.String()
    created_at = fields.String()
    updated_at = fields.String()
    permissions = fields.List(fields.String(), metadata={
        "description": "what the caller may do: edit, delete, manage_access, transfer, view_audit, use"})


AgentPage = page_of(Agent, "AgentPage")


class AgentPerson(Schema):
    user_id = fields.String()
    added_by = fields.String()
    added_at = fields.String()


AgentPersonPage = page_of(AgentPerson, "AgentPersonPage")


class TransferOutcome(Schema):
    user_id = fields.String()
    destination_roles = fields.List(fields.String())
    outcome = fields.String(metadata={"enum": ["will retain access", "will be removed", "will be added",
                                               "retained access", "removed", "added"]})


class TransferReport(Schema):
    agent_id = fields.String()
    name = fields.String()
    source_organization_id = fields.String()
    destination_organization_id = fields.String()
    dry_run = fields.Boolean()
    contributors = fields.List(fields.Nested(TransferOutcome))
    assignees = fields.List(fields.Nested(TransferOutcome))
    correlation_id = fields.String(allow_none=True, metadata={"description": "shared by both organizations' trails"})
    transferred_at = fields.String()


class Change(Schema):
    field = fields.String()
    old_value = fields.Raw(allow_none=True)
    new_value = fields.Raw(allow_none=True)


class Actor(Schema):
    id = fields.String()
    email = fields.String()


class AuditEntry(Schema):
    event_id = fields.String()
    type = fields.String()
    entity_type = fields.String()
    entity_id = fields.String()
    action = fields.String(metadata={"enum": ["create", "update", "delete"]})
    actor = fields.Nested(Actor)
    organization_id = fields.String(allow_none=True)
    correlation_id = fields.String(allow_none=True)
    changes = fields.List(fields.Nested(Change))
    occurred_at = fields.String()


AuditPage = page_of(AuditEntry, "AuditPage")


class Health(Schema):
    status = fields.String(metadata={"enum": ["ok", "degraded"]})
    rabbitmq = fields.String()
    services = fields.Dict(keys=fields.String(), values=fields.String())


class AgentTrailRow(Schema):
    event_id = fields.String()
    type = fields.String()
    entity_type = fields.String()
    entity_id = fields.String()
    action = fields.String(metadata={"enum": ["create", "update", "delete"]})
    actor = fields.Nested(Actor)
    organization_id = fields.String(allow_none=True)
    correlation_id = fields.String(allow_none=True)
    field = fields.String()
    old_value = fields.Raw(allow_none=True)
    new_value = fields.Raw(allow_none=True)
    occurred_at = fields.String()


AgentTrailPage = page_of(AgentTrailRow, "AgentTrailPage")
