"""Marshmallow pieces every service's schemas use, and the rules for untrusted JSON text and strings that
the gateway (request bodies, queries, paths) and common.paging (cursors) apply alike. The rules of the
API's inputs are common.contracts'."""
import json
import re
import unicodedata
from decimal import Decimal

from marshmallow import fields, validate

from common.auth import USER_ID_MAX_LENGTH
from common.timeutil import iso


class UtcDateTime(fields.Field):
    """A time in an answer: ISO 8601 in UTC with a `Z`. (A time in a request: common.contracts.fields.IsoTime.)"""

    def _serialize(self, value, attr, obj, **kwargs):
        return iso(value)


def UserId(**kwargs):
    """A user id in a request (common.auth's rule: 1 to 128 characters)."""
    return fields.String(validate=validate.Length(min=1, max=USER_ID_MAX_LENGTH), **kwargs)


# ---- untrusted JSON and text --------------------------------------------------------------------------
# No body of the API nests more than three levels; 32 leaves room and stops a body of 10,000 nested
# brackets (Python's parser would raise RecursionError on it: a 500).
MAX_JSON_DEPTH = 32


class JsonTooDeep(ValueError):
    """JSON nested deeper than allowed."""


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")   # NaN, Infinity, -Infinity: Python's json takes them by default


def loads_json(text, max_depth=MAX_JSON_DEPTH, parse_float=Decimal):
    """The value of JSON `text`, nested at most `max_depth` arrays/objects deep. Numbers with a fraction
    become Decimal by default (amounts stay exact, common.money). ValueError if it is not JSON (NaN and
    Infinity included), JsonTooDeep (a ValueError) if it nests too deep."""
    try:
        value = json.loads(text, parse_float=parse_float, parse_constant=_refuse_constant)
    except RecursionError:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels") from None
    if json_depth(value) > max_depth:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
    return value


def json_depth(value):
    """How many arrays/objects deep `value` nests (a scalar: 0). Iterative: the value may nest nearly as
    deep as the recursion limit, and a recursive walk from inside a worker would then overflow it."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


# U+D800-U+DFFF alone: JSON's "\ud800" escape makes one, and no database or encoder can store it
# (UnicodeEncodeError, a 500). NUL: PostgreSQL text cannot hold it.
_SURROGATE = re.compile("[\ud800-\udfff]")


# Marks that turn the text after them around (U+202A-U+202E embeddings and overrides, U+2066-U+2069
# isolates): "Invoice \u202egnp.exe" reads as "Invoice exe.png".
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters that draw nothing (Hangul fillers, the braille blank), beside the marks and formats below.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_INVISIBLE_CATEGORIES = frozenset({"Mn", "Me", "Cf", "Zs", "Zl", "Zp"})


def name_problem(text):
    """Why `text` is not a name a person can read (SPEC §10, issue 25), or None: "control_character" (C0, C1,
    DEL: a line break in a name forges a log line), "direction_override" (bidirectional overrides and
    isolates), "invisible_name" (only zero-width, combining, format or blank characters). One rule for
    every human-facing name: organizations, agents, budget groups, API keys, display names from tokens."""
    for character in text:
        if unicodedata.category(character) == "Cc":
            return "control_character"
        if character in BIDI_CONTROLS:
            return "direction_override"
    if text and all(c in _BLANK_LETTERS or unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in text):
        return "invisible_name"
    return None


def text_problem(text):
    """Why `text` cannot be stored as text: "nul_character", "invalid_text" (a lone surrogate), or None."""
    if "\x00" in text:
        return "nul_character"
    if _SURROGATE.search(text):
        return "invalid_text"
    return None
