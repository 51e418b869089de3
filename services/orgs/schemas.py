"""Marshmallow schemas of the orgs service: the shapes its RPC methods answer with."""
from marshmallow import Schema, fields

from common.schemas import UtcDateTime


class OrganizationSchema(Schema):
    id = fields.String()
    name = fields.String()
    type = fields.String()
    created_by = fields.String()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


organization_schema = OrganizationSchema()
