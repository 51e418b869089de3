"""The field types of the contracts: trimmed text, an email address, a credit amount, a time, a strict list.
Each one converts in one direction, a request's value to what the rules work with. `openapi` holds the
keywords gateway/openapi.py documents the type with (the validators add their own: lengths, ranges, enums)."""
from marshmallow import ValidationError, fields, validate
from marshmallow.validate import Length

from common.auth import EMAIL_MAX_LENGTH, canonical_email
from common.contracts.base import Coded
from common.errors import ValidationFailed
from common.money import MAX_AMOUNT, PLACES, parse_amount
from common.schemas import name_problem
from common.timeutil import parse_iso


class Text(fields.String):
    """Text in a request, trimmed before its rules are checked (the trimmed length counts). `invalid`: a
    value that is no string; `blank`, when given, refuses an empty (or absent, or null) text; `too_long`:
    more than `max_length` characters. `none_as_empty`: null means the empty text (it clears a field)."""

    def __init__(self, max_length, *, invalid, too_long, blank=None, none_as_empty=False, validate=(), **kwargs):
        validators = [*([] if blank is None else [Length(min=1, error=blank)]),
                      Length(max=max_length, error=too_long), *validate]
        messages = {"invalid": invalid, **({} if blank is None else {"null": blank, "required": blank})}
        super().__init__(validate=validators, error_messages=messages, **kwargs)
        self.none_as_empty = none_as_empty

    def deserialize(self, value, attr=None, data=None, **kwargs):
        if value is None and self.none_as_empty:
            value = ""
        return super().deserialize(value, attr, data, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


class ReadableName(validate.Validator):
    """A name a person can read (common.schemas.name_problem), refused with the problem as its code and a
    message naming `label`."""
    MESSAGES = {"control_character": "{label} must not contain control characters such as line breaks.",
                "direction_override": "{label} must not contain direction overrides or isolates "
                                      "(U+202A to U+202E, U+2066 to U+2069).",
                "invisible_name": "{label} must contain at least one visible character."}

    def __init__(self, label):
        self.label = label

    def __call__(self, value):
        problem = name_problem(value)
        if problem is not None:
            raise ValidationError(Coded(self.MESSAGES[problem].format(label=self.label), problem))
        return value


def Name(label, max_length, **kwargs):
    """Trimmed text that names something people see (an organization, an agent, a budget group, a key):
    Text with the readable-name rule, checked after the length and before the field's own rules."""
    return Text(max_length, validate=[ReadableName(label), *kwargs.pop("validate", ())], **kwargs)


class EmailAddress(Text):
    """An email address in a request, to the one form it is stored and compared in (common.auth.
    canonical_email); `not_an_address` refuses text that has no such form."""
    openapi = {"format": "email"}

    def __init__(self, *, not_an_address, **kwargs):
        super().__init__(EMAIL_MAX_LENGTH, too_long=not_an_address, **kwargs)
        self.not_an_address = not_an_address

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text:
            return text              # `blank` refuses it
        canonical = canonical_email(text)
        if canonical is None:
            raise ValidationError(self.not_an_address)
        return canonical


class Amount(fields.Field):
    """A credit amount in a request (a string such as "12.50", or a JSON number without an exponent) to
    whole units: common.money.parse_amount's rules, messages and codes. Answers write amounts back as text
    with the credits service's MoneyText."""
    openapi = {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*$",
               "description": f"an exact decimal, at most {MAX_AMOUNT} with at most {PLACES} decimal places"}
    default_error_messages = {"required": Coded("{name} is required.", "amount_required"),
                              "null": Coded("{name} is required.", "amount_required")}

    def __init__(self, allow_zero=False, **kwargs):
        super().__init__(**kwargs)
        self.allow_zero = allow_zero

    def make_error(self, key, **kwargs):
        return super().make_error(key, name=self.name, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_amount(value, self.name, allow_zero=self.allow_zero)
        except ValidationFailed as refusal:
            raise ValidationError(Coded(refusal.message, refusal.code)) from None


class IsoTime(fields.Field):
    """A time in a request: ISO 8601, zone-less taken as UTC, to an aware UTC datetime; `invalid` (its
    `{name}` is the field's) refuses anything else. Answers write times with common.schemas.UtcDateTime."""
    openapi = {"type": "string", "format": "date-time"}

    def __init__(self, invalid, **kwargs):
        super().__init__(**kwargs)
        self.invalid = invalid

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_iso(value)
        except ValueError:
            raise ValidationError(self.invalid.format(name=self.name)) from None


class ListOf(fields.List):
    """A JSON array: a list, never a tuple, set or string (marshmallow's List takes any collection).
    `max_items`, when given, is checked before the items: a list too long is refused as such (`too_many`),
    whatever its items; a Length validator instead counts after them."""

    def __init__(self, inner, *, max_items=None, too_many=None, **kwargs):
        super().__init__(inner, **kwargs)
        self.max_items, self.too_many = max_items, too_many

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise self.make_error("invalid")
        if self.max_items is not None and len(value) > self.max_items:
            raise ValidationError(self.too_many)
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBool(fields.Boolean):
    """true or false only (marshmallow's Boolean also takes 1, "yes", "on"...)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Distinct(validate.Validator):
    """No item twice (documented as uniqueItems)."""

    def __init__(self, error):
        self.error = error

    def __call__(self, value):
        if len(set(value)) != len(value):
            raise ValidationError(self.error)
        return value
