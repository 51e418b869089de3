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


user_schema = UserSchema()
membership_schema = MembershipSchema()
