"""The member list's orders run in SQL (services/members/member_order.py) and give what the list gave when it
sorted in Python: by name case-folded (Python's casefold, beyond ASCII too), joined date or highest role,
ties by name, email, user id, all reversed by `-`; page by page, whatever the page size."""
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from common.auth import Identity
from common.errors import BadRequest
from common.permissions import ROLE_ORDER
from services.members import invitations, memberships, users
from services.members.member_order import members_in_order
from services.members.models import Membership
from tests.unit.members.helpers import ORG, written
from tests.unit.paging import walk_pages

# (user id, email, name, role, joined): equal names folded ("ß"/"SS"/"ss", "Émile"/"émile"), names that
# lower() would not fold (É, Æ, Σ), equal joined dates and roles.
PEOPLE = [("u-ss1", "ss1@example.com", "ß", "member", 3), ("u-ss2", "ss2@example.com", "SS", "builder", 2),
          ("u-ss0", "ss0@example.com", "ss", "member", 3), ("u-em1", "emile@example.com", "Émile", "admin", 1),
          ("u-em2", "emile2@example.com", "émile", "member", 2), ("u-zoe", "zoe@example.com", "Zoë", "owner", 1),
          ("u-ae", "ae@example.com", "Ærø", "builder", 3), ("u-sig", "sigma@example.com", "ΣΟΦΙΑ", "member", 4),
          ("u-bob2", "bob@example.org", "Bob", "member", 4), ("u-bob1", "bob@example.com", "bob", "admin", 4)]


@pytest.fixture
def listing(make_store):
    store = make_store("members")
    dina = Identity("dina", "dina@example.com", "Dina")
    written(store, users.register_user, dina)
    written(store, memberships.add_founder, dina, ORG["id"])
    for user_id, email, name, role, _ in PEOPLE:
        who = Identity(user_id, email, name)
        written(store, users.register_user, who)
        invitation = written(store, invitations.invite, dina, ORG, email, [role])
        written(store, invitations.accept_invitation, who, invitation["id"])
    with store.write() as session:
        for user_id, *_, day in [("dina", None, None, None, 1)] + PEOPLE:
            session.execute(update(Membership).where(Membership.user_id == user_id)
                            .values(joined_at=datetime(2026, 1, day, tzinfo=UTC)))
    return store, dina


def python_order(members, sort):
    """The order the list had when it sorted every member in Python."""
    by_name = lambda m: (m["name"].casefold(), m["email"], m["user_id"])  # noqa: E731
    keys = {"name": by_name, "joined_at": lambda m: (m["joined_at"], by_name(m)),
            "role": lambda m: (min(ROLE_ORDER[r] for r in m["roles"]), by_name(m))}
    return sorted(members, key=keys[sort.lstrip("-")], reverse=sort.startswith("-"))


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 11, 50])
@pytest.mark.parametrize("sort", ["name", "-name", "joined_at", "-joined_at", "role", "-role"])
def test_every_order_pages_as_the_python_sort_did(listing, sort, limit):
    store, dina = listing
    seen, pages = walk_pages(lambda cursor: memberships.list_members(store, dina, ORG["id"], sort=sort, cursor=cursor,
                                                                     limit=limit), limit)
    assert len(seen) == len(PEOPLE) + 1 and pages == -(-len(seen) // limit)
    assert seen == python_order(seen, sort)


def test_filters_keep_the_order_and_a_renamed_member_moves(listing):
    store, dina = listing
    listed = lambda **options: [m["user_id"] for m in memberships.list_members(store, dina, ORG["id"], **options)["items"]]  # noqa: E731,E501
    assert listed(q="ss", sort="name") == ["u-ss0", "u-ss1", "u-ss2"]
    assert listed(role="admin", sort="-name") == ["u-em1", "u-bob1"]
    written(store, users.register_user, Identity("u-sig", "sigma@example.com", "Aaron"))
    assert listed(sort="name")[0] == "u-sig"


def test_a_cursor_of_another_order_is_refused(listing):
    store, dina = listing
    cursor = memberships.list_members(store, dina, ORG["id"], sort="name", limit=2)["next_cursor"]
    for sort in ("-name", "role", "joined_at"):
        with pytest.raises(BadRequest) as err:
            memberships.list_members(store, dina, ORG["id"], sort=sort, cursor=cursor, limit=2)
        assert err.value.code == "invalid_cursor"


def test_the_longest_cursor_the_list_can_issue_is_accepted():
    """A 200-character name that folds to 600 characters, a 320-character email and a 128-character user id,
    all of characters JSON escapes (astral ones as two escapes each)."""
    keyset = members_in_order("-joined_at")
    values = (datetime(2026, 1, 1, tzinfo=UTC), ("\u0390" * 200).casefold(), "\U0001f600" * 320, "\U0001f600" * 128)
    assert len(values[1]) == 600
    assert keyset.position(keyset.cursor(values)) == values
