"""Schema pieces every resource uses: strict bodies, list queries, pages and the error body."""
from marshmallow import EXCLUDE, Schema, fields

from common.paging import MAX_LIMIT
from common.permissions import ALL_ROLES

# Metadata read by gateway/openapi.py, never by marshmallow (nothing here changes what is loaded or dumped):
# "format", "enum", "items", "minimum", "maximum", "description" go into the document as they are, and
# "optional": True marks a field of an answer that is left out of some answers (every other field of an
# answer is listed as required: the services always send it, null where it is nullable).
OPTIONAL = {"optional": True}
GRANT_TYPES = ["free", "paid"]


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


class ListQuery(Schema):
    class Meta:
        unknown = EXCLUDE
    cursor = fields.String(load_default=None, metadata={"description": "next_cursor of the previous page"})
    # Bounds checked by the services (common.paging.check_limit: 422 outside them).
    limit = fields.Integer(load_default=None, strict=False, metadata={"minimum": 1, "maximum": MAX_LIMIT})


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
                                                   "limit, used amount and reset time", **OPTIONAL})


class ErrorBody(Schema):
    error = fields.Nested(ErrorDetail)
