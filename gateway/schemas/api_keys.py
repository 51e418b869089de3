"""Organization API keys (SPEC §9): the members service's resource."""
from marshmallow import Schema, fields

from gateway.schemas.common import Strict, date_time, page_of

SCOPES = ["usage:write", "usage:read", "audit:read"]     # services/members/api_keys.py checks them
KEY_STATUSES = ["active", "expired", "revoked"]


class ApiKeyBody(Strict):
    name = fields.Raw(load_default=None, metadata={"type": "string", "description": "required, at most 200"})
    scopes = fields.Raw(load_default=None, metadata={
        "type": "array", "items": {"type": "string", "enum": SCOPES}, "description": "at least one"})
    expires_at = fields.Raw(load_default=None, metadata={"type": "string", "format": "date-time",
                                                         "description": "optional; in the future"})


class ApiKey(Schema):
    id = fields.String()
    organization_id = fields.String()
    name = fields.String()
    scopes = fields.List(fields.String(metadata={"enum": SCOPES}))
    prefix = fields.String(metadata={"description": "the key's start, to tell keys apart (never the secret)"})
    created_by = fields.String()
    created_at = date_time()
    expires_at = date_time(allow_none=True)
    last_used_at = date_time(allow_none=True)
    revoked_at = date_time(allow_none=True)
    status = fields.String(metadata={"enum": KEY_STATUSES})


class CreatedApiKey(ApiKey):
    key = fields.String(metadata={"description": "the key to send as `Authorization: Bearer <key>`: shown "
                                                 "this once, never again"})


ApiKeyPage = page_of(ApiKey, "ApiKeyPage")
