"""The API keys this gateway process has verified (SPEC §9; docs/decisions.md "Machine callers").

A request by key must not wait on the members service each time (that would make every spend by a
machine a chain of two services), so a key members accepted is kept here for a minute at most: the
organization it acts in, its name, scopes and expiry, and a SHA-256 digest of the whole key as sent (a
request's key is compared with it in constant time; the secret itself is not kept). Revocation does not
wait for the minute: each gateway process consumes `api_key.revoked` on a queue of its own
(gateway.service) and forgets the key at once; a key revoked while members was being asked about it
is not kept (`_revoked`), so a slow answer cannot bring it back for the minute. Keys members refused are remembered
for a few seconds, so a client repeating a wrong key cannot make every request a call to members.
"""
import hashlib
import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass

from common.auth import KEY_ACTOR_PREFIX, Identity, split_api_key
from common.timeutil import parse_iso, utcnow

KEEP_SECONDS = 60            # the longest a key is used without asking members again
REFUSAL_KEEP_SECONDS = 5
MAX_KEYS = 10000


@dataclass(frozen=True)
class KnownKey:
    digest: bytes
    identity: Identity
    expires_at: object        # an aware datetime, or None
    verified_at: float        # time.monotonic()


def digest_of(key):
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def key_id_of(key):
    """The id in `opk_<id>_<secret>`, or None when the text does not have a key's shape."""
    parts = split_api_key(key)
    return parts[0] if parts else None


def identity_of(facts):
    """The caller a key's facts (members.authenticate_api_key's answer) make."""
    return Identity(f"{KEY_ACTOR_PREFIX}{facts['id']}", "", facts["name"],
                    key_organization_id=facts["organization_id"], key_scopes=tuple(facts["scopes"]))


class KnownKeys:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._keys = OrderedDict()         # key id -> KnownKey
        self._refused = OrderedDict()      # digest -> (the answer to give, until)
        self._revoked = OrderedDict()      # key id -> when forgotten (kept as long as an answer can lag)

    def find(self, key):
        """(identity, None) for a key verified less than a minute ago; (None, error) for one refused a moment
        ago or expired since; (None, None) when members must be asked."""
        now, digest = self._clock(), digest_of(key)
        known = self._keys.get(key_id_of(key))
        if known is not None and now - known.verified_at < KEEP_SECONDS:
            if not hmac.compare_digest(known.digest, digest):
                return None, "invalid_api_key"       # the id of a key we know, with another secret
            if known.expires_at is not None and known.expires_at <= utcnow():
                return None, "api_key_expired"
            return known.identity, None
        refused = self._refused.get(digest)
        if refused is not None and now < refused[1]:
            return None, refused[0]
        return None, None

    def remember(self, key, facts):
        """Keep what members answered about `key`, unless the key was revoked meanwhile (its event may have
        arrived while the answer travelled: a revoked key never comes back); returns the key's identity."""
        key_id, identity = facts["id"], identity_of(facts)
        if key_id in self._revoked:
            return identity
        expires_at = parse_iso(facts["expires_at"]) if facts.get("expires_at") else None
        self._keys[key_id] = KnownKey(digest_of(key), identity, expires_at, self._clock())
        self._keys.move_to_end(key_id)
        _trim(self._keys)
        return identity

    def refuse(self, key, code):
        self._refused[digest_of(key)] = (code, self._clock() + REFUSAL_KEEP_SECONDS)
        _trim(self._refused)

    def forget(self, key_id):
        """The key was revoked: never use what is kept about it again."""
        self._keys.pop(key_id, None)
        self._revoked[key_id] = self._clock()
        self._revoked.move_to_end(key_id)
        while self._revoked and self._clock() - next(iter(self._revoked.values())) > 10 * KEEP_SECONDS:
            self._revoked.popitem(last=False)
        _trim(self._revoked)


def _trim(ordered):
    while len(ordered) > MAX_KEYS:
        ordered.popitem(last=False)


# One per gateway process: the HTTP entrypoint, the handlers and the revocation consumer share it.
known_keys = KnownKeys()
