"""CORS of the gateway's answers (CORS_ALLOWED_ORIGINS), applied by its WSGI app (gateway.http.JsonWsgiApp)."""
from werkzeug.wrappers import Response


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
