"""HTTP plumbing of the gateway: the web server (JSON answers even where no route matched, chunked bodies,
one access log line per request), the JSON entrypoint (which authenticates every route not marked public),
and the route registry that the OpenAPI document is generated from (so the document cannot drift from the
routes). Reading a request's body and query: gateway/request_input.py."""
import json
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import quote

from eventlet.event import Event
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from common import request_ids
from common.auth import USER_ID_KEY
from common.config import settings
from common.errors import EXPECTED_ERRORS, AppError, BadRequest
from common.rpc import SignatureOnce
from gateway import authentication
from gateway.request_input import reject_bad_text

log = logging.getLogger(__name__)
access_log = logging.getLogger("gateway.access")

# The environ keys under which the entrypoint leaves the caller's id for the access log, and the
# request's id (common.request_ids) for the entrypoint.
CALLER_ID = authentication.CALLER_ID
REQUEST_ID = "gateway.request_id"

# Codes of the answers werkzeug's routing gives before any entrypoint runs.
ROUTING_ERROR_CODES = {404: "route_not_found", 405: "method_not_allowed"}


class JsonWsgiApp(WsgiApp):
    """Nameko's WSGI app, changed in three ways:
    - what the routing itself refuses is JSON too (werkzeug answers HTML): a path no rule has, such as
      `GET /` (which the catch-all <path:path> cannot match), a method no rule of the path has (OPTIONS),
      and any unexpected failure;
    - a chunked body can be read: eventlet de-chunks it, but says so to nobody (no
      wsgi.input_terminated), so werkzeug handed handlers an empty stream and a body with a name was
      read as {} (a 422 name_required);
    - CORS (`Cors`): the headers of answers to the allowed origins, and their preflights answered;
    - one access log line per request: method, path (never the query string, which may carry anything,
      nor any header, so never the token), status, duration, the caller's id once the token was
      verified, and the request's id (common.request_ids), also answered in X-Request-Id."""

    def __init__(self, server):
        super().__init__(server)
        self.cors = Cors(settings().cors_allowed_origins)

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        environ[REQUEST_ID] = request_ids.new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        request = Request(environ, shallow=True)   # shallow: as Nameko's, until an entrypoint reads it
        response = self.cors.preflight_response(environ) or self._response(request)
        response.headers[request_ids.HEADER] = environ[REQUEST_ID]
        self.cors.add_headers(response, environ.get("HTTP_ORIGIN"))
        access_log.info("%s %s %d %.1fms caller=%s request=%s", _printable(request.method, 16),
                        _printable(request.path, 300), response.status_code, (time.perf_counter() - started) * 1000,
                        _printable(environ.get(CALLER_ID) or "-", 140), environ[REQUEST_ID])
        return response(environ, start_response)

    def _response(self, request):
        try:
            transfer_encoding = request.environ.get("HTTP_TRANSFER_ENCODING")
            if transfer_encoding is not None:
                if transfer_encoding.strip().lower() != "chunked":   # what eventlet de-chunks; no other coding
                    raise BadRequest("Only Transfer-Encoding: chunked is accepted.",
                                     code="unsupported_transfer_encoding")
                request.environ["wsgi.input_terminated"] = True
            provider, request.path_values = self.url_map.bind_to_environ(request.environ).match()
            return provider.handle_request(request)
        except AppError as exc:
            return json_response(exc.to_dict(), exc.status)
        except HTTPException as exc:
            return routing_error_response(exc, request)
        except Exception as exc:
            log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
            return internal_error_response()


class Cors:
    """Cross-origin calls from browsers, for the origins of CORS_ALLOWED_ORIGINS (none: no CORS headers).

    An allowed origin's answers (errors included, so a page can read why it was refused) name it in
    Access-Control-Allow-Origin and expose Idempotent-Replayed and X-Request-Id; its preflights are answered
    204 here, before routing and without a token (browsers send none with them). An origin not allowed gets
    no CORS headers, and its preflight is routed as any OPTIONS: a JSON 405 method_not_allowed.
    Credentials only for an origin listed by name: with `*`, any site could make a signed-in browser call
    the API, so `*` answers `*` and never allows credentials (browsers then refuse them too)."""

    METHODS = "GET, POST, PUT, PATCH, DELETE"
    REQUEST_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-Id"
    EXPOSED_HEADERS = "Idempotent-Replayed, X-Request-Id"
    MAX_AGE_SECONDS = 600

    def __init__(self, allowed_origins):
        self.named_origins = frozenset(origin for origin in allowed_origins if origin != "*")
        self.any_origin = "*" in allowed_origins

    def _headers(self, origin):
        if origin in self.named_origins:
            return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                    "Access-Control-Expose-Headers": self.EXPOSED_HEADERS}
        if origin and self.any_origin:
            return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": self.EXPOSED_HEADERS}
        return {}

    def preflight_response(self, environ):
        """The 204 answering an allowed origin's preflight; None for any other request."""
        if environ["REQUEST_METHOD"] != "OPTIONS" or "HTTP_ACCESS_CONTROL_REQUEST_METHOD" not in environ:
            return None
        if not self._headers(environ.get("HTTP_ORIGIN")):
            return None
        return Response(status=204, headers={"Access-Control-Allow-Methods": self.METHODS,
                                             "Access-Control-Allow-Headers": self.REQUEST_HEADERS,
                                             "Access-Control-Max-Age": str(self.MAX_AGE_SECONDS)})

    def add_headers(self, response, origin):
        if self.named_origins or self.any_origin:
            response.vary.add("Origin")   # answers differ by Origin: a shared cache must keep them apart
        response.headers.update(self._headers(origin))


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


