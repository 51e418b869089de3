"""Overrides of Nameko's HTTP stack (Nameko 2.14.1, `nameko.web`) and of eventlet's HTTP protocol
(eventlet 0.41.3, `eventlet.wsgi`). The gateway (gateway/http.py) subclasses these and fills in the hooks
named below; of upstream's own methods it overrides only the entrypoint's `__init__` (a `public` flag),
`get_entrypoint_parameters` (extended: input checks) and `response_from_exception` (replaced: JSON errors).

- `JsonRefusalsProtocol` extends `setup` of `nameko.web.server.HttpOnlyProtocol` (an
  `eventlet.wsgi.HttpProtocol`): what eventlet refuses itself in `HttpProtocol.handle_one_request`,
  before any application code runs (an over-long URL or header line, too many headers, a malformed
  Content-Length), is answered with an empty body; here it becomes a JSON error like every other. The
  refusals are recognised by eventlet's exact status lines (EVENTLET_REFUSALS).
- `WebServer` overrides `nameko.web.server.WebServer.get_wsgi_app` (an instance of `wsgi_app_cls`, a hook)
  and `get_wsgi_server` (upstream's, with JsonRefusalsProtocol).
- `WsgiApp` replaces `nameko.web.server.WsgiApp.__call__`. Upstream makes a shallow request, routes it
  and answers a routing refusal with werkzeug's HTML. Here `__call__` makes the same shallow request, in
  the request's server span (common.tracing: the client's traceparent continued, named by the route's
  rule, served by the green thread for its log lines), and answers what `respond(request)` returns
  (the hook: the gateway adds its JSON errors, CORS and access log around `route`); `route(request)` is
  upstream's routing, raising what it refuses, and makes a chunked body readable: eventlet de-chunks it
  but says so to nobody (no `wsgi.input_terminated`, see `eventlet.wsgi.HttpProtocol.get_environ`), so
  werkzeug (`werkzeug.wsgi.get_input_stream`) handed handlers an empty stream.
- `HttpEntrypoint` overrides `nameko.web.handlers.HttpRequestHandler`: `check_signature` through
  common.framework.signature.SignatureOnce, and `handle_request`, a copy of upstream's with one hook,
  `worker_context(request, context_data)`, called once the arguments and the signature are checked and
  before a worker is spawned: it adds to the worker's context data or refuses the request by raising
  (the gateway authenticates there); the worker's context data then names the request's span too.
- A graceful stop (`Draining`): `HttpEntrypoint.stop` (upstream's, preceded by `WebServer.drain`) runs
  first when the container stops (`nameko.containers.ServiceContainer.stop` stops entrypoints before
  workers and dependencies); `WebServer.process_request` (upstream's, wrapped) and
  `JsonRefusalsProtocol.handle_one_response` (eventlet's, wrapped) tell it which connections are open and
  which are answering a request.
"""
import json
import socket
from functools import partial

import eventlet
from eventlet.event import Event
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol
from nameko.web.server import WebServer as NamekoWebServer
from nameko.web.server import WsgiApp as NamekoWsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from common import request_ids, tracing
from common.errors import BadRequest
from common.framework.signature import SignatureOnce

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


# The environ key under which `WsgiApp.route` leaves the matched rule (e.g. /v1/organizations/<org_id>).
ROUTE_RULE = "orgplatform.route_rule"

# What Python's http.server (under eventlet's protocol) answers by itself as an HTML page: the status
# line's status -> (status, code, message). More than 100 header lines is http.client's limit.
HTML_REFUSALS = {
    b" 431 ": ("431 Request Header Fields Too Large", "too_many_headers",
               "A request may have at most 100 header lines."),
}


