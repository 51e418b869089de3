"""Cursor paging: every list answers {"items": [...], "next_cursor": "..." | null}.

A cursor is opaque to clients (base64 of a small JSON object); a tampered one is a 400, not a 500.
"""
import base64
import binascii
import json

from common.errors import BadRequest, ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def invalid_cursor():
    return BadRequest("The cursor is not valid; use next_cursor from a previous page.",
                      code="invalid_cursor", field="cursor")


def encode_cursor(position):
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor):
    """The position a cursor stands for, or None for the first page."""
    if cursor in (None, ""):
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, AttributeError):
        raise invalid_cursor()
    if not isinstance(position, dict):
        raise invalid_cursor()
    return position


def check_limit(limit, default=DEFAULT_LIMIT, maximum=MAX_LIMIT):
    if limit is None:
        return default
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise ValidationFailed(f"limit must be a whole number from 1 to {maximum}.", field="limit")
    return limit


def _offset(cursor):
    offset = (decode_cursor(cursor) or {"offset": 0}).get("offset")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise invalid_cursor()
    return offset


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
