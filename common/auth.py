"""Who is asking: the identity that travels with every RPC call and event.

The gateway authenticates the bearer token and puts the user into Nameko's worker context data;
Nameko copies context data into the headers of every RPC request it makes, so the identity reaches
each downstream service, and onwards from there. Services read it through the `Auth` dependency.
"""
import hashlib
import hmac
import re
import secrets
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass

from nameko.extensions import DependencyProvider

from common import request_ids, tracing

USER_ID_KEY = "user_id"
USER_EMAIL_KEY = "user_email"
USER_NAME_KEY = "user_name"
# Set only when the caller is an organization API key (SPEC §9): the one organization it acts in and its
# scopes (comma-separated), beside USER_ID_KEY = "key:<key id>" and USER_NAME_KEY = the key's name.
KEY_ORGANIZATION_KEY = "api_key_organization_id"
KEY_SCOPES_KEY = "api_key_scopes"
# Every context key that says who calls.
IDENTITY_KEYS = (USER_ID_KEY, USER_EMAIL_KEY, USER_NAME_KEY, KEY_ORGANIZATION_KEY, KEY_SCOPES_KEY)

SYSTEM_ACTOR = {"id": "system"}

# Actor ids that name an organization API key (SPEC §9), never a user.
KEY_ACTOR_PREFIX = "key:"

# An API key as sent reads `opk_<key id>_<secret>`: the prefix tells it from a JWT (the gateway), the id
# finds its row (members).
API_KEY_PREFIX = "opk_"
API_KEY_MAX_LENGTH = 200


def split_api_key(key):
    """(key id, secret) of an API key as sent, or None when the text does not have a key's shape."""
    if not isinstance(key, str) or not key.startswith(API_KEY_PREFIX) or len(key) > API_KEY_MAX_LENGTH:
        return None
    key_id, sep, secret = key[len(API_KEY_PREFIX):].partition("_")
    if not sep or not key_id or not secret:
        return None
    return key_id, secret


