"""The answer of GET /health."""
from marshmallow import Schema, fields


class Health(Schema):
    status = fields.String(metadata={"enum": ["ok", "degraded"]})
    rabbitmq = fields.String(metadata={"enum": ["ok", "unreachable"]})
    services = fields.Dict(keys=fields.String(), values=fields.String())