def _json_refusal(status, code, message):
    body = json.dumps({"error": {"code": code, "message": message, "field": None}}).encode()
    return (f"HTTP/1.0 {status}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class _JsonRefusals:
    """The connection's write side, turning eventlet's own empty refusals, and the HTML pages of
    http.server's, into JSON errors."""

    def __init__(self, wfile):
        self._wfile = wfile
        self._dropping_page = False

    def write(self, data):
        if self._dropping_page:         # the HTML page after a refusal's headers already answered as JSON
            self._dropping_page = False
            return len(data)
        if isinstance(data, bytes):
            for prefix, refusal in EVENTLET_REFUSALS.items():
                if data.startswith(prefix):
                    return self._wfile.write(_json_refusal(*refusal))
            status_line = data.split(b"\r\n", 1)[0]
            for status, refusal in HTML_REFUSALS.items():
                if status_line.startswith(b"HTTP/1.") and status in status_line:
                    self._dropping_page = data.endswith(b"\r\n\r\n")   # the page comes in its own write
                    return self._wfile.write(_json_refusal(*refusal))
        return self._wfile.write(data)

    def __getattr__(self, name):
        return getattr(self._wfile, name)


class JsonRefusalsProtocol(HttpOnlyProtocol):
    """Nameko's HTTP protocol, except that what eventlet refuses itself (an over-long URL or header line,
    too many headers, a malformed Content-Length) is answered as a JSON error like every other; and that
    each request is counted while it is answered (its route run and its answer written), for a graceful
    stop (Draining)."""

    def setup(self):
        super().setup()
        self.wfile = _JsonRefusals(self.wfile)

    def handle_one_response(self):
        draining = getattr(self.server, "draining", None)
        if draining is None:
            return super().handle_one_response()
        draining.answering(self.connection)
        try:
            if draining.started:
                self.close_connection = 1       # this answer is the connection's last: `Connection: close`
            return super().handle_one_response()
        finally:
            if draining.started:
                self.close_connection = 1
            draining.answered(self.connection)


class Draining:
    """A graceful stop of the web server (issue 24): stop accepting, answer every request already being
    answered, close each keep-alive connection once its current answer is written (or at once when it is
    idle between requests), then let the process stop. Before, a SIGTERM under keep-alive clients killed
    the connections' threads with answers unwritten: the spends were charged and their clients got
    "Remote end closed connection without response".

    It runs first thing when the container stops (the entrypoints' stop, HttpEntrypoint.stop), while
    workers and their RPC proxies still work; a request still unanswered after DRAIN_SECONDS (beyond any
    RPC time-out) is left to the container's stop."""

    DRAIN_SECONDS = 30.0

    def __init__(self):
        self.started = False
        self._connections = {}          # socket -> whether a request of it is being answered now
        self._done = Event()

    def opened(self, connection):
        self._connections[connection] = False

    def closed(self, connection):
        self._connections.pop(connection, None)
        self._check_done()

    def answering(self, connection):
        self._connections[connection] = True

    def answered(self, connection):
        self._connections[connection] = False
        if self.started:
            self._close(connection)
        self._check_done()

    def drain(self, stop_accepting):
        """Called by every entrypoint's stop; the first one drains, the others wait for it."""
        if not self.started:
            self.started = True
            stop_accepting()
            for connection, busy in list(self._connections.items()):
                if not busy:
                    self._close(connection)     # idle between requests: no answer owed on it
            self._check_done()
        with eventlet.Timeout(self.DRAIN_SECONDS, False):
            self._done.wait()

    def _check_done(self):
        if self.started and not any(self._connections.values()) and not self._done.ready():
            self._done.send(True)

    @staticmethod
    def _close(connection):
        try:
            connection.shutdown(socket.SHUT_RDWR)       # its thread's read of a next request ends
        except OSError:
            pass


class WsgiApp(NamekoWsgiApp):
    """Nameko's WSGI app, with `respond(request)` to override and `route(request)` to call from it."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)   # shallow: as upstream's, until an entrypoint reads it
        span = tracing.http_request_started(getattr(self.server.container, "service_name", None), environ)
        try:
            response = self.respond(request)
        except Exception as error:
            tracing.http_request_ended(span, request.method, environ.get(ROUTE_RULE), 500, error)
            raise
        finally:
            request_ids.serve(None)         # if `respond` served the request's id (the gateway's does)
        tracing.http_request_ended(span, request.method, environ.get(ROUTE_RULE), response.status_code)
        return response(environ, start_response)

    def respond(self, request):
        """The response to `request`; a subclass adds around `route`. Here: upstream's answers."""
        try:
            return self.route(request)
        except HTTPException as exc:
            return exc              # werkzeug's own answer (HTML), as upstream's

    def route(self, request):
        """Upstream's routing: the provider of the matching rule handles the request; werkzeug's
        HTTPException for a path or method no rule takes, BadRequest for a transfer coding other than
        chunked."""
        transfer_encoding = request.environ.get("HTTP_TRANSFER_ENCODING")
        if transfer_encoding is not None:
            if transfer_encoding.strip().lower() != "chunked":   # what eventlet de-chunks; no other coding
                raise BadRequest("Only Transfer-Encoding: chunked is accepted.", code="unsupported_transfer_encoding")
            request.environ["wsgi.input_terminated"] = True
        rule, request.path_values = self.url_map.bind_to_environ(request.environ).match(return_rule=True)
        request.environ[ROUTE_RULE] = rule.rule        # for the gateway's access line
        return rule.endpoint.handle_request(request)


class WebServer(NamekoWebServer):
    """Nameko's web server, serving `wsgi_app_cls` (a subclass of WsgiApp above) with JsonRefusalsProtocol,
    stopping gracefully (Draining: `drain`, called by the entrypoints' stop)."""

    wsgi_app_cls = WsgiApp

    def get_wsgi_app(self):
        return self.wsgi_app_cls(self)

    def get_wsgi_server(self, sock, wsgi_app, protocol=None, debug=False):
        server = super().get_wsgi_server(sock, wsgi_app, protocol=JsonRefusalsProtocol, debug=debug)
        server.draining = self.draining = Draining()
        return server

    def process_request(self, sock, address):
        draining = getattr(self, "draining", None)
        if draining is None:
            return super().process_request(sock, address)
        draining.opened(sock)
        try:
            return super().process_request(sock, address)
        finally:
            draining.closed(sock)

    def drain(self):
        draining = getattr(self, "draining", None)
        if draining is not None:
            draining.drain(self._stop_accepting)

    def _stop_accepting(self):
        # What upstream's stop does first (the accept loop ended, the listening socket closed); its stop
        # does it again, harmlessly, later.
        self._is_accepting = False
        if self._gt is not None:
            self._gt.kill()
        if self._sock is not None:
            self._sock.close()


class HttpEntrypoint(SignatureOnce, HttpRequestHandler):
    """Nameko's @http entrypoint, with `worker_context` to override. A subclass may name its own `server`
    (an instance of a subclass of WebServer above, with its own `wsgi_app_cls`)."""

    server = WebServer()

    def stop(self):
        # First thing when the container stops, while workers can still call services: a graceful stop
        # of the server (WebServer.drain), then upstream's (the entrypoint unregistered).
        self.server.drain()
        super().stop()

    def worker_context(self, request, context_data):
        """Called before a worker is spawned for `request`: adds to `context_data`, or raises to refuse."""

    def handle_request(self, request):
        # Upstream's handle_request with one step added, worker_context, once the arguments and the
        # signature are checked.
        request.shallow = False
        try:
            context_data = self.server.context_data_from_headers(request)
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            self.worker_context(request, context_data)
            tracing.into_worker(request.environ, context_data)
            event = Event()
            self.container.spawn_worker(self, args, kwargs, context_data=context_data,
                                        handle_result=partial(self.handle_result, event))
            result = event.wait()
            response = self.response_from_result(result)
        except Exception as exc:
            response = self.response_from_exception(exc)
        return response
