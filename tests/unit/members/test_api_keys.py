"""Organization API keys in the members service (services/members/api_keys.py, SPEC §9): Owners and Admins
create, list and revoke them; the secret is shown once and stored only as its keyed hash; creating and
revoking are audited, the secret in no event. Migrated SQLite store; who may create and revoke and the
fields a key is made with are checked by the command pipeline, so those go through the entrypoints."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from common.auth import split_api_key
from common.errors import Forbidden, NotFound, Unauthenticated, ValidationFailed
from common.timeutil import iso, utcnow
from gateway.known_keys import KnownKeys
from services.members import api_keys, memberships, reactions, users
from services.members.models import ApiKey
from tests.unit.members.helpers import ORG, events, join, members_worker, organization_deleted, person, read, written

HASH_KEY = "test-hash-key"


@pytest.fixture
def owner_store(make_store):
    store = make_store("members")
    owner = person("dina")
    written(store, users.register_user, owner)
    written(store, memberships.add_founder, owner, ORG["id"])
    return owner, store


def create(store, who, name="Runtime", scopes=("usage:write",), expires_at=None):
    return written(store, api_keys.create_key, who, ORG["id"], name, list(scopes), expires_at, HASH_KEY)


def test_a_key_is_shown_once_and_stored_as_its_keyed_hash(owner_store):
    owner, store = owner_store
    created = create(store, owner, scopes=["audit:read", "usage:write"])
    key_id, secret = split_api_key(created["key"])
    assert created["key"].startswith("opk_") and key_id == created["id"]
    assert created["scopes"] == ["usage:write", "audit:read"] and created["status"] == "active"
    with store.read() as session:
        row = session.get(ApiKey, key_id)
    assert row.secret_hash != secret and secret not in row.secret_hash
    assert api_keys.secret_hash(secret, HASH_KEY) == row.secret_hash
    assert api_keys.secret_hash(secret, "another server's key") != row.secret_hash
    assert api_keys.secret_hash(secret + "x", HASH_KEY) != row.secret_hash
    listed = api_keys.list_keys(store, owner, ORG["id"])["items"]
    assert [k["id"] for k in listed] == [key_id] and "key" not in listed[0]
    assert listed[0]["prefix"] == f"opk_{key_id}_{secret[:4]}…"
    assert all(secret not in str(e) and created["key"] not in str(e) for e in events(store))
    [event] = [e for e in events(store) if e["type"] == "api_key.created"]
    assert event["after"] == {"name": "Runtime", "scopes": ["usage:write", "audit:read"], "expires_at": None}


def test_revoking_ends_a_key_once(owner_store):
    owner, store = owner_store
    key_id = create(store, owner)["id"]
    assert written(store, api_keys.revoke_key, owner, ORG["id"], key_id)["status"] == "revoked"
    assert written(store, api_keys.revoke_key, owner, ORG["id"], key_id)["status"] == "revoked"   # no second event
    assert [e["type"] for e in events(store)].count("api_key.revoked") == 1
    with pytest.raises(NotFound) as missing:
        members_worker(store, owner).revoke_api_key("another-org", key_id)
    assert missing.value.code == "organization_not_found"      # not a member there: ids cannot be probed


def test_only_owners_and_admins_manage_keys(owner_store):
    owner, store = owner_store
    admin, member = join(store, owner, "ana", ["admin"]), join(store, owner, "mo", ["member"])
    members_worker(store, admin).create_api_key(ORG["id"], "By an Admin", ["usage:write"])
    with pytest.raises(Forbidden):
        members_worker(store, member).create_api_key(ORG["id"], "Runtime", ["usage:write"])
    with pytest.raises(Forbidden):
        members_worker(store, member).revoke_api_key(ORG["id"], create(store, admin)["id"])
    with pytest.raises(Forbidden):
        members_worker(store, member).list_api_keys(ORG["id"])
    with pytest.raises(NotFound):
        members_worker(store, person("stranger")).list_api_keys(ORG["id"])


@pytest.mark.parametrize("name, scopes, expires_at, field", [
    ("", ["usage:write"], None, "name"),
    ("x" * 201, ["usage:write"], None, "name"),
    ("Runtime", [], None, "scopes"),
    ("Runtime", ["admin:everything"], None, "scopes"),
    ("Runtime", "usage:write", None, "scopes"),
    ("Runtime", ["usage:write"], "yesterday", "expires_at"),
    ("Runtime", ["usage:write"], lambda: iso(utcnow() - timedelta(minutes=1)), "expires_at"),   # made at run time
])
def test_bad_fields_are_refused_and_nothing_is_created(owner_store, name, scopes, expires_at, field):
    owner, store = owner_store
    expires_at = expires_at() if callable(expires_at) else expires_at
    with pytest.raises(ValidationFailed) as refused:
        members_worker(store, owner).create_api_key(ORG["id"], name, scopes, expires_at)
    assert refused.value.field == field
    with store.read() as session:
        assert session.scalars(select(ApiKey)).all() == []


def test_a_key_past_its_expiry_is_listed_as_expired(owner_store):
    owner, store = owner_store
    expires = utcnow() + timedelta(hours=1)
    create(store, owner, expires_at=expires)
    [listed] = api_keys.list_keys(store, owner, ORG["id"], now=expires + timedelta(seconds=1))["items"]
    assert listed["status"] == "expired"


@pytest.mark.parametrize("sent", ["", "opk_", "opk_abc", "opk__secret", "Bearer x", "eyJhbGciOi.x.y", None, 12])
def test_what_is_not_shaped_like_a_key_is_not_split(sent):
    assert split_api_key(sent) is None


def test_every_new_key_splits_back_into_its_id_and_secret():
    for _ in range(500):                # secrets may hold "_" and "-"; ids never hold "_"
        key_id, secret, key = api_keys.new_key()
        assert split_api_key(key) == (key_id, secret)


# ---- verifying a key for the gateway -------------------------------------------------------------------
def decided(store, key, hash_key=HASH_KEY, now=None):
    """What the gateway decides (gateway.known_keys) from what members answers about `key`'s id."""
    return KnownKeys(hash_key).remember(key, api_keys.verifier_of(store, key, hash_key, now=now))


