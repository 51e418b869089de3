"""HTTP plumbing of the gateway: the JSON entrypoint (which authenticates every route not marked public),
request parsing, and the route registry that the OpenAPI document is generated from (so the document cannot
drift from the routes)."""
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial

from eventlet.event import Event
from marshmallow import ValidationError
from nameko.web.handlers import HttpRequestHandler
from werkzeug.wrappers import Response

from common import idempotency
from common.errors import EXPECTED_ERRORS, AppError, BadRequest, ValidationFailed
from common.rpc import SignatureOnce
from gateway import authentication

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


class JsonHttpEntrypoint(SignatureOnce, HttpRequestHandler):
    """Nameko's @http, answering every error as {"error": {"code", "message", "field"}}, and authenticating
    the caller of every route not marked public before a worker is spawned for it."""

    def __init__(self, method, url, public=False, **kwargs):
        self.public = public
        super().__init__(method, url, **kwargs)

    def handle_request(self, request):
        # Nameko's handle_request with one step added: once the path is checked (a NUL in it is a 400
        # even without a token), the token is; the worker starts with the identity in its context data.
        request.shallow = False
        try:
            context_data = self.server.context_data_from_headers(request)
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            if not self.public:
                context_data.update(authentication.context_data(request))
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
            reject_nul(value, name)
        return args, kwargs

    def response_from_exception(self, exc):
        if isinstance(exc, AppError):
            return json_response(exc.to_dict(), exc.status)
        log.error("unhandled error in %s %s", self.method, self.url, exc_info=exc)
        return json_response({"error": {"code": "internal_error", "field": None,
                                        "message": "Something went wrong on our side; it has been logged."}}, 500)


def http(method, url, public=False):
    """Nameko's @http with JSON errors and authentication; our errors are declared expected (answers, not
    crashes). Unless public, the handler runs after the caller's first sign-in (gateway.authentication)."""
    def decorator(fn):
        handler = fn if public else authentication.signed_in_first(fn)
        return JsonHttpEntrypoint.decorator(method, url, public=public, expected_exceptions=EXPECTED_ERRORS)(handler)
    return decorator


def json_response(body, status=200, headers=None):
    return Response(json.dumps(body), status=status, headers=headers, mimetype="application/json")


def read_json(request, schema):
    """The request body, loaded and validated by a marshmallow schema; 400 or 422 otherwise."""
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise BadRequest(f"The body is larger than {MAX_BODY_BYTES} bytes.", code="body_too_large")
    raw = request.get_data(cache=False, as_text=False)
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"The body is larger than {MAX_BODY_BYTES} bytes.", code="body_too_large")
    try:
        # Numbers with a fraction become Decimal, never float: amounts must stay exact (common.money).
        data = json.loads(raw.decode("utf-8"), parse_float=Decimal) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The body is not valid JSON.", code="invalid_json")
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.", code="invalid_json")
    return load(schema, data)


def reject_nul(value, field):
    """No NUL characters anywhere in input: PostgreSQL cannot store them in text (it would be a 500)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest("Text must not contain NUL characters.", code="nul_character", field=field)
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key, field)
            reject_nul(item, f"{field}.{key}" if field else key)
    elif isinstance(value, list):
        for item in value:
            reject_nul(item, field)


def load(schema, data):
    """Validate request data (a body or a query string) with a marshmallow schema; 400 or 422 otherwise."""
    reject_nul(data, None)
    try:
        return schema.load(data)
    except ValidationError as exc:
        name, message = _first_error(exc.messages)
        raise ValidationFailed(message, code="validation_error", field=name)


def _first_error(messages, prefix=""):
    name, value = next(iter(messages.items()))
    path = f"{prefix}{name}"
    if isinstance(value, dict):
        return _first_error(value, f"{path}.")
    return path, value[0] if isinstance(value, list) else str(value)


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
    headers: dict = field(default_factory=dict)  # name -> description
    public: bool = False
    errors: tuple = ()


ROUTES = []

# `headers` of a create that a retry may repeat safely.
OPTIONAL_IDEMPOTENCY_KEY = {"Idempotency-Key": "optional; a retry with the same key returns the first answer"}


def route(method, path, summary, **spec):
    """@http plus an entry in ROUTES, from which /openapi.json is generated."""
    def decorator(fn):
        ROUTES.append(Route(method, path, summary, fn.__name__, **spec))
        return http(method, path, public=spec.get("public", False))(fn)
    return decorator


def idempotency_key(request):
    """The request's Idempotency-Key header: None when absent, 400 when malformed."""
    return idempotency.check_key(request.headers.get("Idempotency-Key"))
