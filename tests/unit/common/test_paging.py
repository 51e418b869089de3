"""Cursors: exactly what encode_cursor writes is accepted; every other value is a 400 invalid_cursor, never
a 500 (the crafted cursors of issue 14 each raised OverflowError, RecursionError or UnicodeEncodeError).
The keyset page helper is tested in test_keyset_paging.py."""
import base64

import pytest

from common import paging
from common.errors import BadRequest
from common.paging import decode_cursor, encode_cursor


def b64(raw):
    """A cursor made by hand: base64 of any bytes, as an attacker would write one."""
    return base64.urlsafe_b64encode(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")).decode()


HOSTILE_CURSORS = [
    b64('{"offset":1e30}'), b64('{"before":1e30}'), b64('{"at":"2026-01-01T00:00:00Z","seq":1e999}'),
    b64('{"offset":1000000000000000000000000000000}'), b64('{"before":-1}'), b64('{"offset":NaN}'),
    b64('{"offset":Infinity}'), b64("[" * 3000 + "]" * 3000), b64('{"offset":' + "[" * 3000 + "]" * 3000 + "}"),
    b64('{"a":{"b":1}}'), b64('{"a":[1]}'), b64('{"offset":true}'), b64('{"offset":null}'), b64("{}"),
    b64("[1]"), b64('"text"'), b64("1"), b64(b'{"name":"\xff\xfe"}'), b64('{"name":"\\ud800","id":"x"}'),
    b64('{"name":"\\u0000","id":"x"}'), b64('{"name":"' + "x" * 2000 + '","id":"x"}'),
    b64('{"offset": 1}'), b64('{"offset":1,"offset":2}'), b64('{"offset":01}'),
    "A" * (paging.MAX_CURSOR_LENGTH + 4), "x" * 10 ** 6, "%%%", "!!!", "eyJvZmZzZXQiOjF9" + "\n",
    "eyJvZmZzZXQiOjF9====", encode_cursor({"offset": 12}).rstrip("="), "e30", "é", "\ud800", "\x00", 12, ["a"],
    # the standard alphabet's "+/" where the URL-safe one has "-_": another spelling of an issued cursor
    encode_cursor({"name": "??>", "id": "x"}).replace("_", "/").replace("-", "+"),
]


@pytest.mark.parametrize("cursor", HOSTILE_CURSORS, ids=lambda c: repr(c)[:40])
def test_any_cursor_this_api_did_not_issue_is_a_400_invalid_cursor(cursor):
    with pytest.raises(BadRequest) as err:
        decode_cursor(cursor)
    assert (err.value.status, err.value.code, err.value.field) == (400, "invalid_cursor", "cursor")


@pytest.mark.parametrize("position", [
    {"offset": 0}, {"offset": 50}, {"before": paging.MAX_CURSOR_INTEGER}, {"user_id": "carl"},
    {"at": "2026-01-01T00:00:00.000000Z", "seq": 7, "change": 3},
    {"name": "ünïcødé ☃ 😀 " + "é" * 186, "id": "agt_1"},   # the longest kind: a 200-character name, \u-escaped
])
def test_every_cursor_encode_cursor_writes_decodes_to_its_position(position):
    assert decode_cursor(encode_cursor(position)) == position


def test_a_missing_cursor_is_the_first_page():
    assert decode_cursor(None) is None and decode_cursor("") is None


def test_named_fields_must_be_exactly_those_with_those_types():
    assert decode_cursor(encode_cursor({"before": 9}), before=int) == {"before": 9}
    for position in ({"before": "9"}, {"before": 9, "extra": 1}, {"after": 9}):
        with pytest.raises(BadRequest):
            decode_cursor(encode_cursor(position), before=int)


def test_a_field_may_be_null_only_where_its_types_allow_it():
    cursor = encode_cursor({"at": None, "id": 1})
    assert decode_cursor(cursor, at=(str, type(None)), id=int) == {"at": None, "id": 1}
    for fields in ({"at": str, "id": int}, {}):
        with pytest.raises(BadRequest):
            decode_cursor(cursor, **fields)
