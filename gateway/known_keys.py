"""The API keys this gateway process keeps (SPEC §9; docs/decisions.md 87 and 92).

A request by key must not wait on the members service each time (that would make every spend by a
machine a chain of two services), so what members answered about a key id is kept here for a minute at
most, and the gateway checks the secret itself: for a key, its organization, name, scopes, expiry,
status and the keyed hash of its secret (members' `secret_hash`, never the secret); for an id no key has,
that it has none, with a hash no secret has (the cached refusal of an unknown id: it costs members no
read for the minute).

A key is checked in the same steps whatever is kept about its id, and whether the secret is right or
not: hash the secret sent (common.auth.api_key_secret_hash), compare in constant time, then read the
status. So the time of a refusal does not tell whether an id exists (before, a wrong secret for a key
id verified in the last minute was refused from memory in 1.0 ms, and an unknown id took 5.5 ms).

Revocation does not wait for the minute: each gateway process consumes `api_key.revoked` on a queue of
its own (gateway.service) and marks the key revoked at once; a key revoked while members was being asked
about it stays revoked (`_revoked`), so a slow answer cannot bring it back for the minute.
"""
import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

from common.auth import KEY_ACTOR_PREFIX, NO_KEY_HASH, Identity, api_key_secret_hash, split_api_key
from common.config import settings
from common.timeutil import parse_iso, utcnow

KEEP_SECONDS = 60            # the longest an answer of members is used without asking again
MAX_KEYS = 10000


@dataclass(frozen=True)
class KeptKey:
    verifier: str             # the keyed hash of the key's secret; for an id no key has, a hash no secret has
    identity: Identity | None  # None: no key has this id
    status: str               # "active", "revoked", "expired", as members said ("unknown" for no key)
    expires_at: object        # an aware datetime, or None
    kept_at: float            # time.monotonic()


def key_id_of(key):
    """The id in `opk_<id>_<secret>`, or None when the text does not have a key's shape."""
    parts = split_api_key(key)
    return parts[0] if parts else None


def identity_of(facts):
    """The caller a key's facts (members.authenticate_api_key's answer) make."""
    return Identity(f"{KEY_ACTOR_PREFIX}{facts['id']}", "", facts["name"],
                    key_organization_id=facts["organization_id"], key_scopes=tuple(facts["scopes"]))


class KnownKeys:
    def __init__(self, hash_key, clock=time.monotonic):
        self._hash_key = hash_key
        self._clock = clock
        self._keys = OrderedDict()         # key id -> KeptKey
        self._revoked = OrderedDict()      # key id -> when revoked (kept as long as an answer can lag)

    def find(self, key):
        """(identity, None) for a key whose id is kept and whose secret is right; (None, refusal code) for
        a kept id with a wrong secret, an id no key has, a revoked or expired key; (None, None) when members
        must be asked (nothing kept about the id, or kept more than a minute ago)."""
        key_id, secret = split_api_key(key)
        kept = self._keys.get(key_id)
        if kept is None or self._clock() - kept.kept_at >= KEEP_SECONDS:
            return None, None
        return self.check(kept, secret)

    def check(self, kept, secret):
        """The same steps for every kept id: hash, compare in constant time, then the status."""
        right = hmac.compare_digest(api_key_secret_hash(secret, self._hash_key), kept.verifier)
        if not right or kept.identity is None:
            return None, "invalid_api_key"
        if kept.status == "revoked":
            return None, "api_key_revoked"
        if kept.status == "expired" or (kept.expires_at is not None and kept.expires_at <= utcnow()):
            return None, "api_key_expired"
        return kept.identity, None

    def remember(self, key, facts):
        """Keep what members answered about `key`'s id (a key revoked meanwhile stays revoked: its event may
        have arrived while the answer travelled); returns find(key)'s answer for it."""
        key_id, secret = split_api_key(key)
        if facts.get("found"):
            status = "revoked" if key_id in self._revoked else facts["status"]
            expires_at = parse_iso(facts["expires_at"]) if facts.get("expires_at") else None
            kept = KeptKey(facts["secret_hash"], identity_of(facts), status, expires_at, self._clock())
        else:
            kept = KeptKey(NO_KEY_HASH, None, "unknown", None, self._clock())
        self._keys[key_id] = kept
        self._keys.move_to_end(key_id)
        _trim(self._keys)
        return self.check(kept, secret)

    def forget(self, key_id):
        """The key was revoked: never accept it again (what is kept about it says revoked)."""
        kept = self._keys.get(key_id)
        if kept is not None and kept.identity is not None:
            self._keys[key_id] = replace(kept, status="revoked")
        self._revoked[key_id] = self._clock()
        self._revoked.move_to_end(key_id)
        while self._revoked and self._clock() - next(iter(self._revoked.values())) > 10 * KEEP_SECONDS:
            self._revoked.popitem(last=False)
        _trim(self._revoked)


    def forget_all(self):
        """A revocation may have been missed (the process's queue of them was lost with its broker node):
        every key is asked of members again at its next use. What is known revoked stays revoked."""
        self._keys.clear()


def _trim(ordered):
    while len(ordered) > MAX_KEYS:
        ordered.popitem(last=False)


# One per gateway process: the HTTP entrypoint, the handlers and the revocation consumer share it.
known_keys = KnownKeys(settings().api_key_hash_secret)
