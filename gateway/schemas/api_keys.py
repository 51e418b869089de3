"""Organization API keys (SPEC §9): the members service's resource."""
from marshmallow import Schema, fields

from common.contracts.api_keys import SCOPES as _SCOPES
from common.contracts.api_keys import ApiKeyInput
from gateway.schemas.common import ContractField, Strict, date_time, page_of

SCOPES = list(_SCOPES)
KEY_STATUSES = ["active", "expired", "revoked"]


def _key_field(name, description):
    # The members service checks these before anything else, so the gateway applies the same rules
    # (common.contracts.api_keys) with the same answers; absent arrives as None. Whether the expiry is
    # in the future is the members service's to say, by its clock.
    return ContractField(ApiKeyInput.field(name), enforce=True, load_default=None,
                         metadata={"description": description})


class ApiKeyBody(Strict):
    name = _key_field("name", "required, at most 200")
    scopes = _key_field("scopes", "at least one")
    expires_at = _key_field("expires_at", "optional; in the future")


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
