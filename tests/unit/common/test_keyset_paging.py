"""The one keyset page helper every list uses (common.paging.keyset_page): walking the pages gives every row
once, in the keyset's order (ascending and descending keys, ties broken by the last, unique key, NULLs
last in either direction), with no empty last page; a cursor of another list, or of the same list in
another order, is a 400 invalid_cursor; the page is computed in SQL with LIMIT, never OFFSET."""
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import DateTime, Integer, String, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import Store
from common.errors import BadRequest, ValidationFailed
from common.paging import Keyset, asc, desc, encode_cursor, keyset_page
from common.sql import code_point_order
from tests.unit.paging import walk_pages


class Base(DeclarativeBase):
    pass


class Thing(Base):
    __tablename__ = "things"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team: Mapped[str] = mapped_column(String(20))
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at = mapped_column(DateTime(timezone=True), nullable=True)


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Ties on every key but the id, NULLs in the nullable ones, times a microsecond apart.
ROWS = [(1, "b", 3, T0), (2, "a", None, T0), (3, "b", 3, None), (4, "c", 1, T0 + timedelta(microseconds=1)),
        (5, "a", 3, T0), (6, "B", None, None), (7, "b", 2, T0), (8, "a", 1, T0 - timedelta(days=1)),
        (9, "c", 3, None), (10, "b", None, T0), (11, "é", 2, T0), (12, "a", 3, T0)]

KEYSETS = {
    "team, id": Keyset("t1", asc("team", Thing.team), asc("id", Thing.id, int)),
    "team desc, id desc": Keyset("t2", desc("team", Thing.team), desc("id", Thing.id, int)),
    "score desc nullable, id": Keyset("t3", desc("score", Thing.score, int, nullable=True), asc("id", Thing.id, int)),
    "team, at desc nullable, id desc": Keyset("t4", asc("team", Thing.team),
                                              desc("at", Thing.at, datetime, nullable=True), desc("id", Thing.id, int)),
    "at nullable, score nullable, id": Keyset("t5", asc("at", Thing.at, datetime, nullable=True),
                                              asc("score", Thing.score, int, nullable=True), asc("id", Thing.id, int)),
}


def expected_order(keyset):
    """The rows' ids sorted in Python: a stable sort per key, the last key first; NULLs last both ways."""
    rows = [dict(zip(("id", "team", "score", "at"), row, strict=True)) for row in ROWS]
    for key in reversed(keyset.keys):
        def value(row, name=key.name, descending=key.descending):
            present = row[name] is not None
            # Sorted in reverse for a descending key, so there "present" must sort high to come first.
            return (present if descending else not present, row[name] if present else 0)
        rows.sort(key=value, reverse=key.descending)
    return [row["id"] for row in rows]


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'things.sqlite'}")
    Base.metadata.create_all(store.engine)
    with store.write() as session:
        session.add_all(Thing(id=i, team=team, score=score, at=at) for i, team, score, at in ROWS)
    return store


