"""An organization API key's name, scopes and expiry (SPEC §9). That the expiry is in the future is checked
against the members service's clock when the key is made (services/members/api_keys.py)."""
from marshmallow import fields
from marshmallow.validate import Length, OneOf, Predicate

from common.contracts.base import Coded, Contract
from common.contracts.fields import IsoTime, ListOf, Name
from common.permissions import SCOPES

NAME_MAX_LENGTH = 200
NAME_REQUIRED = Coded("A key needs a name.", "name_required")
NAME_TOO_LONG = Coded(f"The name must be at most {NAME_MAX_LENGTH} printable characters.", "name_too_long")
INVALID_SCOPES = Coded(f"scopes must list at least one of {', '.join(SCOPES)}.", "invalid_scopes")


class ApiKeyInput(Contract):
    name = Name("The key's name", NAME_MAX_LENGTH, required=True, blank=NAME_REQUIRED, invalid=NAME_REQUIRED,
                too_long=NAME_TOO_LONG, validate=[Predicate("isprintable", error=NAME_TOO_LONG)])
    scopes = ListOf(fields.String(validate=[OneOf(SCOPES, error=INVALID_SCOPES)],
                                  error_messages={"invalid": INVALID_SCOPES, "null": INVALID_SCOPES}),
                    required=True, validate=[Length(min=1, error=INVALID_SCOPES)],
                    error_messages={"invalid": INVALID_SCOPES, "null": INVALID_SCOPES, "required": INVALID_SCOPES})
    expires_at = IsoTime(Coded("expires_at must be an ISO 8601 time.", "invalid_time"), allow_none=True)
