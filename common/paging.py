"""Cursor paging: every list answers {"items": [...], "next_cursor": "..." | null}.

Every list is keyset-paged by `keyset_page` (no OFFSET, no sorting of whole tables in memory): a list has
a `Keyset`, its sort keys, the last one unique among its rows; a page is the rows after the previous
page's last row in that order, `(k1, k2, …) > (v1, v2, …)` written out as ORs of ANDs, so that keys may
run in either direction and may be NULL; one row more than the page tells whether another follows.
The cursor holds the last row's key values and the list's name.

A cursor is opaque to clients: base64 of a small, flat JSON object. Any other value is a 400
`invalid_cursor`, never a 500; so is a cursor of another list, or of the same list in another order.

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
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, false, or_

from common.errors import BadRequest, ValidationFailed
from common.schemas import loads_json, text_problem
from common.timeutil import iso, parse_iso

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SEARCH_MAX_LENGTH = 200      # a list's search text (`q`), characters

# The longest cursor issued is the member list's by role or joined date: a name case-folded (200
# characters, up to 600 after folding, \u-escaped: 3,600), an email (320, astral: 3,840), a user id (128,
# astral: 1,536) and the rest; about 9,100 characters of JSON, 12,200 in base64.
MAX_CURSOR_LENGTH = 16384
MAX_CURSOR_TEXT_LENGTH = 1024
# Positions are row ids, sequence numbers and ranks: 0 to the largest 64-bit integer, which every integer
# column of SQLite and PostgreSQL takes (a larger one was an OverflowError in the SQLite driver).
MAX_CURSOR_INTEGER = 2 ** 63 - 1
LIST = "list"       # the field of a keyset cursor that names its list


def invalid_cursor():
    return BadRequest("The cursor is not valid; use next_cursor from a previous page.",
                      code="invalid_cursor", field="cursor")


def encode_cursor(position):
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode()


def _refuse_float(text):
    raise ValueError("a cursor holds no fractions")


def _is_cursor_value(value, kind=None):
    """A string or integer a cursor may hold; None only where `kind` (a type or tuple of types) allows it."""
    if value is None:
        return kind is not None and isinstance(None, kind)
    if isinstance(value, bool) or (kind is not None and not isinstance(value, kind)):
        return False
    if isinstance(value, int):
        return 0 <= value <= MAX_CURSOR_INTEGER
    return isinstance(value, str) and len(value) <= MAX_CURSOR_TEXT_LENGTH and text_problem(value) is None


def decode_cursor(cursor, **fields):
    """The position a cursor stands for (a dict), or None for the first page; 400 invalid_cursor for any
    value `encode_cursor` did not write. With `fields` (name=type, e.g. before=int, or a tuple of types
    such as (str, NoneType) for a value that may be null), the position must hold exactly those names with
    values of those types."""
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
    if fields and list(position) != list(fields):     # the names, in the order encode_cursor wrote them
        raise invalid_cursor()
    if not all(_is_cursor_value(value, fields.get(name)) for name, value in position.items()):
        raise invalid_cursor()
    return position


def check_limit(limit, default=DEFAULT_LIMIT, maximum=MAX_LIMIT):
    if limit is None:
        return default
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise ValidationFailed(f"limit must be a whole number from 1 to {maximum}.", field="limit")
    return limit


# ---- keyset paging -----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Key:
    """One sort key: its name in cursors, its SQL expression, the type of its values (str, int or datetime,
    which a cursor holds as ISO 8601 text), its direction. A nullable key sorts NULL after every value in
    either direction (NULLS LAST, which both databases take)."""
    name: str
    expression: object
    kind: type = str
    descending: bool = False
    nullable: bool = False

    def order(self):
        order = self.expression.desc() if self.descending else self.expression.asc()
        return order.nulls_last() if self.nullable else order

    def beyond(self, value):
        """The rows whose key comes after `value`, a value (nothing comes after NULL, the last)."""
        beyond = self.expression < value if self.descending else self.expression > value
        return or_(beyond, self.expression.is_(None)) if self.nullable else beyond

    def at(self, value):
        return self.expression.is_(None) if value is None else self.expression == value

    def cursor_type(self):
        kind = str if self.kind is datetime else self.kind
        return (kind, type(None)) if self.nullable else kind

    def encode(self, value):
        return iso(value) if self.kind is datetime and value is not None else value

    def decode(self, value):
        if self.kind is not datetime or value is None:
            return value
        try:
            moment = parse_iso(value)
        except ValueError:
            raise invalid_cursor() from None
        if iso(moment) != value:        # only the spelling encode() writes
            raise invalid_cursor()
        return moment


def asc(name, expression, kind=str, nullable=False):
    return Key(name, expression, kind, False, nullable)


def desc(name, expression, kind=str, nullable=False):
    return Key(name, expression, kind, True, nullable)


class Keyset:
    """The order of one list: its keys, the last of them unique among the list's rows, and its name, which
    its cursors carry (a cursor of another list, or of this one in another order, is refused)."""

    def __init__(self, name, *keys):
        assert keys and LIST not in {key.name for key in keys}
        self.name, self.keys = name, keys
        self.fields = {LIST: str, **{key.name: key.cursor_type() for key in keys}}

    def order_by(self):
        return [key.order() for key in self.keys]

    def after(self, values):
        """The rows after the one whose key values are `values`: (k1 beyond v1) or (k1 at v1 and k2 beyond
        v2) or …, portable where row-value comparison is not (mixed directions, NULLs)."""
        terms = [and_(*(key.at(value) for key, value in zip(self.keys[:i], values[:i], strict=True)),
                      self.keys[i].beyond(values[i])) for i in range(len(self.keys)) if values[i] is not None]
        return or_(*terms) if terms else false()

    def position(self, cursor):
        """The key values a cursor of this list holds, or None for the first page; 400 invalid_cursor else."""
        position = decode_cursor(cursor, **self.fields)
        if position is None:
            return None
        if position[LIST] != self.name:
            raise invalid_cursor()
        return tuple(key.decode(position[key.name]) for key in self.keys)

    def cursor(self, values):
        return encode_cursor({LIST: self.name, **{key.name: key.encode(value)
                                                  for key, value in zip(self.keys, values, strict=True)}})


def keyset_rows(session, query, keyset, after, limit):
    """At most `limit` rows of `query` (a select, unordered: the keyset's order is applied) after the row
    whose key values are `after` (None: from the start), and the key values of the last of them when more
    rows follow (else None). A row is the one entity or column `query` selects, else a tuple."""
    width = len(query.column_descriptions)
    if after is not None:
        query = query.where(keyset.after(after))
    keys = [key.expression.label(f"keyset_{i}") for i, key in enumerate(keyset.keys)]
    rows = session.execute(query.add_columns(*keys).order_by(*keyset.order_by()).limit(limit + 1)).all()
    items = [row[0] if width == 1 else tuple(row[:width]) for row in rows[:limit]]
    return items, (tuple(rows[limit - 1][width:]) if len(rows) > limit else None)


def keyset_page(session, query, keyset, cursor, limit, default=DEFAULT_LIMIT, maximum=MAX_LIMIT, dump=None):
    """One page of `query` in the keyset's order, from `cursor` (None: the first page): {"items",
    "next_cursor"}, next_cursor None on the last page (also when it is exactly full). The cursor and
    limit are checked before the database is asked. `dump`, if given, makes each row an item."""
    limit, after = check_limit(limit, default, maximum), keyset.position(cursor)
    rows, last = keyset_rows(session, query, keyset, after, limit)
    return {"items": [dump(row) for row in rows] if dump else rows,
            "next_cursor": keyset.cursor(last) if last is not None else None}