def page(store, keyset, cursor, limit, query=None):
    with store.read() as session:
        return keyset_page(session, query if query is not None else select(Thing), keyset, cursor, limit,
                           dump=lambda thing: thing.id)


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 11, 12, 13, 200])
@pytest.mark.parametrize("name", KEYSETS)
def test_the_pages_hold_every_row_once_in_the_keysets_order(store, name, limit):
    keyset = KEYSETS[name]
    seen, pages = walk_pages(lambda cursor: page(store, keyset, cursor, limit), limit)
    assert seen == expected_order(keyset)
    assert pages == -(-len(ROWS) // limit)      # no empty page after the last row, whatever the limit


def test_ties_are_broken_by_the_unique_key(store):
    by_team = Keyset("t", asc("team", Thing.team), asc("id", Thing.id, int))
    seen, _ = walk_pages(lambda cursor: page(store, by_team, cursor, 2, select(Thing).where(Thing.team == "a")), 2)
    assert seen == [2, 5, 8, 12]


def test_a_page_ending_exactly_at_the_last_row_has_no_next_cursor(store):
    keyset = KEYSETS["team, id"]
    assert page(store, keyset, None, len(ROWS))["next_cursor"] is None
    first = page(store, keyset, None, len(ROWS) // 2)
    second = page(store, keyset, first["next_cursor"], len(ROWS) // 2)
    assert len(second["items"]) == len(ROWS) // 2 and second["next_cursor"] is None
    with store.read() as session:
        assert keyset_page(session, select(Thing).where(Thing.team == "none"), keyset, None, 5) == {
            "items": [], "next_cursor": None}


def test_a_cursor_holds_the_last_rows_key_values_and_the_lists_name(store):
    keyset = KEYSETS["team, at desc nullable, id desc"]
    first = page(store, keyset, None, 5)       # "B" < "a"; a: 12, 5, 2 at T0 (ids descending), 8 a day earlier
    assert first["items"] == [6, 12, 5, 2, 8]
    assert keyset.position(first["next_cursor"]) == ("a", T0 - timedelta(days=1), 8)
    assert first["next_cursor"] == encode_cursor({"list": "t4", "team": "a", "at": "2026-02-28T12:00:00.000000Z",
                                                  "id": 8})
    nulls = page(store, keyset, keyset.cursor(("b", None, 3)), 3)   # b's last (its at NULL), then c and é
    assert nulls["items"] == [4, 9, 11]


@pytest.mark.parametrize("cursor", [
    KEYSETS["team, id"].cursor(("b", 1)),                             # another list with the same fields
    Keyset("t4", asc("team", Thing.team), asc("id", Thing.id, int)).cursor(("b", 1)),   # fields missing
    encode_cursor({"list": "t4", "team": "b", "at": None, "id": "1"}),                  # a text id
    encode_cursor({"list": "t4", "team": "b", "at": "2026-03-01T12:00:00Z", "id": 1}),  # another spelling of a time
    encode_cursor({"list": "t4", "team": "b", "at": "yesterday", "id": 1}),
    encode_cursor({"list": "t4", "team": None, "at": None, "id": 1}),    # NULL where the key cannot be
    encode_cursor({"list": "t4", "at": None, "team": "b", "id": 1}),     # fields in another order
    encode_cursor({"team": "b", "at": None, "id": 1}),                   # no list
    encode_cursor({"offset": 10}), "%%%",
])
def test_a_cursor_of_another_list_or_shape_is_refused_before_the_database_is_asked(cursor):
    keyset = KEYSETS["team, at desc nullable, id desc"]
    with pytest.raises(BadRequest) as err:
        keyset_page(None, None, keyset, cursor, 5)
    assert (err.value.status, err.value.code, err.value.field) == (400, "invalid_cursor", "cursor")


def test_the_same_list_in_another_order_refuses_the_others_cursors(store):
    ascending = Keyset("things:team", asc("team", Thing.team), asc("id", Thing.id, int))
    descending = Keyset("things:-team", desc("team", Thing.team), desc("id", Thing.id, int))
    cursor = page(store, ascending, None, 2)["next_cursor"]
    with pytest.raises(BadRequest):
        page(store, descending, cursor, 2)


def test_the_limit_is_checked_and_defaults(store):
    keyset = KEYSETS["team, id"]
    for limit in (0, 201, 10 ** 30, True, "5"):
        with pytest.raises(ValidationFailed):
            keyset_page(None, None, keyset, None, limit)
    with store.read() as session:
        assert len(keyset_page(session, select(Thing), keyset, None, None, default=5)["items"]) == 5


def test_rows_of_several_columns_are_tuples(store):
    with store.read() as session:
        first = keyset_page(session, select(Thing.id, Thing.team), KEYSETS["team, id"], None, 2)
    assert first["items"] == [(6, "B"), (2, "a")]


def test_the_page_is_a_limit_and_a_condition_never_an_offset(store):
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2:4]))
    walk_pages(lambda cursor: page(store, KEYSETS["score desc nullable, id"], cursor, 5), 5)
    selects = [(sql, parameters) for sql, parameters in statements if sql.startswith("SELECT")]
    # SQLAlchemy's SQLite dialect writes every LIMIT as "LIMIT ? OFFSET ?" with an offset of 0.
    assert len(selects) == 3 and all(sql.endswith("LIMIT ? OFFSET ?") and parameters[-2:] == (6, 0)
                                     for sql, parameters in selects)
    assert "WHERE" not in selects[0][0] and "WHERE" in selects[1][0]


def test_code_point_order_is_collate_c_on_postgresql_only():
    expression = select(Thing.id).order_by(code_point_order(Thing.team))
    assert 'ORDER BY (things.team) COLLATE "C"' in str(expression.compile(dialect=postgresql.dialect()))
    assert str(expression.compile(dialect=sqlite.dialect())).endswith("ORDER BY things.team")
