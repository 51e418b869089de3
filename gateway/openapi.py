"""/openapi.json, generated from the gateway's route registry (gateway.http.route) and marshmallow schemas,
so that it cannot drift from what the routes answer.

Every route documents each status it can answer: its success (and the other successes it declares in
`responses`, such as a dry run's 200), 400 on every route (a path, header or transfer coding can be
refused anywhere), 414 on every route (a URL longer than 8 KB is refused before any route is found, and
query values within their maxLength can still add up to one), 401 and 429 unless public (failure limits; 429
also where a download is offered), 404 where an id is in the
path, 409 idempotency_key_reused where an Idempotency-Key is taken, 422 where a body or query is validated,
503 where a service is called, and the statuses it declares in `errors`; every error body is ErrorBody.
Answers' fields are required unless their metadata says "optional" (gateway/schemas/common.py).

A request field states its limits: its validators (Length, Range, OneOf, Regexp, Distinct) become
minLength/maxLength (minItems/maxItems for arrays), minimum/maximum, enum, pattern and uniqueItems; a
ContractField is documented from its contract field (common.contracts), whose type may add keywords of its
own (`openapi`: an amount's pattern, a time's format)."""
import re

from marshmallow import fields, validate

from common.contracts.fields import Distinct, ListOf
from gateway.http import ROUTES
from gateway.schemas.common import ContractField, ErrorBody

_TYPES = {fields.String: "string", fields.Integer: "integer", fields.Boolean: "boolean",
          fields.Float: "number", fields.Decimal: "string", fields.DateTime: "string", fields.Dict: "object",
          fields.List: "array"}
# Metadata keys that are OpenAPI keywords, copied as they are.
_KEYWORDS = ("type", "format", "enum", "items", "minimum", "maximum", "minLength", "maxLength", "pattern",
             "description")
IDEMPOTENCY_KEY = "Idempotency-Key"
REPLAY_HEADER = {"Idempotent-Replayed": {
    "description": "true when this is the stored answer of an earlier request with the same key and body "
                   "(nothing was done again); absent otherwise",
    "schema": {"type": "string", "enum": ["true"]}}}
# What a declared error status means, where the route's summary says who may do it.
DECLARED_ERRORS = {402: "payment_required or budget_exceeded: not enough credit or budget",
                   403: "forbidden: the caller's roles here do not allow this",
                   404: "an id in the body names nothing the caller can see",
                   409: "the resource's state does not allow this now (the code says which rule)"}
PATH_PARAMETER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def ref(schema):
    return {"$ref": f"#/components/schemas/{type(schema).__name__}"}


def _with_null(out):
    """OpenAPI 3.0's nullable; an enum must then list null itself, or validators refuse null anyway."""
    out["nullable"] = True
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


def _field_schema(field):
    if isinstance(field, fields.Nested):
        # A $ref takes no sibling keywords in OpenAPI 3.0: a nullable one is wrapped.
        return {"allOf": [ref(field.schema)], "nullable": True} if field.allow_none else ref(field.schema)
    if isinstance(field, ContractField):
        return _contract_field_schema(field)
    out = {}
    for cls, name in _TYPES.items():
        if isinstance(field, cls):
            out["type"] = name
    if isinstance(field, fields.List):
        out["items"] = _field_schema(field.inner)
    if isinstance(field, fields.Dict):
        out["additionalProperties"] = _field_schema(field.value_field) if field.value_field else {}
    out.update(getattr(field, "openapi", {}))
    out.update({k: v for k, v in field.metadata.items() if k in _KEYWORDS})
    if isinstance(field.metadata.get("enum"), list):
        out["enum"] = list(field.metadata["enum"])
    out.update(_limits(field, array=out.get("type") == "array"))
    if field.allow_none:
        _with_null(out)
    return out


