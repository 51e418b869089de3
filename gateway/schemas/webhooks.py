"""Webhook endpoints and their deliveries (SPEC §12). The webhooks service applies the rules of the bodies
(common.contracts.webhooks) and decides where a URL may point; the gateway checks their JSON types and
passes them on, and /openapi.json states the rules from the same contracts."""
from marshmallow import Schema, fields, validate

from common.contracts.webhooks import DELIVERY_STATUSES, WebhookEndpointInput
from gateway.schemas.common import OPTIONAL, ContractField, ListQuery, Strict, date_time, page_of


# ---- requests -------------------------------------------------------------------------------------
class EndpointBody(Strict):
    # One body for create and edit, where `url` and `event_types` are required only on create: the service says.
    url = ContractField(WebhookEndpointInput.field("url"), shape=fields.String(),
                        metadata={"description": "https; must not point inside a private network (required on "
                                                 "create)"})
    event_types = ContractField(WebhookEndpointInput.field("event_types"), shape=fields.List(fields.String()),
                                metadata={"description": "event types (GET /v1/webhooks/event-types) or [\"*\"] "
                                                         "(required on create)"})
    description = ContractField(WebhookEndpointInput.field("description"), shape=fields.String(allow_none=True),
                                allow_none=True, metadata={"description": "what it is for; up to 500 characters"})
    enabled = ContractField(WebhookEndpointInput.field("enabled"), shape=fields.Boolean(),
                            metadata={"description": "default true; enabling a disabled endpoint clears its "
                                                     "failures"})


class DeliveryQuery(ListQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(DELIVERY_STATUSES))


# ---- responses ------------------------------------------------------------------------------------
class Endpoint(Schema):
    id = fields.String()
    organization_id = fields.String()
    url = fields.String()
    event_types = fields.List(fields.String())
    description = fields.String()
    enabled = fields.Boolean()
    disabled_reason = fields.String(allow_none=True, metadata={"description": "why the system disabled it"})
    created_by = fields.String()
    created_at = date_time()
    updated_at = date_time()
    previous_secret_expires_at = date_time(
        allow_none=True, description="during a rotation's overlap: until when the previous secret also signs")
    failing_since = date_time(allow_none=True, description="the first failed attempt since the last success")
    secret = fields.String(metadata={"description": "whsec_…: shown on creation and rotation only", **OPTIONAL})


EndpointPage = page_of(Endpoint, "WebhookEndpointPage")


class DeletedEndpoint(Schema):
    id = fields.String()
    deleted = fields.Boolean()


class Attempt(Schema):
    attempted_at = date_time()
    status_code = fields.Integer(allow_none=True, metadata={"description": "null: no answer"})
    duration_ms = fields.Integer()
    error = fields.String(allow_none=True)


class Delivery(Schema):
    id = fields.String()
    endpoint_id = fields.String()
    message_id = fields.String(metadata={"description": "the webhook-id header: the event's id"})
    event_type = fields.String()
    status = fields.String(metadata={"enum": list(DELIVERY_STATUSES)})
    attempt_count = fields.Integer()
    created_at = date_time()
    next_attempt_at = date_time(allow_none=True)
    ended_at = date_time(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    attempts = fields.List(fields.Nested(Attempt), metadata={"description": "the last 20, newest first"})


DeliveryPage = page_of(Delivery, "WebhookDeliveryPage")


class EventTypes(Schema):
    items = fields.List(fields.String())
