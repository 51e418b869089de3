"""Who is calling the gateway, settled once per request before any handler runs.

Two steps, split by what each needs:
- `context_data(request)`, called by the HTTP entrypoint (gateway.http) for every route not marked
  public, before a worker is spawned: verifies the bearer token (401 otherwise, without a worker) and
  returns the identity as worker context data, under the keys common.auth reads. So `Auth` sees the
  caller in the handler, and Nameko copies it into every RPC call the worker makes. An API key
  (`opk_…`, SPEC §9) whose id was asked about in the last minute is checked here too (gateway.known_keys);
  one not seen yet is left to the next step, which can ask members. Refused credentials count towards the
  failure limits of gateway.rate_limits (429 past them).
- `caller_settled_first(handler, key_scope)`, wrapped around the same routes' handlers: a key not seen yet
  is checked with what members answers about its id (`members.authenticate_api_key`) and becomes the
  worker's identity; a key may then call the route only in its own organization and with `key_scope`
  (403 otherwise, 404 for another organization); a person is signed in (`orgs.sign_in`, which creates
  their Individual organization) the first time this process sees them, or later if orgs is away then
  (`sign_in`: the request goes on, decided by its service's own facts).
"""
import functools
import logging
import time
from collections import OrderedDict

from eventlet.event import Event

from common import auth
from common.authz import check_key_allowed
from common.config import settings
from common.errors import Forbidden, ServiceUnavailable, Unauthenticated
from common.rpc import call
from gateway import tokens
from gateway.known_keys import key_id_of, known_keys
from gateway.rate_limits import rate_limits

# Read at import, so the gateway refuses to start (a ConfigError naming the variable, however it is started;
# devtools.serve reads them before anything else) rather than answering 500s with settings tokens cannot be
# checked by: JWT_JWKS without JWT_ISSUER and JWT_AUDIENCE, a JWT_JWKS that is neither a URL nor a path.
settings()

log = logging.getLogger(__name__)

# Users this process has already signed in (their Individual organization exists). Only an
# optimisation: sign-in is idempotent, and another replica simply does it once more.
_signed_in = OrderedDict()
_SIGNED_IN_MAX = 10000

# The environ key under which the caller's id is left for the access log (gateway.http).
CALLER_ID = "gateway.caller_id"

# Where the entrypoint leaves a key it could not settle from memory, for the handler's step (the
# request's environ: never context data, which travels with every RPC call and would carry the secret).
KEY_TO_VERIFY = "gateway.api_key_to_verify"

# Key ids being asked of members right now, with the event their answer is sent on.
_asking = {}

KEY_REFUSALS = {"invalid_api_key": "The API key is not valid.",
                "api_key_revoked": "The API key was revoked.",
                "api_key_expired": "The API key has expired."}


def context_data(request):
    """The worker context data of a request whose `Authorization: Bearer` token is valid; Unauthenticated
    (missing_token, invalid_token, token_expired, invalid_api_key, api_key_revoked, api_key_expired), or
    429 past the failure limits (gateway.rate_limits), otherwise. {} for a well-formed key whose id this
    process keeps nothing about lately (left in the environ, for the handler's step to ask members)."""
    address = rate_limits.client_address(request.environ)
    credential = tokens.bearer_credential(request.headers.get("Authorization"))   # missing_token: no guess
    if not credential.startswith(auth.API_KEY_PREFIX):
        try:
            return auth.context_data(tokens.identity_from_token(credential))
        except Unauthenticated as refusal:
            raise rate_limits.failed(refusal, address) from None
    key = well_formed_key(credential, address)
    identity, refusal = known_keys.find(key)
    if refusal is not None:
        raise rate_limits.failed(Unauthenticated(KEY_REFUSALS[refusal], code=refusal), address, key_id_of(key))
    if identity is not None:
        return auth.context_data(identity)
    rate_limits.check_not_blocked(address, key_id_of(key))      # no call to members past a limit
    request.environ[KEY_TO_VERIFY] = (key, address)
    return {}


def well_formed_key(credential, address=None):
    """A credential with the API key prefix, if it has a key's whole shape: 401 otherwise, without asking
    anyone."""
    if key_id_of(credential) is None or not credential.isprintable():
        raise rate_limits.failed(Unauthenticated(KEY_REFUSALS["invalid_api_key"], code="invalid_api_key"), address)
    return credential


