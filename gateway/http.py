"""HTTP plumbing of the gateway: the web server (JSON answers even where no route matched, one access log
line per request), the JSON entrypoint (which authenticates every route not marked public), and the route
registry that the OpenAPI document is generated from (so the document cannot drift from the routes). What
they change inside Nameko and eventlet (a chunked body readable, eventlet's own refusals as JSON, the
entrypoint's hook) is common.framework.web; reading a request's body and query is gateway/request_input.py."""
import functools
import json
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from common import metrics, request_ids
from common.auth import USER_ID_KEY
from common.config import settings
from common.errors import EXPECTED_ERRORS, AppError
from common.framework import web
from common.rpc import trace_calls
from gateway import authentication
from gateway.cors import Cors
from gateway.request_input import reject_bad_text

log = logging.getLogger(__name__)
access_log = logging.getLogger("gateway.access")

# The environ keys under which the entrypoint leaves the caller's id for the access log, and the
# request's id (common.request_ids) for the entrypoint.
CALLER_ID = authentication.CALLER_ID
REQUEST_ID = "gateway.request_id"
# The RPC calls a route's handler made (common.rpc.trace_calls), for the access log.
RPC_CALLS = "gateway.rpc_calls"

# Codes of the answers werkzeug's routing gives before any entrypoint runs.
ROUTING_ERROR_CODES = {404: "route_not_found", 405: "method_not_allowed"}


class JsonWsgiApp(web.WsgiApp):
    """The gateway's WSGI app (common.framework.web.WsgiApp, whose `route` also makes a chunked body
    readable), answering:
    - what the routing itself refuses as JSON too (werkzeug answers HTML): a path no rule has, such as
      `GET /` (which the catch-all <path:path> cannot match), a method no rule of the path has (OPTIONS),
      and any unexpected failure;
    - CORS (gateway.cors): the headers of answers to the allowed origins, and their preflights answered;
    - one access log line per request: method, path (never the query string, which may carry anything,
      nor any header, so never the token), status, duration, the caller's id once the token was
      verified, the request's id (common.request_ids), also answered in X-Request-Id, the route's rule
      and the RPC calls its handler made (a request is the gateway and one service: tests read them);
    - the request counted and timed by route and status (common.metrics), and GET /metrics answered."""

    def __init__(self, server):
        super().__init__(server)
        self.cors = Cors(settings().cors_allowed_origins)

    def respond(self, request):
        started = time.perf_counter()
        environ = request.environ
        environ[REQUEST_ID] = request_ids.new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        request_ids.serve(environ[REQUEST_ID])     # on the access line's prefix too (common.framework.web ends it)
        response = self.cors.preflight_response(environ) or self._response(request)
        response.headers[request_ids.HEADER] = environ[REQUEST_ID]
        protect(response)
        self.cors.add_headers(response, environ.get("HTTP_ORIGIN"))
        access_log.info("%s %s %d %.1fms caller=%s request=%s route=%s rpc=%s", _printable(request.method, 16),
                        _printable(request.path, 300), response.status_code, (time.perf_counter() - started) * 1000,
                        _printable(environ.get(CALLER_ID) or "-", 140), environ[REQUEST_ID],
                        environ.get(web.ROUTE_RULE, "-"), ",".join(environ.get(RPC_CALLS) or ()) or "-")
        metrics.http_answered(request.method, environ.get(web.ROUTE_RULE), response, started)
        return response

    def _response(self, request):
        if request.path == metrics.PATH and metrics.enabled():
            return metrics.gateway_answer(request)      # before routing: no worker taken (common.metrics)
        try:
            return self.route(request)
        except AppError as exc:
            return json_response(exc.to_dict(), exc.status)
        except HTTPException as exc:
            return routing_error_response(exc, request)
        except Exception as exc:
            log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
            return internal_error_response()


def protect(response):
    """Headers every answer carries: nothing the API answers (members' emails, balances) is kept by a
    browser or a proxy (`Cache-Control: no-store`, unless the answer says otherwise: the console's files),
    no answer is sniffed into another type, a 401 says which scheme signs in (RFC 6750), a 429 when to try
    again (Retry-After)."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.status_code == 429 and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = str((_error_of(response).get("details") or {}).get("retry_after", 60))
    if response.status_code == 401 and "WWW-Authenticate" not in response.headers:
        code = _error_of(response).get("code", "invalid_token")
        response.headers["WWW-Authenticate"] = (
            'Bearer realm="orgplatform"' if code == "missing_token"
            else f'Bearer realm="orgplatform", error="invalid_token", error_description="{code}"')


def _error_of(response):
    """The {"code", "message", "field", "details"} of an error answer's body; {} for another body."""
    try:
        error = json.loads(response.get_data())["error"]
    except (ValueError, KeyError, TypeError):
        return {}
    return error if isinstance(error, dict) else {}


