"""The console's development sign-in (POST /v1/dev/token): the claims of the token asked for, checked by the
rules every token is checked by when it comes back (gateway.tokens.claim_problem, SPEC §10), so the
form's mistakes are a 422 naming the field instead of a token that the next request refuses."""
from marshmallow import Schema, ValidationError, fields

from common.auth import EMAIL_MAX_LENGTH, USER_ID_MAX_LENGTH
from gateway.schemas.common import Strict
from gateway.tokens import NAME_MAX_LENGTH, claim_problem


def _claim_rule(claim):
    """A field validator holding the field to the rule of the token claim it becomes."""
    def validate(value):
        problem = claim_problem(claim, value)
        if problem is not None:
            raise ValidationError(f"The {claim} {problem}.")
    return validate


class DevTokenBody(Strict):
    sub = fields.String(required=True, validate=_claim_rule("sub"), metadata={
        "description": "the user id; not 'system', not starting with 'key:'", "minLength": 1,
        "maxLength": USER_ID_MAX_LENGTH})
    email = fields.String(required=True, validate=_claim_rule("email"),
                          metadata={"format": "email", "maxLength": EMAIL_MAX_LENGTH})
    name = fields.String(load_default="", validate=_claim_rule("name"),
                         metadata={"description": "optional display name", "maxLength": NAME_MAX_LENGTH})


class DevToken(Schema):
    token = fields.String(metadata={"description": "an HS256 bearer token (24 hours), as `make token` mints"})