def _limits(field, array):
    """The keywords of a field's validators."""
    out = {}
    lengths = ("minItems", "maxItems") if array else ("minLength", "maxLength")
    if isinstance(field, ListOf) and field.max_items is not None:
        out["maxItems"] = field.max_items
    for validator in field.validators:
        if isinstance(validator, validate.OneOf):
            out["enum"] = list(validator.choices)
        elif isinstance(validator, validate.Length):
            bounds = (validator.min, validator.max) if validator.equal is None else (validator.equal,) * 2
            out.update({k: v for k, v in zip(lengths, bounds, strict=True) if v is not None})
        elif isinstance(validator, validate.Range):
            out.update({k: v for k, v in (("minimum", validator.min), ("maximum", validator.max)) if v is not None})
        elif isinstance(validator, validate.Regexp):
            out["pattern"] = validator.regex.pattern
        elif isinstance(validator, Distinct):
            out["uniqueItems"] = True
    return out


def _contract_field_schema(field):
    """A request field whose rules are a contract field's: documented from the contract field, with this
    field's own nullability and description."""
    out = _field_schema(field.contract)
    out.pop("nullable", None)
    if "enum" in out:
        out["enum"] = [v for v in out["enum"] if v is not None]
    out.update({k: v for k, v in field.metadata.items() if k in _KEYWORDS})
    if field.allow_none:
        _with_null(out)
    return out


def schema_object(schema, answer):
    """A component: in an answer (`answer`), every field not marked optional is required; in a request,
    the fields marshmallow requires."""
    props = {name: _field_schema(f) for name, f in schema.fields.items()}
    if answer:
        required = [name for name, f in schema.fields.items() if not f.metadata.get("optional")]
    else:
        required = [name for name, f in schema.fields.items() if f.required]
    out = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def _components():
    found = {}

    def walk(schema, answer):
        name = type(schema).__name__
        if name in found:
            return
        found[name] = schema_object(schema, answer)
        for f in schema.fields.values():
            inner = f.inner if isinstance(f, fields.List) else f
            if isinstance(inner, fields.Nested):
                walk(inner.schema, answer)

    walk(ErrorBody(), True)
    for r in ROUTES:
        if r.body is not None:
            walk(r.body, False)
        answers = [r.response, *r.responses.values(), *r.downloads.values()]
        for schema in answers:
            if schema is not None and not isinstance(schema, list):
                walk(schema, True)
    return found


def openapi_path(path):
    return PATH_PARAMETER.sub(r"{\1}", path)


def _query_parameter(route, name, spec):
    """A query parameter typed by the route's query schema (an integer `limit` with its bounds, the choices
    of a filter); `spec` is its description, or a dict of keywords (e.g. an enum the schema leaves to the
    service)."""
    spec = {"description": spec} if isinstance(spec, str) else dict(spec)
    field = route.query_schema.fields.get(name) if route.query_schema is not None else None
    schema = _field_schema(field) if field is not None else {"type": "string"}
    schema.pop("nullable", None)
    schema.update({k: v for k, v in spec.items() if k != "description"})
    if "enum" in schema:
        schema["enum"] = [v for v in schema["enum"] if v is not None]
    description = spec.get("description") or schema.pop("description", None)
    schema.pop("description", None)
    out = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        out["description"] = description
    return out


def _parameters(route):
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
              for n in PATH_PARAMETER.findall(route.path)]
    params += [_query_parameter(route, n, spec) for n, spec in route.query.items()]
    params += [{"name": n, "in": "header", "required": False, "description": d, "schema": {"type": "string"}}
               for n, d in route.headers.items()]
    return params


def is_keyed(route):
    return IDEMPOTENCY_KEY in route.headers


def _json_content(schema):
    if schema is None:
        return None
    if getattr(schema, "many", False):
        return {"type": "array", "items": ref(schema)}
    return ref(schema)


def _success(route):
    """The declared answer, with the download formats a `format=` query turns it into."""
    answer = {"description": "success"}
    content = {}
    if route.response is not None:
        schema = _json_content(route.response)
        json_download = route.downloads.get("application/json")
        if json_download is not None:   # the same status, another shape: either one
            schema = {"oneOf": [schema, _json_content(json_download)]}
        content["application/json"] = {"schema": schema}
    columns = route.downloads.get("text/csv")
    if columns is not None:
        content["text/csv"] = {"schema": {"type": "string", "description": "columns: " + ", ".join(columns)}}
    if content:
        answer["content"] = content
    if route.downloads:
        answer["headers"] = {"Content-Disposition": {
            "description": "downloads (format=...): attachment; filename=...", "schema": {"type": "string"}}}
    if is_keyed(route) and route.status == 201:
        answer["headers"] = dict(REPLAY_HEADER)
    return answer


