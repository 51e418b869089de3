"""The web console: its static files (gateway/console/), and the development sign-in it offers while the
gateway runs with the development secret.

The files are public: the page itself asks for a token and then speaks only the public API, like any other
client. They are served with `http`, not `route`: they are not part of the API, so /openapi.json does not
list them. Werkzeug tries rules with fixed parts before the catch-all `/<path:path>` of operations.py, so
these are reached first."""
from pathlib import Path

from werkzeug.wrappers import Response

from common.config import settings
from common.errors import NotFound
from gateway import tokens
from gateway.http import http, json_response, route
from gateway.request_input import read_json
from gateway.schemas.console import DevToken, DevTokenBody

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
# no-cache: a browser checks back every time, so a page never runs with modules of an older version.
# The policy lets the page load only its own files and call only this gateway: nothing injected into it
# (a name shown on a card, say) could load or send anything elsewhere.
STATIC_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
}


class ConsoleRoutes:
    @http("GET", "/console", public=True)
    def console_without_slash(self, request):
        # The page's files are named relative to /console/; from /console they would be looked up at /.
        return Response(status=308, headers={"Location": "/console/", "Cache-Control": "no-cache"})

    @http("GET", "/console/", public=True)
    def console_page(self, request):
        return static_file("index.html")

    @http("GET", "/console/settings.json", public=True)
    def console_settings(self, request):
        # What the sign-in page offers, asked without a refusal to log: probing POST /v1/dev/token for its
        # 422 or 404 put a red error in the browser's console on every load.
        return json_response({"dev_sign_in": dev_tokens_enabled(),
                              "request_timeout_seconds": settings().console_request_timeout_seconds},
                             headers={"Cache-Control": "no-cache"})

    @http("GET", "/console/<path:file>", public=True)
    def console_file(self, request, file):
        return static_file(file)

    @route("POST", "/v1/dev/token", "A development token for the console's sign-in form; only while the "
           "development secret is in use (JWT_SECRET unset, no JWT_JWKS), 404 dev_token_disabled otherwise",
           public=True, body=DevTokenBody(), response=DevToken(), errors=(404,))
    def dev_token(self, request):
        if not dev_tokens_enabled():
            raise NotFound("Development sign-in is off: sign in with a token from your identity provider.",
                           code="dev_token_disabled")
        body = read_json(request, DevTokenBody())
        token = tokens.mint(body["sub"], body["email"].strip(), body["name"].strip())
        return json_response(DevToken().dump({"token": token}))


def dev_tokens_enabled():
    """Only with the development secret, which is published in the README: anyone can mint its tokens
    already (`make token`), so handing them out gives nothing away. With a secret of one's own, or an
    identity provider, minting here would let anyone be anyone."""
    config = settings()
    return not config.jwt_secret_given and config.jwt_jwks is None


def console_files():
    """Relative path (as in a URL) -> file, for every file of the console folder of a type it serves."""
    return {path.relative_to(CONSOLE_DIR).as_posix(): path for path in CONSOLE_DIR.rglob("*")
            if path.is_file() and path.suffix in CONTENT_TYPES}


def static_file(name):
    """The console file `name`, or a JSON 404. The name is looked up among the folder's files, never joined
    onto the folder's path, so no `..`, absolute path or encoded trick can name anything outside it."""
    path = console_files().get(name)
    if path is None:
        raise NotFound(f"There is no route GET /console/{name}.", code="route_not_found")
    return Response(path.read_bytes(), headers=dict(STATIC_HEADERS, **{"Content-Type": CONTENT_TYPES[path.suffix]}))
