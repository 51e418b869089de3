"""Organization API keys (product rules; SPEC §9): credentials of machine callers, such as an agent
runtime charging usage on behalf of the member who talks to an agent. Owners and Admins create, list and
revoke them; the secret is shown once, at creation, and only its keyed hash is stored (docs/decisions.md
86 and 87: why a fast keyed hash, and how the gateway verifies a key without a call chain).

A key reads `opk_<key id>_<secret>`: the fixed prefix tells it from a JWT, the id finds its row, the
secret is 32 random bytes. Creating and revoking are audited (api_key.created, api_key.revoked; the
secret never in an event); using a key is not a change. Creating and revoking are commands
(common.commands): the pipeline checked the caller's right and the key's fields (ApiKeyInput), and
gives the open write transaction; that the expiry is in the future is decided here, by this clock.
"""
import hmac
import secrets
from datetime import datetime

from sqlalchemy import select, update

from common.auth import API_KEY_PREFIX, NO_KEY_HASH, SYSTEM_ACTOR, split_api_key
from common.auth import api_key_secret_hash as secret_hash
from common.errors import NotFound, Unauthenticated, ValidationFailed
from common.paging import Keyset, asc, desc, keyset_page
from common.permissions import SCOPES
from common.timeutil import as_utc, iso, utcnow
from services.members.events import API_KEY_CREATED, API_KEY_REVOKED, emit
from services.members.models import ApiKey

KEY_ID_BYTES, SECRET_BYTES = 6, 32          # 12 hex characters (never "_", which ends the id); 43 URL-safe
NEWEST_FIRST = Keyset("api_keys", desc("created_at", ApiKey.created_at, datetime), asc("id", ApiKey.id))


# ---- the key and its hash -----------------------------------------------------------------------------
def new_key():
    """(key id, secret, the whole key as the caller sends it)."""
    key_id, secret = secrets.token_hex(KEY_ID_BYTES), secrets.token_urlsafe(SECRET_BYTES)
    return key_id, secret, f"{API_KEY_PREFIX}{key_id}_{secret}"


# ---- checks -----------------------------------------------------------------------------------------------
def check_expiry(expires_at, now):
    """The expiry (a UTC datetime, as the contract loaded it, or None) must be after `now`."""
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed("expires_at must be in the future.", code="expiry_in_past", field="expires_at")
    return expires_at


def status_of(key, now):
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and as_utc(key.expires_at) <= now:
        return "expired"
    return "active"


def key_dict(key, now):
    """A key as listed: never its secret or hash."""
    return {"id": key.id, "organization_id": key.organization_id, "name": key.name, "scopes": key.scopes,
            "prefix": f"{API_KEY_PREFIX}{key.id}_{key.secret_start}…", "created_by": key.created_by,
            "created_at": iso(key.created_at), "expires_at": iso(key.expires_at) if key.expires_at else None,
            "last_used_at": iso(key.last_used_at) if key.last_used_at else None,
            "revoked_at": iso(key.revoked_at) if key.revoked_at else None, "status": status_of(key, now)}


# ---- create, list, revoke (Owner/Admin) ---------------------------------------------------------------
def create_key(session, identity, organization_id, name, scopes, expires_at, hash_key, now=None):
    """A new key (name, scopes and expiry as ApiKeyInput loaded them); the answer carries `key`, the
    secret, this once."""
    now = now or utcnow()
    expires_at, scopes = check_expiry(expires_at, now), sorted(set(scopes), key=SCOPES.index)
    key_id, secret, key = new_key()
    row = ApiKey(id=key_id, organization_id=organization_id, name=name, scopes=scopes,
                 secret_hash=secret_hash(secret, hash_key), secret_start=secret[:4], created_by=identity.id,
                 created_at=now, expires_at=expires_at)
    session.add(row)
    session.flush()
    answer = key_dict(row, now)
    emit(session, API_KEY_CREATED, "create", organization_id, identity, "api_key", key_id,
         after={"name": name, "scopes": scopes, "expires_at": answer["expires_at"]})
    return dict(answer, key=key)


def list_keys(store, identity, organization_id, cursor=None, limit=None, now=None):
    now = now or utcnow()
    with store.read() as session:
        return keyset_page(session, select(ApiKey).where(ApiKey.organization_id == organization_id), NEWEST_FIRST,
                           cursor, limit, dump=lambda row: key_dict(row, now))


def revoke_key(session, identity, organization_id, key_id, now=None):
    """End a key at once; revoking it again changes nothing."""
    now = now or utcnow()
    row = session.get(ApiKey, key_id, with_for_update=True) if isinstance(key_id, str) else None
    if row is None or row.organization_id != organization_id:
        raise NotFound("There is no such API key in this organization.", code="api_key_not_found")
    if row.revoked_at is None:
        row.revoked_at, row.revoked_by = now, identity.id
        emit(session, API_KEY_REVOKED, "update", organization_id, identity, "api_key", key_id,
             before={"status": "active"}, after={"status": "revoked"})
    return key_dict(row, now)


# ---- verifying a key (the gateway, on first sight of a key and each minute it stays in use) -------------
def verifier_of(store, key, hash_key, now=None):
    """What the gateway needs to check `key` itself for as long as it keeps the answer (gateway.known_keys):
    for a key with this id, its facts (organization, name, scopes, expiry), its status and the keyed hash
    of its secret, whether or not the secret sent matches; for an id no key has, {"id", "found": False},
    after the same hashing work. Neither answer tells the caller whether its secret was right: the gateway
    decides, in the same steps for both, so an answer's time does not tell whether the id exists.
    Records the use in `last_used_at` when the secret matches an active key (the gateway asks at most once
    a minute per key and process, so the list shows use to the minute). 401 for text not shaped like a key."""
    now = now or utcnow()
    parts = split_api_key(key)
    if parts is None:
        raise Unauthenticated("The API key is not valid.", code="invalid_api_key")
    key_id, secret = parts
    presented = secret_hash(secret, hash_key)
    with store.read() as session:
        row = session.get(ApiKey, key_id)
        matches = hmac.compare_digest(presented, row.secret_hash if row is not None else NO_KEY_HASH)
        if row is None:
            return {"id": key_id, "found": False}
        facts = {"id": row.id, "found": True, "organization_id": row.organization_id, "name": row.name,
                 "scopes": row.scopes, "expires_at": iso(row.expires_at) if row.expires_at else None,
                 "status": status_of(row, now), "secret_hash": row.secret_hash}
    if matches and facts["status"] == "active":
        with store.write() as session:
            session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
    return facts


def revoke_keys_of_deleted_organization(session, organization_id, now):
    """A deleted organization's keys end with it (audited as the system's revocations, and each gateway
    drops the key on the event)."""
    rows = session.scalars(select(ApiKey).where(ApiKey.organization_id == organization_id,
                                                ApiKey.revoked_at.is_(None))).all()
    for row in rows:
        row.revoked_at, row.revoked_by = now, SYSTEM_ACTOR["id"]
        emit(session, API_KEY_REVOKED, "update", organization_id, SYSTEM_ACTOR, "api_key", row.id,
             before={"status": "active"}, after={"status": "revoked", "reason": "organization_deleted"})
    return len(rows)