class JsonWebServer(WebServer):
    def get_wsgi_app(self):
        return JsonWsgiApp(self)

    def get_wsgi_server(self, sock, wsgi_app, protocol=None, debug=False):
        return super().get_wsgi_server(sock, wsgi_app, protocol=JsonRefusalsProtocol, debug=debug)


# What eventlet's wsgi server answers by itself, before any application code runs (an empty body), and
# the JSON error each becomes: status line prefix -> (status, code, message).
EVENTLET_REFUSALS = {
    b"HTTP/1.0 414 ": ("414 Request URI Too Long", "url_too_long", "The URL is longer than 8 KB."),
    b"HTTP/1.0 400 Header Line Too Long": ("400 Bad Request", "header_too_long",
                                           "A header line is longer than 8 KB."),
    b"HTTP/1.0 400 Headers Too Large": ("400 Bad Request", "headers_too_large", "The headers exceed 64 KB."),
    b"HTTP/1.0 400 Bad Request\r\nConnection: close\r\nContent-length: 0": (
        "400 Bad Request", "invalid_content_length", "Content-Length must be a whole number, at least 0."),
    b"HTTP/1.0 400 Bad Request\r\nConnection: close\r\nContent-Length: ": (
        "400 Bad Request", "conflicting_body_length", "Send Content-Length or Transfer-Encoding, not both."),
}


class _JsonRefusals:
    """The connection's write side, turning eventlet's own empty refusals into JSON errors."""

    def __init__(self, wfile):
        self._wfile = wfile

    def write(self, data):
        for prefix, (status, code, message) in EVENTLET_REFUSALS.items():
            if isinstance(data, bytes) and data.startswith(prefix):
                body = json.dumps({"error": {"code": code, "message": message, "field": None}}).encode()
                data = (f"HTTP/1.0 {status}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body
                break
        return self._wfile.write(data)

    def __getattr__(self, name):
        return getattr(self._wfile, name)


class JsonRefusalsProtocol(HttpOnlyProtocol):
    """Nameko's HTTP protocol, except that what eventlet refuses itself (an over-long URL or header line,
    too many headers, a malformed Content-Length) is answered as a JSON error like every other."""

    def setup(self):
        super().setup()
        self.wfile = _JsonRefusals(self.wfile)


class JsonHttpEntrypoint(SignatureOnce, HttpRequestHandler):
    """Nameko's @http, answering every error as {"error": {"code", "message", "field"}}, and authenticating
    the caller of every route not marked public before a worker is spawned for it."""

    server = JsonWebServer()

    def __init__(self, method, url, public=False, **kwargs):
        self.public = public
        super().__init__(method, url, **kwargs)

    def handle_request(self, request):
        # Nameko's handle_request with one step added: once the path is checked (a NUL in it is a 400
        # even without a token), the token is; the worker starts with the identity in its context data.
        request.shallow = False
        try:
            context_data = self.server.context_data_from_headers(request)
            context_data[request_ids.CONTEXT_KEY] = request.environ.get(REQUEST_ID)   # into every RPC call
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            if not self.public:
                context_data.update(authentication.context_data(request))
                request.environ[CALLER_ID] = context_data.get(USER_ID_KEY)
            event = Event()
            self.container.spawn_worker(self, args, kwargs, context_data=context_data,
                                        handle_result=partial(self.handle_result, event))
            result = event.wait()
            response = self.response_from_result(result)
        except Exception as exc:
            response = self.response_from_exception(exc)
        return response

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
        handler = fn if public else authentication.caller_settled_first(fn, key_scope)
        return JsonHttpEntrypoint.decorator(method, url, public=public, expected_exceptions=EXPECTED_ERRORS)(handler)
    return decorator


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

