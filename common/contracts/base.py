"""What every contract is made of: messages that carry their error code, the base schema, and `load`, which
turns a refusal into the ValidationFailed the API answers (common.errors)."""
from marshmallow import RAISE, Schema, ValidationError
from marshmallow.schema import SCHEMA

from common.errors import ValidationFailed

GENERIC_CODE = "validation_error"     # the code of a message that names none


class Coded(str):
    """An error message and the code it is answered with. Marshmallow keeps a field's messages as they are
    given and fills them in with str.format, which keeps them coded here."""

    def __new__(cls, text, code):
        message = super().__new__(cls, text)
        message.code = code
        return message

    def format(self, *args, **kwargs):
        return Coded(super().format(*args, **kwargs), self.code)

    def __deepcopy__(self, memo):    # schemas deep-copy their fields; a message never changes
        return self


def code_of(message):
    return getattr(message, "code", GENERIC_CODE)


def first_message(messages):
    """The first message of a field's errors, however marshmallow nested them (a list's are by index)."""
    while not isinstance(messages, str):
        messages = next(iter(messages.values())) if isinstance(messages, dict) else messages[0]
    return messages


class Contract(Schema):
    """The rules of one input shape, with the messages and codes they are answered with. Unknown fields are
    refused; the schema-level `error_messages` may give `type` (not an object) and `unknown` (its `{field}`
    is the unknown field's name) their own codes."""

    class Meta:
        unknown = RAISE

    # A refusal names the first broken rule: an unknown field first (False: after the fields' own rules),
    # then the fields' in the order they are declared (the order they were always checked in), or, with
    # errors_in_input_order, in the order the input names them.
    unknown_fields_first = True
    errors_in_input_order = False

    @classmethod
    def instance(cls):
        """The one instance of the contract (loading keeps no state in it)."""
        if "_instance" not in cls.__dict__:
            cls._instance = cls()
        return cls._instance

    @classmethod
    def field(cls, name):
        """The contract's field `name`, bound (it knows its name), for the gateway's request schemas."""
        return cls.instance().fields[name]


def load(contract, data, partial=False):
    """`data` loaded by `contract` (a Contract class or instance); ValidationFailed naming the first broken
    rule (first_error) with its message and code otherwise. `partial`: required fields may be absent."""
    schema = contract.instance() if isinstance(contract, type) else contract
    try:
        return schema.load(data, partial=partial)
    except ValidationError as refusal:
        message, field = first_error(schema, data, refusal.messages)
        raise ValidationFailed(message, code=code_of(message), field=field) from None


def first_error(schema, data, messages):
    """(message, field) of the refusal answered: that the input is not an object, then an unknown field
    (the first by name; or after the fields' rules), then the fields' own rules (declared order, or the
    input's), then rules across fields (they are checked only when every field passed)."""
    if SCHEMA in messages:
        return first_message(messages[SCHEMA]), None
    order = list(schema.fields)
    if schema.errors_in_input_order and isinstance(data, dict):
        order = [name for name in data if name in schema.fields] + [name for name in order if name not in data]
    unknown = sorted(name for name in messages if name not in schema.fields)
    order = [*unknown, *order] if schema.unknown_fields_first else [*order, *unknown]
    name = next(name for name in order if name in messages)
    message = first_message(messages[name])
    return (message.format(field=name) if name in unknown else message), name
