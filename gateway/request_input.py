"""What a request carries in: its JSON body (read to a limit, parsed with a depth limit, numbers as Decimal)
and its query string, checked for text that cannot be stored and loaded by a marshmallow schema (a 400, or a
422 with validation_error or a contract's code, common.contracts); its Idempotency-Key."""
from marshmallow import ValidationError
from werkzeug.exceptions import ClientDisconnected

from common import idempotency
from common.contracts.base import Coded, code_of
from common.errors import BadRequest, ValidationFailed
from common.schemas import MAX_JSON_DEPTH, JsonTooDeep, loads_json, text_problem

MAX_BODY_BYTES = 64 * 1024


def read_json(request, schema):
    """The request body, loaded and validated by a marshmallow schema; 400 or 422 otherwise."""
    raw = read_body(request)
    try:
        # Numbers with a fraction become Decimal, never float: amounts must stay exact (common.money).
        data = loads_json(raw.decode("utf-8")) if raw.strip() else {}
    except JsonTooDeep:
        raise BadRequest(f"The body nests deeper than {MAX_JSON_DEPTH} levels.", code="json_too_deep") from None
    except ValueError:   # UnicodeDecodeError included
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.", code="invalid_json")
    return load(schema, data)


def read_body(request):
    """The raw body, Content-Length or chunked (JsonWsgiApp lets it be read), read no further than one
    byte past MAX_BODY_BYTES: a chunked body has no length to refuse it by beforehand."""
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise body_too_large()
    body = bytearray()
    try:
        while len(body) <= MAX_BODY_BYTES:
            chunk = request.stream.read(MAX_BODY_BYTES + 1 - len(body))
            if not chunk:
                break
            body += chunk
    except (ValueError, OSError, ClientDisconnected):   # eventlet's ChunkReadError is a ValueError
        raise BadRequest("The body ended early or its chunks are malformed.", code="invalid_body") from None
    if len(body) > MAX_BODY_BYTES:
        raise body_too_large()
    return bytes(body)


def body_too_large():
    return BadRequest(f"The body is larger than {MAX_BODY_BYTES} bytes.", code="body_too_large")


_TEXT_PROBLEMS = {"nul_character": "Text must not contain NUL characters.",
                  "invalid_text": "Text must be valid Unicode: a lone surrogate (U+D800 to U+DFFF) is not."}


def reject_bad_text(value, field):
    """No text anywhere in input that cannot be stored (common.schemas.text_problem: NUL, which PostgreSQL
    text cannot hold; a lone surrogate, which no encoder takes): a 400 naming the field, before anything
    is stored."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise BadRequest(_TEXT_PROBLEMS[problem], code=problem, field=field)
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_bad_text(key, field)
            reject_bad_text(item, f"{field}.{key}" if field else key)
    elif isinstance(value, list):
        for item in value:
            reject_bad_text(item, field)


def load(schema, data):
    """Validate request data (a body or a query string) with a marshmallow schema; 400 or 422 otherwise:
    validation_error, or the code of a contract's rule (gateway.schemas.common.ContractField)."""
    reject_bad_text(data, None)
    try:
        return schema.load(data)
    except ValidationError as exc:
        name, message = _first_error(exc.messages)
        raise ValidationFailed(message, code=code_of(message), field=name)


def _first_error(messages):
    """(field path, message) answered: the gateway's own checks (JSON types, unknown fields) before a
    contract's rules, as when the service checked those after it."""
    errors = list(_errors(messages))
    return next((error for error in errors if not isinstance(error[1], Coded)), errors[0])


def _errors(messages, prefix=""):
    for name, value in messages.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            yield from _errors(value, f"{path}.")
        else:
            yield path, value[0] if isinstance(value, list) else str(value)


def idempotency_key(request):
    """The request's Idempotency-Key header: None when absent, 400 when malformed."""
    return idempotency.check_key(request.headers.get("Idempotency-Key"))
