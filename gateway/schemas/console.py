"""The console's development sign-in (POST /v1/dev/token): the claims of the token asked for, checked by the
rules every token is checked by when it comes back (gateway.tokens.identity_from_claims, SPEC §10), so the
form's mistakes are a 422 naming the field instead of a token that the next request refuses."""
from marshmallow import Schema, ValidationError, fields

from common.auth import (
    KEY_ACTOR_PREFIX,
    SYSTEM_ACTOR,
    USER_ID_MAX_LENGTH,
    canonical_email,
    is_printable_text,
    is_reserved_user_id,
    is_valid_user_id,
)
from gateway.schemas.common import Strict
from gateway.tokens import NAME_MAX_LENGTH


def _user_id(value):
    if not is_valid_user_id(value):
        raise ValidationError(f"A user id is 1 to {USER_ID_MAX_LENGTH} printable characters.")
    if is_reserved_user_id(value):
        raise ValidationError(f"'{SYSTEM_ACTOR['id']}' and ids starting with '{KEY_ACTOR_PREFIX}' name the "
                              "platform and API keys, never a user.")


def _email(value):
    if canonical_email(value) is None:
        raise ValidationError("Enter a valid email address (written without compatibility characters).")


def _name(value):
    if not is_printable_text(value) or len(value) > NAME_MAX_LENGTH:
        raise ValidationError(f"A name is at most {NAME_MAX_LENGTH} printable characters.")


class DevTokenBody(Strict):
    sub = fields.String(required=True, validate=_user_id,
                        metadata={"description": "the user id; not 'system', not starting with 'key:'"})
    email = fields.String(required=True, validate=_email)
    name = fields.String(load_default="", validate=_name, metadata={"description": "optional display name"})


class DevToken(Schema):
    token = fields.String(metadata={"description": "an HS256 bearer token (24 hours), as `make token` mints"})
