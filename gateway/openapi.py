"""/openapi.json, generated from the gateway's route registry and marshmallow schemas."""
import re

from marshmallow import fields

from gateway.http import ROUTES
from gateway.schemas.common import ErrorBody

_TYPES = {fields.String: "string", fields.Integer: "integer", fields.Boolean: "boolean",
          fields.Float: "number", fields.Decimal: "string", fields.DateTime: "string"}


def _field_schema(field):
    if isinstance(field, fields.Nested):
        return {"$ref": f"#/components/schemas/{type(field.schema).__name__}"}
    if isinstance(field, fields.List):
        return {"type": "array", "items": _field_schema(field.inner)}
    if isinstance(field, fields.Dict):
        return {"type": "object", "additionalProperties": _field_schema(field.value_field or fields.Raw())}
    out = {}
    for cls, name in _TYPES.items():
        if isinstance(field, cls):
            out["type"] = name
    out.update({k: v for k, v in field.metadata.items() if k in ("type", "enum", "description")})
    if field.allow_none:
        out["nullable"] = True
    return out


def schema_object(schema):
    props = {name: _field_schema(f) for name, f in schema.fields.items()}
    required = [name for name, f in schema.fields.items() if f.required]
    out = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def _components():
    found = {}

    def walk(schema):
        name = type(schema).__name__
        if name in found:
            return
        found[name] = schema_object(schema)
        for f in schema.fields.values():
            inner = f.inner if isinstance(f, fields.List) else f
            if isinstance(inner, fields.Nested):
                walk(inner.schema)

    walk(ErrorBody())
    for r in ROUTES:
        for s in (r.body, r.response):
            if s is not None:
                walk(s)
    return found


def openapi_path(path):
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", path)


def document():
    paths = {}
    for r in ROUTES:
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in re.findall(r"<(?:[a-z]+:)?([a-z_]+)>", r.path)]
        params += [{"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
                   for n, d in r.query.items()]
        params += [{"name": n, "in": "header", "required": False, "description": d, "schema": {"type": "string"}}
                   for n, d in r.headers.items()]
        op = {"summary": r.summary, "operationId": r.handler, "parameters": params, "responses": {}}
        if not r.public:
            op["security"] = [{"bearer": []}]
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{type(r.body).__name__}"}}}}
        ok = {"description": "success"}
        if r.response is not None:
            schema_ref = {"$ref": f"#/components/schemas/{type(r.response).__name__}"}
            ok["content"] = {"application/json": {"schema": schema_ref}}
        op["responses"][str(r.status)] = ok
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        statuses = ((400, 422) if r.body is not None or r.query else ()) + (() if r.public else (401, 404)) + r.errors
        for status in sorted(set(statuses)):
            op["responses"][str(status)] = dict(error, description="error")
        paths.setdefault(openapi_path(r.path), {})[r.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "Organization platform API", "version": "1"},
        "paths": paths,
        "components": {"schemas": _components(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }
