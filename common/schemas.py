"""Marshmallow pieces every service's schemas use."""
from marshmallow import ValidationError, fields, validate

from common.auth import USER_ID_MAX_LENGTH
from common.errors import ValidationFailed
from common.timeutil import iso, parse_iso


class UtcDateTime(fields.Field):
    """ISO 8601 in UTC with a `Z` on the way out; any ISO 8601 (zone-less = UTC) on the way in."""

    def _serialize(self, value, attr, obj, **kwargs):
        return iso(value)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_iso(value)
        except ValueError:
            raise ValidationError(f"{attr} must be an ISO 8601 time, e.g. 2026-11-23T14:00:00Z.")


def UserId(**kwargs):
    """A user id in a request (common.auth's rule: 1 to 128 characters)."""
    return fields.String(validate=validate.Length(min=1, max=USER_ID_MAX_LENGTH), **kwargs)


def load_or_fail(schema, data):
    """schema.load(data), with marshmallow's error turned into our 422 naming the first bad field."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        field, messages = next(iter(exc.messages.items()))
        message = messages[0] if isinstance(messages, list) else str(messages)
        raise ValidationFailed(message, field=field)
