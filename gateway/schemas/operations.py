"""The answers of GET /health and GET /v1/operations/dead-letters."""
from marshmallow import EXCLUDE, Schema, fields, validate

from gateway.schemas.common import date_time


class Health(Schema):
    status = fields.String(metadata={"enum": ["ok", "degraded"]})
    rabbitmq = fields.String(metadata={"enum": ["ok", "unreachable"]})
    services = fields.Dict(keys=fields.String(), values=fields.String())


class DeadLetterQuery(Schema):
    class Meta:
        unknown = EXCLUDE
    limit = fields.Integer(load_default=50, strict=False, validate=validate.Range(min=1, max=200))


class DeadLetter(Schema):
    """A message the broker dead-lettered (common.queues.describe_dead_letter)."""
    queue = fields.String(allow_none=True, metadata={"description": "the queue it died in"})
    reason = fields.String(allow_none=True, metadata={
        "description": "delivery_limit (its consumer failed on it every time), expired (an RPC request whose "
                       "caller had given up), rejected or maxlen"})
    deaths = fields.Integer(metadata={"description": "how many times it was dead-lettered"})
    delivery_count = fields.Integer(allow_none=True, metadata={
        "description": "times it was delivered: BROKER_DELIVERY_LIMIT + 1 for reason delivery_limit, else null"})
    event_id = fields.String(allow_none=True, metadata={"description": "the message id: an event's event_id"})
    type = fields.String(allow_none=True, metadata={"description": "the event's type (else its routing key)"})
    routing_key = fields.String(allow_none=True)
    dead_lettered_at = date_time(allow_none=True)
    body = fields.Raw(allow_none=True, metadata={"description": "the message: JSON, or text if it is not JSON"})


class DeadLetterPage(Schema):
    total = fields.Integer(metadata={"description": "messages in the dead-letter queue"})
    dead_letters = fields.List(fields.Nested(DeadLetter), metadata={"description": "the first `limit` of them"})
