"""Schema pieces every resource uses: strict bodies, fields whose rules are a contract's, list queries,
pages and the error body."""
from marshmallow import EXCLUDE, Schema, ValidationError, fields

from common.contracts.base import first_message
from common.contracts.credits import GRANT_TYPES as _GRANT_TYPES
from common.contracts.fields import StrictBool
from common.paging import MAX_CURSOR_LENGTH, MAX_LIMIT
from common.permissions import ALL_ROLES

# Metadata read by gateway/openapi.py, never by marshmallow (nothing here changes what is loaded or dumped):
# "format", "enum", "items", "minimum", "maximum", "minLength", "maxLength", "pattern", "description" go
# into the document as they are (a limit the gateway leaves to a service, stated where no validator states
# it), and "optional": True marks a field of an answer that is left out of some answers (every other field
# of an answer is listed as required: the services always send it, null where it is nullable).
OPTIONAL = {"optional": True}
GRANT_TYPES = list(_GRANT_TYPES)


def date_time(description=None, optional=False, **kwargs):
    """A time in an answer: ISO 8601 in UTC (common.timeutil.iso), documented as format date-time."""
    metadata = {"format": "date-time", **({"description": description} if description else {}),
                **(OPTIONAL if optional else {})}
    return fields.String(metadata=metadata, **kwargs)


def roles_list(**kwargs):
    """A list of role names (common.permissions.Role)."""
    return fields.List(fields.String(metadata={"enum": list(ALL_ROLES)}), **kwargs)


class Strict(Schema):
    """Requests: unknown fields are refused with a 422 naming them."""


class ContractField(fields.Field):
    """A request field whose rules are a contract field's (common.contracts), so that /openapi.json states
    them (type, lengths, range, enum, pattern) from the one definition the service applies. This field's own
    arguments (required, load_default, allow_none, description) say how the gateway's body takes it.

    `shape`, when given, is the gateway's own check of the JSON type (a plain validation_error, answered
    before any rule) and what it passes on (e.g. an amount sent as a number, as its text). Then:
    - enforce=True: the gateway applies the rules to what it passes on (absent and null included) and
      answers the very code and message the service would. Only where the service checks the body before
      anything else, so the answer cannot differ.
    - otherwise the service checks them: it answers first where a permission, an idempotency replay or a
      create/edit difference comes before the rules."""

    def __init__(self, contract, shape=None, enforce=False, **kwargs):
        super().__init__(**kwargs)
        self.contract, self.shape, self.enforce = contract, shape, enforce

    def deserialize(self, value, attr=None, data=None, **kwargs):
        passed_on = super().deserialize(value, attr, data, **kwargs)
        if self.enforce:
            try:
                self.contract.deserialize(passed_on, attr, data)
            except ValidationError as refusal:    # one message for the field, as the service names it
                raise ValidationError(first_message(refusal.messages)) from None
        return passed_on

    def _deserialize(self, value, attr, data, **kwargs):
        return value if self.shape is None else self.shape.deserialize(value, attr, data)


class ListQuery(Schema):
    class Meta:
        unknown = EXCLUDE
    # Checked by the services (common.paging.decode_cursor: 400 invalid_cursor beyond the length).
    cursor = fields.String(load_default=None, metadata={"description": "next_cursor of the previous page",
                                                        "maxLength": MAX_CURSOR_LENGTH})
    # Bounds checked by the services (common.paging.check_limit: 422 outside them).
    limit = fields.Integer(load_default=None, strict=False, metadata={"minimum": 1, "maximum": MAX_LIMIT})


# true or false only: the contracts' field (marshmallow's Boolean also takes 1, "yes", "on"...).
StrictBoolean = StrictBool


def page_of(item_schema, name):
    """The schema of a list answer: {"items": [...], "next_cursor": "..." | null}."""
    return type(name, (Schema,), {
        "items": fields.List(fields.Nested(item_schema)), "next_cursor": fields.String(allow_none=True)})


class ErrorDetail(Schema):
    code = fields.String()
    message = fields.String()
    field = fields.String(allow_none=True)
    details = fields.Dict(metadata={"description": "present on some errors, e.g. budget_exceeded: the group, "
                                                   "limit, used amount and reset time", **OPTIONAL})


class ErrorBody(Schema):
    error = fields.Nested(ErrorDetail)
