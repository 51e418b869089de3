"""Emails in one canonical form (SPEC §10): NFKC, then case-folded; an address written with compatibility
characters is refused, so a token whose email only lower-cases onto Kim's (the Kelvin sign U+212A for the
K) can neither see nor answer Kim's invitation, and no invitation is stored under such an address."""
import sys

import pytest
from sqlalchemy import func, select

from common.auth import Identity, canonical_email
from common.errors import Unauthenticated, ValidationFailed
from services.members import invitations, memberships, users
from services.members.models import Invitation, User
from tests.unit.members.helpers import ORG, events, members_worker, written

KELVIN_SIGN = "\u212a"


@pytest.mark.parametrize("written, canonical", [
    ("kim@example.com", "kim@example.com"),
    ("  Kim@Example.COM ", "kim@example.com"),
    ("Straße@Example.de", "strasse@example.de"),        # full case folding, not lower()
    ("ΣΟΦΊΑ@example.gr", "σοφία@example.gr"),
    ("Élodie@example.fr", "élodie@example.fr"),
    ("ǰ@example.com", "ǰ@example.com"),                 # folding decomposes it; the form composes it again
    (KELVIN_SIGN + "im@example.com", None),             # "Kim" with the Kelvin sign; lower() gives kim@
    ("\u2126@example.com", None),                       # the Ohm sign for Ω
    ("\uff4bim@example.com", None),                     # a full-width k
    ("\ufb01@example.com", None),                       # the ligature fi
    ("e\u0301@example.com", None),                      # é decomposed: another string for its issuer
    ("kim@example.com\u200b", None),                    # a zero-width space
    ("kim\u00a0@example.com", None),                    # a no-break space
    ("\ud800@example.com", None),                       # a lone surrogate
    ("kim\x00@example.com", None),
    ("kim@example", None),
    ("k im@example.com", None),
    ("k" * 309 + "@example.com", None),                 # 321 characters
    ("ß" * 160 + "@x.de", None),                        # fits in 320 only before folding
    (None, None),
    (5, None),
])
def test_the_canonical_form_of_an_email(written, canonical):
    assert canonical_email(written) == canonical


def test_the_canonical_form_is_stable_for_every_character():
    """The services compute it again on what the gateway computed: it must not change nor be refused."""
    for code in range(sys.maxunicode + 1):
        email = canonical_email(chr(code) + "x@example.com")
        if email is not None:
            assert canonical_email(email) == email, hex(code)


@pytest.fixture
def kim_and_org(make_store, alice):
    store = make_store("members")
    kim = Identity("kim", "kim@example.com", "Kim")
    for who in (alice, kim):
        written(store, users.register_user, who)
    written(store, memberships.add_founder, alice, ORG["id"])
    return store, kim


def test_an_invitation_to_an_address_with_a_compatibility_character_is_refused_and_stores_nothing(kim_and_org,
                                                                                                 alice):
    store, _ = kim_and_org
    service = members_worker(store, alice)      # the address is checked by invite's declared contract
    before = events(store)
    for address in (KELVIN_SIGN + "im@example.com", "\uff4bim@example.com"):
        with pytest.raises(ValidationFailed) as err:
            service.invite(ORG["id"], address, ["member"])
        assert (err.value.code, err.value.field) == ("invalid_email", "email")
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(Invitation)) == 0
    assert events(store) == before


def test_a_kelvin_sign_identity_can_neither_see_nor_answer_kims_invitation(kim_and_org, alice):
    """The takeover of issue 14, should such an identity get past the gateway: refused, not matched."""
    store, kim = kim_and_org
    invitation = members_worker(store, alice).invite(ORG["id"], "Kim@Example.com", ["member"])
    assert invitation["email"] == "kim@example.com"
    impostor = Identity("mallory", KELVIN_SIGN + "im@example.com", "Mallory")
    assert impostor.email.lower() == kim.email            # what the old rule compared
    for attempt in (lambda: invitations.my_invitations(store, impostor),
                    lambda: written(store, invitations.accept_invitation, impostor, invitation["id"]),
                    lambda: written(store, invitations.reject_invitation, impostor, invitation["id"]),
                    lambda: written(store, users.register_user, impostor)):
        with pytest.raises(Unauthenticated) as err:
            attempt()
        assert (err.value.code, err.value.field) == ("invalid_token", "email")
    assert invitations.my_invitations(store, kim)["items"][0]["status"] == "pending"
    assert written(store, invitations.accept_invitation, kim, invitation["id"])["status"] == "accepted"
    assert {m["user_id"] for m in memberships.list_members(store, alice, ORG["id"])["items"]} == {"alice", "kim"}


def test_case_variants_name_one_inbox(kim_and_org, alice):
    store, _ = kim_and_org
    invitation = members_worker(store, alice).invite(ORG["id"], "Straße@Example.de", ["member"])
    assert invitation["email"] == "strasse@example.de"
    holder = Identity("s1", "STRASSE@example.de", "S")
    assert [i["id"] for i in invitations.my_invitations(store, holder)["items"]] == [invitation["id"]]
    written(store, users.register_user, holder)
    with store.read() as session:
        assert session.get(User, "s1").email == "strasse@example.de"
    for q in ("STRASSE", "straße", "Straße@"):
        found = invitations.list_invitations(store, alice, ORG["id"], q=q)["items"]
        assert [i["id"] for i in found] == [invitation["id"]], q
    written(store, invitations.accept_invitation, holder, invitation["id"])
    assert [m["user_id"] for m in memberships.list_members(store, alice, ORG["id"], q="STRASSE")["items"]] == ["s1"]


@pytest.mark.parametrize("q", ["\ud800", "a\x00", "a\nb"])
def test_a_search_text_that_is_not_printable_is_a_422(kim_and_org, alice, q):
    store, _ = kim_and_org
    for search in (lambda: memberships.list_members(store, alice, ORG["id"], q=q),
                   lambda: invitations.list_invitations(store, alice, ORG["id"], q=q)):
        with pytest.raises(ValidationFailed) as err:
            search()
        assert (err.value.code, err.value.field) == ("invalid_query", "q")