def routing_error_response(exc, request):
    """Werkzeug's answer to a request no rule takes, with its status and headers (Allow, Location) but a
    JSON error for a body."""
    response = exc.get_response(request.environ)
    if response.status_code == 404:
        message = f"There is no route {request.method} {request.path}."
    elif response.status_code == 405:
        message = f"{request.method} is not a method of {request.path}."
    else:
        message = exc.description or "The request cannot be routed."
    code = ROUTING_ERROR_CODES.get(response.status_code, "bad_request")
    response.set_data(json.dumps({"error": {"code": code, "message": message, "field": None}}))
    response.mimetype = "application/json"
    return response


def internal_error_response():
    return json_response({"error": {"code": "internal_error", "field": None,
                                    "message": "Something went wrong on our side; it has been logged."}}, 500)


def _printable(text, limit):
    """`text` for one log line: percent-escaped (no newline or control character can forge a line), cut."""
    return quote(text, safe="/:@!$&'()*+,;=-._~", errors="replace")[:limit]


class JsonWebServer(web.WebServer):
    wsgi_app_cls = JsonWsgiApp


class JsonHttpEntrypoint(web.HttpEntrypoint):
    """Nameko's @http (common.framework.web.HttpEntrypoint), answering every error as {"error": {"code",
    "message", "field"}}, and authenticating the caller of every route not marked public before a worker is
    spawned for it."""

    server = JsonWebServer()

    def __init__(self, method, url, public=False, **kwargs):
        self.public = public
        super().__init__(method, url, **kwargs)

    def worker_context(self, request, context_data):
        # Once the path is checked (a NUL in it is a 400 even without a token), the token is; the worker
        # starts with the identity in its context data.
        context_data[request_ids.CONTEXT_KEY] = request.environ.get(REQUEST_ID)   # into every RPC call
        if not self.public:
            context_data.update(authentication.context_data(request))
            request.environ[CALLER_ID] = context_data.get(USER_ID_KEY)

    def get_entrypoint_parameters(self, request):
        args, kwargs = super().get_entrypoint_parameters(request)
        for name, value in kwargs.items():
            reject_bad_text(value, name)
        return args, kwargs

    def response_from_exception(self, exc):
        if isinstance(exc, AppError):
            return json_response(exc.to_dict(), exc.status)
        log.error("unhandled error in %s %s", self.method, self.url, exc_info=exc)
        return internal_error_response()


def http(method, url, public=False, key_scope=None):
    """Nameko's @http with JSON errors and authentication; our errors are declared expected (answers, not
    crashes). Unless public, the handler runs once the caller is settled (gateway.authentication: a
    person's first sign-in; an API key verified, in its organization and holding `key_scope`)."""
    def decorator(fn):
        handler = traced(fn if public else authentication.caller_settled_first(fn, key_scope))
        return JsonHttpEntrypoint.decorator(method, url, public=public, expected_exceptions=EXPECTED_ERRORS)(handler)
    return decorator


def traced(handler):
    """The handler, recording the RPC calls it makes (a first sign-in included) for the access line."""
    @functools.wraps(handler)
    def recorded(self, request, *args, **kwargs):
        calls = trace_calls()
        try:
            return handler(self, request, *args, **kwargs)
        finally:
            request.environ[RPC_CALLS] = calls
    return recorded


def json_response(body, status=200, headers=None):
    return Response(json.dumps(body), status=status, headers=headers, mimetype="application/json")


@dataclass
class Route:
    method: str
    path: str                 # werkzeug syntax: /v1/organizations/<org_id>
    summary: str
    handler: str
    body: object = None       # marshmallow schema of the request body
    response: object = None   # marshmallow schema of the answer (many=True for lists)
    status: int = 200
    query: dict = field(default_factory=dict)   # name -> description
    query_schema: object = None   # the marshmallow schema the query is loaded with: types, enums, bounds
    headers: dict = field(default_factory=dict)  # name -> description
    public: bool = False
    key_scope: str = None     # the API key scope (SPEC §9) that lets a key call this route; None: no key may
    errors: tuple = ()
    # Answers besides `status`: status -> the schema of its body (a dry run's 200, a repeat PUT's 200,
    # an unhealthy 503), where an error status would otherwise be documented with ErrorBody.
    responses: dict = field(default_factory=dict)
    # Other bodies of the `status` answer, chosen by `format=`: media type -> a schema (many=True for a bare
    # array) or, for "text/csv", the list of columns.
    downloads: dict = field(default_factory=dict)


ROUTES = []

# `headers` of a create that a retry may repeat safely.
OPTIONAL_IDEMPOTENCY_KEY = {"Idempotency-Key": "optional; a retry with the same key and body returns the first "
                                               "answer (header Idempotent-Replayed: true); the same key with "
                                               "another body is 409 idempotency_key_reused"}


def route(method, path, summary, **spec):
    """@http plus an entry in ROUTES, from which /openapi.json is generated."""
    def decorator(fn):
        ROUTES.append(Route(method, path, summary, fn.__name__, **spec))
        return http(method, path, public=spec.get("public", False), key_scope=spec.get("key_scope"))(fn)
    return decorator

