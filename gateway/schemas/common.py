"""Schema pieces every resource uses: strict bodies, list queries, pages and the error body."""
from marshmallow import EXCLUDE, Schema, fields


class Strict(Schema):
    """Requests: unknown fields are refused with a 422 naming them."""


class ListQuery(Schema):
    class Meta:
        unknown = EXCLUDE
    cursor = fields.String(load_default=None)
    limit = fields.Integer(load_default=None, strict=False)


class StrictBoolean(fields.Boolean):
    """true or false only (marshmallow's Boolean also takes 1, "yes", "on"...)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def page_of(item_schema, name):
    """The schema of a list answer: {"items": [...], "next_cursor": "..." | null}."""
    return type(name, (Schema,), {
        "items": fields.List(fields.Nested(item_schema)), "next_cursor": fields.String(allow_none=True)})


class ErrorDetail(Schema):
    code = fields.String()
    message = fields.String()
    field = fields.String(allow_none=True)
    details = fields.Dict(metadata={"description": "present on some errors, e.g. budget_exceeded: the group, "
                                                   "limit, used amount and reset time"})


class ErrorBody(Schema):
    error = fields.Nested(ErrorDetail)
