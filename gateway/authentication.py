"""Who is calling the gateway, settled once per request before any handler runs.

Two steps, split by what each needs:
- `context_data(request)`, called by the HTTP entrypoint (gateway.http) for every route not marked
  public, before a worker is spawned: verifies the bearer token (401 otherwise, without a worker) and
  returns the identity as worker context data, under the keys common.auth reads. So `Auth` sees the
  caller in the handler, and Nameko copies it into every RPC call the worker makes.
- `signed_in_first(handler)`, wrapped around the same routes' handlers: the first time this process sees
  a user, `orgs.sign_in` (which creates their Individual organization) runs before the handler.
"""
import functools
from collections import OrderedDict

from common import auth
from common.config import settings
from common.rpc import call
from gateway import tokens

# Read once at import, so the gateway refuses to start (`nameko run` ends with the ConfigError naming the
# variable) rather than answering 500s with settings tokens cannot be checked by: JWT_JWKS without
# JWT_ISSUER and JWT_AUDIENCE, a JWT_JWKS that is neither a URL nor a path.
settings()

# Users this process has already signed in (their Individual organization exists). Only an
# optimisation: sign-in is idempotent, and another replica simply does it once more.
_signed_in = OrderedDict()
_SIGNED_IN_MAX = 10000


def context_data(request):
    """The worker context data of a request whose `Authorization: Bearer` token is valid; Unauthenticated
    (missing_token, invalid_token, token_expired) otherwise."""
    identity = tokens.identity_from_header(request.headers.get("Authorization"))
    return auth.context_data(identity)


def signed_in_first(handler):
    """The handler, preceded by the caller's first sign-in in this process.

    The sign-in is an RPC, so it needs the worker, and its errors (a 503 when orgs is down) must become
    the answer, before the handler changes anything. Hence inside the handler call: an error raised in a
    DependencyProvider's worker_setup never reaches the entrypoint (Nameko kills the container and the
    request hangs), and the entrypoint itself has no worker to make RPC calls from. The service must
    have `auth` (common.auth.Auth) and `orgs` (an RpcProxy of orgs), as GatewayService does.

    (Nameko's check that a path's variables fit the handler now meets this wrapper, which takes any;
    tests/unit/gateway checks every handler's parameters against its path instead.)"""
    @functools.wraps(handler)
    def signed_in_handler(service, request, **path_values):
        identity = service.auth.identity
        if identity not in _signed_in:
            call(service.orgs.sign_in)
            _signed_in[identity] = True
            if len(_signed_in) > _SIGNED_IN_MAX:
                _signed_in.popitem(last=False)
        return handler(service, request, **path_values)
    return signed_in_handler
