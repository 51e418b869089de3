"""Members, invitations and billing transfers: the members service's resources."""
from marshmallow import Schema, fields, validate

from common.schemas import UserId
from gateway.schemas.common import ListQuery, Strict, page_of


# ---- requests -------------------------------------------------------------------------------------
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
    to_user_id = UserId(required=True)


# ---- responses ------------------------------------------------------------------------------------
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
