"""An agent's configuration (product rules §6) and a person on an agent (a contributor or an assignee)."""
from urllib.parse import urlsplit

from marshmallow import ValidationError, fields, post_load, validates_schema
from marshmallow.validate import Length, Predicate

from common.auth import USER_ID_MAX_LENGTH
from common.contracts.base import Coded, Contract
from common.contracts.fields import Name, Text

# Configuration fields and their length limits (characters, counted after trimming).
FIELD_LIMITS = {"name": 200, "code": 100, "mission": 2000, "welcome_message": 2000,
                "instructions": 20000, "avatar_url": 2048}
NAME_REQUIRED = Coded("Agent name is required.", "name_required")
INVALID_URL = Coded("avatar_url must be an http or https URL.", "invalid_url")


def _config_text(name):
    """A configuration field: text, trimmed; null clears it (the empty text). The name is one people read
    (common.contracts.fields.Name)."""
    limit = FIELD_LIMITS[name]
    field_type = (lambda *args, **kwargs: Name("Agent name", *args, **kwargs)) if name == "name" else Text
    return field_type(limit, none_as_empty=True, invalid=Coded(f"{name} must be a string.", "invalid_type"),
                      too_long=Coded(f"{name} must be {limit} characters or fewer.", "too_long"))


class AgentInput(Contract):
    """The fields a create or an edit (load with partial=True) sets; absent ones stay absent. The name is
    required on create and cannot be emptied later; the avatar is an http(s) URL, or empty for none (None)."""
    error_messages = {"type": Coded("The agent must be an object of fields.", "invalid_type"),
                      "unknown": Coded("Unknown field: {field}.", "unknown_field")}
    errors_in_input_order = True

    name = _config_text("name")
    code = _config_text("code")
    mission = _config_text("mission")
    welcome_message = _config_text("welcome_message")
    instructions = _config_text("instructions")
    avatar_url = _config_text("avatar_url")

    @validates_schema
    def _name_and_avatar(self, data, partial=False, **kwargs):
        if (not partial or "name" in data) and not data.get("name"):
            raise ValidationError(NAME_REQUIRED, "name")
        url = data.get("avatar_url")
        if url:
            try:
                parts = urlsplit(url)
            except ValueError:          # e.g. "http://[::1": an unclosed IPv6 address (was a 500)
                raise ValidationError(INVALID_URL, "avatar_url") from None
            if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
                raise ValidationError(INVALID_URL, "avatar_url")

    @post_load(pass_original=True)
    def _as_given(self, data, original, **kwargs):
        """In the order the request names them (events and the agent's trail list changes in it); no
        avatar is None."""
        if "avatar_url" in data:
            data["avatar_url"] = data["avatar_url"] or None
        return {name: data[name] for name in original if name in data}


USER_ID = Coded("user_id must be a user id.", "invalid_type")


class AgentPersonInput(Contract):
    """The member made a contributor or an assignee: a user id (common.auth.is_valid_user_id)."""
    user_id = fields.String(required=True, validate=[Length(1, USER_ID_MAX_LENGTH, error=USER_ID),
                                                     Predicate("isprintable", error=USER_ID)],
                            error_messages={"invalid": USER_ID, "null": USER_ID, "required": USER_ID})