def verified_key(service, key, address=None):
    """The identity of a key whose id this process keeps nothing about lately: members is asked once for
    what lets the gateway check it (gateway.known_keys), and the key is checked here, as a kept one is.
    Requests bringing the same key id meanwhile wait for that one answer: a runtime that starts with 20
    calls at once (or whose key's minute just ran out under load) makes members look once, not 20 times."""
    key_id = key_id_of(key)
    pending = _asking.get(key_id)
    if pending is None:
        pending = _asking[key_id] = Event()
        try:
            facts = call(service.members.authenticate_api_key, key)
        except Exception as exc:
            pending.send(exc)
            raise
        else:
            pending.send(facts)
        finally:
            del _asking[key_id]
    else:
        facts = pending.wait()
        if isinstance(facts, Exception):
            raise facts
    identity, refusal = known_keys.remember(key, facts)
    if refusal is not None:
        raise rate_limits.failed(Unauthenticated(KEY_REFUSALS[refusal], code=refusal), address, key_id)
    return identity


def check_key_route(identity, key_scope, organization_id):
    """A key calls a route only in its own organization and within its scopes (SPEC §9): 404 in another
    organization, 403 outside its scopes or on a route no key may call."""
    if organization_id is None:
        raise Forbidden("API keys can only call their organization's routes.", code="api_key_not_allowed")
    check_key_allowed(identity, organization_id, key_scope)


# How long after orgs failed to answer a sign-in the next ones are not asked of it (seconds).
SIGN_IN_RETRY_SECONDS = 10.0
_sign_in_failed_at = None


def sign_in(service, identity):
    """The person's first sight in this process: orgs makes sure their user record, Individual organization
    and its membership exist (orgs.sign_in, idempotent). With orgs not answering (down, hung, or said so
    less than SIGN_IN_RETRY_SECONDS ago) the request goes on without it, and a later request signs the
    person in: the service the route calls decides from its own facts, so a member already known to it
    (their spend, say: credits' read models) is not refused because orgs is away, also right after this
    process restarted; someone it does not know is refused as any stranger."""
    global _sign_in_failed_at
    if _sign_in_failed_at is not None and time.monotonic() - _sign_in_failed_at < SIGN_IN_RETRY_SECONDS:
        return
    try:
        call(service.orgs.sign_in)
    except ServiceUnavailable as refusal:
        _sign_in_failed_at = time.monotonic()
        log.warning("sign-in left for later: %s", refusal.message)
        return
    _sign_in_failed_at = None
    _signed_in[identity] = True
    if len(_signed_in) > _SIGNED_IN_MAX:
        _signed_in.popitem(last=False)



def caller_settled_first(handler, key_scope=None):
    """The handler, preceded by settling its caller: a key verified and kept to its organization and
    `key_scope`, or a person's first sign-in in this process.

    Sign-in and a key's verification are RPCs, so they need the worker, and their errors (a 503 when orgs
    or members is down) must become the answer, before the handler changes anything. Hence inside the
    handler call: an error raised in a DependencyProvider's worker_setup never reaches the entrypoint
    (Nameko kills the container and the request hangs), and the entrypoint itself has no worker to make
    RPC calls from. The service must have `auth` (common.auth.Auth), `orgs` and `members` (RpcProxies),
    as GatewayService does.

    (Nameko's check that a path's variables fit the handler now meets this wrapper, which takes any;
    tests/unit/gateway checks every handler's parameters against its path instead.)"""
    @functools.wraps(handler)
    def settled_handler(service, request, **path_values):
        key_to_verify = request.environ.pop(KEY_TO_VERIFY, None)
        if key_to_verify is not None:
            service.auth.adopt(verified_key(service, *key_to_verify))
        identity = service.auth.identity
        if identity.is_key:
            request.environ[CALLER_ID] = identity.id
            check_key_route(identity, key_scope, path_values.get("org_id"))
        elif identity not in _signed_in:
            sign_in(service, identity)
        return handler(service, request, **path_values)
    return settled_handler
