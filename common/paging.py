"""Cursor paging: every list answers {"items": [...], "next_cursor": "..." | null}.

A cursor is opaque to clients: base64 of a small, flat JSON object. Any other value is a 400
`invalid_cursor`, never a 500.

Why cursors are validated strictly rather than signed: a cursor only says where the next page starts in a
list the caller may already read (every service filters by the organization and the caller's rights
apart from it), so a forged but well-formed cursor reveals nothing; what did harm was malformed ones
(floats, integers beyond any column, 3,000 nested brackets, lone surrogates: 500s). A signature would
need a key shared by the four services that decode cursors, and none of them holds one (the JWT secret
is the gateway's, and with RS256 there is none). So `decode_cursor` accepts exactly what
`encode_cursor` writes: its canonical base64 of a flat object of bounded strings and integers.
"""
import base64
import binascii
import json

from common.errors import BadRequest, ValidationFailed
from common.schemas import loads_json, text_problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SEARCH_MAX_LENGTH = 200      # a list's search text (`q`), characters

# The longest cursor issued holds an agent's name (200 characters, lower-cased, \u-escaped) and its id.
MAX_CURSOR_LENGTH = 4096
MAX_CURSOR_TEXT_LENGTH = 1024
# Positions are offsets and row ids: 0 to the largest 64-bit integer, which every integer column and
# OFFSET of SQLite and PostgreSQL takes (a larger one was an OverflowError in the SQLite driver).
MAX_CURSOR_INTEGER = 2 ** 63 - 1


def invalid_cursor():
    return BadRequest("The cursor is not valid; use next_cursor from a previous page.",
                      code="invalid_cursor", field="cursor")


def encode_cursor(position):
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode()


def _refuse_float(text):
    raise ValueError("a cursor holds no fractions")


def _is_cursor_value(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value <= MAX_CURSOR_INTEGER
    return isinstance(value, str) and len(value) <= MAX_CURSOR_TEXT_LENGTH and text_problem(value) is None


def decode_cursor(cursor, **fields):
    """The position a cursor stands for (a dict), or None for the first page; 400 invalid_cursor for any
    value `encode_cursor` did not write. With `fields` (name=type, e.g. before=int), the position must
    hold exactly those names with values of those types."""
    if cursor in (None, ""):
        return None
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid_cursor()
    try:
        text = base64.b64decode(cursor.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
        position = loads_json(text, max_depth=1, parse_float=_refuse_float)
    except (binascii.Error, ValueError):   # UnicodeError and json's errors are ValueErrors too
        raise invalid_cursor() from None
    # Re-encoding must give the cursor back: no other spelling (padding, "+/" for "-_", spaces, keys
    # repeated) of a position is one this API issued.
    if not isinstance(position, dict) or not position or encode_cursor(position) != cursor:
        raise invalid_cursor()
    if not all(_is_cursor_value(value) for value in position.values()):
        raise invalid_cursor()
    if fields and (position.keys() != fields.keys()
                   or not all(isinstance(position[name], kind) for name, kind in fields.items())):
        raise invalid_cursor()
    return position


def check_limit(limit, default=DEFAULT_LIMIT, maximum=MAX_LIMIT):
    if limit is None:
        return default
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise ValidationFailed(f"limit must be a whole number from 1 to {maximum}.", field="limit")
    return limit


def _offset(cursor):
    return (decode_cursor(cursor, offset=int) or {"offset": 0})["offset"]


def page_of_list(items, cursor, limit):
    """Page through a list already held in memory (short lists such as a user's organizations)."""
    limit, offset = check_limit(limit), _offset(cursor)
    page = items[offset:offset + limit]
    more = offset + limit < len(items)
    return {"items": page, "next_cursor": encode_cursor({"offset": offset + limit}) if more else None}


def page_of_query(session, query, cursor, limit, scalars=True):
    """Page through a SQLAlchemy select (ordered by the caller) by offset; returns ORM rows (or, with
    scalars=False, result rows of several columns)."""
    limit, offset = check_limit(limit), _offset(cursor)
    result = (session.scalars if scalars else session.execute)(query.offset(offset).limit(limit + 1))
    rows = result.all()
    more = len(rows) > limit
    return {"items": rows[:limit], "next_cursor": encode_cursor({"offset": offset + limit}) if more else None}