def _error_statuses(route):
    """status -> what answers it, for every error the route can give."""
    statuses = {400: _bad_request_causes(route), 414: "url_too_long: the URL (path and query) is longer than 8 KB"}
    if not route.public:
        statuses[401] = ("missing_token, token_expired or invalid_token: no valid bearer token; invalid_api_key, "
                         "api_key_revoked or api_key_expired: no valid API key")
        statuses[503] = ("service_unavailable: a service did not answer in time (or stopped mid-request); "
                         "identity_provider_unavailable: the JWKS has never been read")
        statuses[429] = ("too_many_failures: too many refused credentials from this address or for this key id "
                         "(Retry-After says when to try again)")
    if route.downloads:
        statuses[429] = statuses.get(429, "") + ("; " if 429 in statuses else "") + (
            "too_many_exports: too many downloads of this organization's lists (Retry-After)")
    if PATH_PARAMETER.search(route.path):
        statuses[404] = "an id in the path names nothing the caller can see"
    if is_keyed(route):
        statuses[409] = "idempotency_key_reused: the Idempotency-Key was used with another body"
    if route.body is not None or route.query_schema is not None or route.query:
        statuses[422] = "validation_error and the rules' own codes: a value breaks a rule"
    for status in route.errors:     # a tuple of statuses, or a dict of them with what answers each
        described = route.errors[status] if isinstance(route.errors, dict) else None
        statuses.setdefault(status, described or DECLARED_ERRORS.get(status, "error"))
    if not route.public:
        # Any route may meet an API key: outside the key's scopes (or on a route no key may call) it is 403.
        statuses.setdefault(403, "forbidden")
        statuses[403] += "; api_key_scope_missing or api_key_not_allowed: an API key outside its scopes"
    return statuses


def _bad_request_causes(route):
    causes = ["invalid_text or nul_character in the path", "unsupported_transfer_encoding"]
    if route.body is not None:
        causes += ["invalid_json", "json_too_deep", "invalid_text", "body_too_large", "invalid_body"]
    if "cursor" in route.query:
        causes.append("invalid_cursor")
    if is_keyed(route):
        causes.append("invalid_idempotency_key (idempotency_key_required where the key is required)")
    return ", ".join(causes)


def operation(route):
    op = {"summary": route.summary, "operationId": route.handler, "parameters": _parameters(route),
          "responses": {str(route.status): _success(route)}}
    if not route.public:
        op["security"] = [{"bearer": []}]
        if route.key_scope:
            op["description"] = (f"API keys (`Authorization: Bearer opk_…`) with scope {route.key_scope} may call "
                                 "this in their own organization.")
            op["x-api-key-scope"] = getattr(route.key_scope, "value", route.key_scope)
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(route.body)}}}
    for status, schema in route.responses.items():
        op["responses"][str(status)] = {"description": "success" if status < 400 else "error",
                                        "content": {"application/json": {"schema": _json_content(schema)}}}
    error = {"application/json": {"schema": ref(ErrorBody())}}
    for status, description in _error_statuses(route).items():
        op["responses"].setdefault(str(status), {"description": description, "content": error})
    op["responses"] = dict(sorted(op["responses"].items()))
    return op


BEARER_SCHEME = {
    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
    "description": "A JWT with claims sub (the user id), email, name (optional) and exp (a number), signed either "
                   "HS256 with the gateway's JWT_SECRET (development), or RS256/ES256 by the identity provider "
                   "whose JWKS is configured (JWT_JWKS), with the key its header's kid names, and then carrying "
                   "the configured iss and aud. Or an organization API key (`opk_<key id>_<secret>`, SPEC §9), "
                   "which may call only the routes naming its scope (x-api-key-scope), in its own organization."}


def document():
    paths = {}
    for r in ROUTES:
        paths.setdefault(openapi_path(r.path), {})[r.method.lower()] = operation(r)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Organization platform API", "version": "1"},
        "paths": paths,
        "components": {"schemas": _components(),
                       "securitySchemes": {"bearer": BEARER_SCHEME}},
    }