def test_a_valid_key_gives_its_facts_and_records_its_use(owner_store):
    owner, store = owner_store
    created = create(store, owner, scopes=["usage:read"])
    now = utcnow()
    facts = api_keys.verifier_of(store, created["key"], HASH_KEY, now=now)
    row = read(store, lambda session: session.get(ApiKey, created["id"]))
    assert facts == {"id": created["id"], "found": True, "organization_id": ORG["id"], "name": "Runtime",
                     "scopes": ["usage:read"], "expires_at": None, "status": "active", "secret_hash": row.secret_hash}
    assert api_keys.list_keys(store, owner, ORG["id"])["items"][0]["last_used_at"] == iso(now)
    identity, refusal = decided(store, created["key"])
    assert refusal is None and identity.id == f"key:{created['id']}"


@pytest.mark.parametrize("mangle", [lambda key: key + "x", lambda key: key[:-1], lambda key: "opk_ffffffffffff_abc"])
def test_an_unknown_or_wrong_key_is_one_refusal_and_the_answer_does_not_say_which(owner_store, mangle):
    owner, store = owner_store
    created = create(store, owner)
    assert decided(store, mangle(created["key"])) == (None, "invalid_api_key")
    assert decided(store, created["key"], "another server's hash key") == (None, "invalid_api_key")
    # A wrong secret records no use.
    assert api_keys.list_keys(store, owner, ORG["id"])["items"][0]["last_used_at"] is None


@pytest.mark.parametrize("text", ["opk_nothing", None])
def test_text_not_shaped_like_a_key_is_refused(owner_store, text):
    with pytest.raises(Unauthenticated) as refused:
        api_keys.verifier_of(owner_store[1], text, HASH_KEY)
    assert refused.value.code == "invalid_api_key"


def test_revoked_and_expired_keys_are_refused_by_name(owner_store):
    owner, store = owner_store
    revoked = create(store, owner)
    written(store, api_keys.revoke_key, owner, ORG["id"], revoked["id"])
    expiring = create(store, owner, expires_at=utcnow() + timedelta(minutes=1))
    for key, later, code in ((revoked["key"], None, "api_key_revoked"),
                             (expiring["key"], utcnow() + timedelta(minutes=2), "api_key_expired")):
        assert decided(store, key, now=later) == (None, code)


def test_the_keys_of_a_deleted_organization_are_revoked_with_an_event_each(owner_store):
    owner, store = owner_store
    first, second = create(store, owner), create(store, owner, name="Second")
    written(store, api_keys.revoke_key, owner, ORG["id"], second["id"])
    reactions.handle_change_event(store, organization_deleted(ORG["id"]))
    assert decided(store, first["key"]) == (None, "api_key_revoked")
    revocations = [e for e in events(store) if e["type"] == "api_key.revoked"]
    assert [(e["target"]["id"], e["actor"]["id"]) for e in revocations][-1] == (first["id"], "system")
    assert len(revocations) == 2            # the second key's own revocation, and the first's
