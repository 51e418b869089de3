"""Marshmallow schemas of the members service: the shapes its RPC methods answer with."""
from marshmallow import Schema, fields

from common.permissions import sort_roles
from common.schemas import UtcDateTime


class UserSchema(Schema):
    id = fields.String()
    email = fields.String()
    name = fields.String()
    created_at = UtcDateTime()


class MembershipSchema(Schema):
    organization_id = fields.String()
    user_id = fields.String()
    roles = fields.Function(lambda m: sort_roles(m.roles))
    member_count = fields.Integer()
    joined_at = UtcDateTime()


class MemberSchema(Schema):
    user_id = fields.String()
    name = fields.String()
    email = fields.String()
    roles = fields.Function(lambda m: sort_roles(m["roles"]))
    budget_group_id = fields.String(allow_none=True)
    joined_at = UtcDateTime()


class InvitationSchema(Schema):
    id = fields.String()
    organization_id = fields.String()
    organization_name = fields.String()
    email = fields.String()
    roles = fields.Function(lambda i: sort_roles(i.roles))
    agent_ids = fields.List(fields.String())
    status = fields.String()
    created_at = UtcDateTime()
    last_sent_at = UtcDateTime()
    expires_at = UtcDateTime()
    ended_at = UtcDateTime(allow_none=True)
    invited_by = fields.String()
    invited_by_email = fields.String()
    send_count = fields.Integer()


class BillingTransferSchema(Schema):
    id = fields.String()
    organization_id = fields.String()
    from_user_id = fields.String()
    to_user_id = fields.String()
    status = fields.String()
    created_at = UtcDateTime()
    ended_at = UtcDateTime(allow_none=True)


user_schema = UserSchema()
membership_schema = MembershipSchema()
member_schema = MemberSchema()
invitation_schema = InvitationSchema()
billing_transfer_schema = BillingTransferSchema()