def api_key_secret_hash(secret, hash_key):
    """HMAC-SHA256 of a key's secret under the server's `hash_key` (hex): what members stores, and what
    the gateway compares a presented secret's hash with (docs/decisions.md 86 and 90). Fast on
    purpose, as a 256-bit random secret cannot be guessed; keyed so that a copy of the table alone cannot
    check guesses."""
    return hmac.new(hash_key.encode(), secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


# What a secret sent for an id no key has is compared with (members, and the gateway's cached refusal),
# so that an unknown id costs what a known one does: a hash no secret has (random, per process).
NO_KEY_HASH = api_key_secret_hash(secrets.token_urlsafe(32), secrets.token_hex(16))

# A user id is the `sub` of the token the gateway verified: 1 to 128 printable characters (every
# service stores it in String(128) columns). The one rule, used by the gateway and every service.
USER_ID_MAX_LENGTH = 128

EMAIL_MAX_LENGTH = 320
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_printable_text(value):
    """A string of printable characters (SPEC §10): no NUL, control or format characters, no lone
    surrogate (which no database or JSON encoder stores), no separator but the ASCII space."""
    return isinstance(value, str) and value.isprintable()


def is_valid_user_id(value):
    return is_printable_text(value) and 0 < len(value) <= USER_ID_MAX_LENGTH


# Letters of other scripts that look like the Latin ones of "system" and "key:" (Unicode's confusables,
# TR39, for these letters): NFKC leaves them alone, a reader does not tell them apart.
_LOOK_ALIKES = str.maketrans({
    "\u0455": "s", "\u0443": "y", "\u04af": "y", "\u03b3": "y", "\u0442": "t", "\u03c4": "t",
    "\u0435": "e", "\u0454": "e", "\u03b5": "e", "\u043c": "m", "\u03bc": "m", "\u043a": "k",
    "\u03ba": "k", "\u0138": "k", "\u0261": "g", "\u0430": "a", "\u03bf": "o", "\u043e": "o",
    "\u0456": "i", "\u0131": "i", "\u0458": "j", "\u0440": "p", "\u0441": "c", "\u0445": "x",
    "\u02d0": ":", "\u0589": ":", "\u05c3": ":", "\u2236": ":", "\ua789": ":", "\ufe55": ":",
})


def skeleton(value):
    """`value` as a reader sees it, for comparing with reserved names: NFKC (full-width letters, the
    full-width colon), case folded, look-alike letters of other scripts read as Latin, spaces trimmed."""
    return unicodedata.normalize("NFKC", value).casefold().translate(_LOOK_ALIKES).strip()


def is_reserved_user_id(value):
    """`system` names the platform's own actions (and may call snapshot RPCs), `key:…` an API key's: no
    token may claim either, or anything that reads as either ("System", " system", "ｓｙｓｔｅｍ", "ѕystem"
    in Cyrillic, "key：x"), or its changes would be audited as theirs."""
    if not isinstance(value, str):
        return False
    seen = skeleton(value)
    return seen == SYSTEM_ACTOR["id"] or seen.startswith(KEY_ACTOR_PREFIX)


def canonical_email(value):
    """The one form in which an email address is stored and compared (SPEC §10), or None when `value`
    is not a valid address.

    The form is Unicode NFKC, then case-folded (then NFKC again: folding can decompose a character,
    e.g. U+01F0, and the form must be stable when computed again). An address that NFKC would change
    is refused rather than mapped: written with a compatibility character (the Kelvin sign U+212A for
    a K, full-width letters, ligatures) or in a decomposed form, it is another string for whoever
    issued it, and mapping it would let its holder answer for the plain address's inbox."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not is_printable_text(text) or unicodedata.normalize("NFKC", text) != text:
        return None
    canonical = folded_text(text)
    if len(canonical) > EMAIL_MAX_LENGTH or not EMAIL_PATTERN.match(canonical):
        return None
    return canonical


def folded_text(text):
    """`text` in the form canonical emails have (NFKC, case-folded, NFKC again), e.g. to search them."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


@dataclass(frozen=True)
class Identity:
    """Who calls: a person (the `sub` of a verified token), or an organization API key, whose id is
    `key:<key id>`, name the key's name, and which acts only in `key_organization_id` within `key_scopes`."""
    id: str
    email: str
    name: str
    key_organization_id: str | None = None
    key_scopes: tuple = ()

    @property
    def is_key(self):
        return self.key_organization_id is not None

    def as_actor(self):
        """The actor of a change event made by this caller: a person by id and email, a key by id and name."""
        if self.is_key:
            return {"id": self.id, "name": self.name}
        return {"id": self.id, "email": self.email}


class AuthContext:
    """Per-worker view of the caller's identity."""

    def __init__(self, worker_ctx):
        self._worker_ctx = worker_ctx

    @property
    def identity(self):
        data = self._worker_ctx.data
        if not data.get(USER_ID_KEY):
            return None
        if data[USER_ID_KEY].startswith(KEY_ACTOR_PREFIX) and data.get(KEY_ORGANIZATION_KEY):
            return Identity(data[USER_ID_KEY], "", data.get(USER_NAME_KEY) or "",
                            key_organization_id=data[KEY_ORGANIZATION_KEY],
                            key_scopes=tuple(filter(None, (data.get(KEY_SCOPES_KEY) or "").split(","))))
        return Identity(data[USER_ID_KEY], data.get(USER_EMAIL_KEY) or "", data.get(USER_NAME_KEY) or "")

    @contextmanager
    def as_system(self):
        """For the calls made inside it, this worker calls as the platform itself (another service's SYSTEM
        command: the billing service asking credits to grant a payment's credit), then as its caller again.
        No token or key can carry the system's id (is_reserved_user_id), so only a service can."""
        data = self._worker_ctx.data
        kept = {key: data.pop(key) for key in IDENTITY_KEYS if key in data}
        data[USER_ID_KEY] = SYSTEM_ACTOR["id"]
        try:
            yield
        finally:
            for key in IDENTITY_KEYS:
                data.pop(key, None)
            data.update(kept)

    def adopt(self, identity):
        """Make `identity` this worker's caller, from here on and in every RPC call it makes (the gateway,
        once it verified an API key with members inside the worker: gateway.authentication)."""
        self._worker_ctx.data.update(context_data(identity))


def context_data(identity):
    """The worker context data that carries `identity` (what the gateway sets for a verified token;
    Nameko copies it into every RPC call the worker makes, and `AuthContext` reads it back)."""
    if identity.is_key:
        return {USER_ID_KEY: identity.id, USER_NAME_KEY: identity.name,
                KEY_ORGANIZATION_KEY: identity.key_organization_id, KEY_SCOPES_KEY: ",".join(identity.key_scopes)}
    return {USER_ID_KEY: identity.id, USER_EMAIL_KEY: identity.email, USER_NAME_KEY: identity.name}


class Auth(DependencyProvider):
    """Gives workers the caller's identity (AuthContext). Every service and the gateway declare it, so it
    also tells the log which request and which span the worker serves (common.request_ids,
    common.tracing)."""

    def worker_setup(self, worker_ctx):
        request_ids.serve(worker_ctx.data.get(request_ids.CONTEXT_KEY))
        tracing.serve_worker(worker_ctx)

    def worker_teardown(self, worker_ctx):
        request_ids.serve(None)
        tracing.serve(None)

    def get_dependency(self, worker_ctx):
        return AuthContext(worker_ctx)
