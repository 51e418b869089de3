"""A webhook endpoint's fields (SPEC §12). Whether its URL may be sent to (https, a public address) is
decided by the webhooks service, which resolves it (services/webhooks/egress.py)."""
from marshmallow import fields
from marshmallow.validate import Length, OneOf

from common.contracts.base import Coded, Contract
from common.contracts.fields import ListOf, Name, StrictBool, Text
from common.event_types import ALL_TYPES

URL_MAX_LENGTH = 2048
DESCRIPTION_MAX_LENGTH = 500
MAX_EVENT_TYPES = 100
INVALID_URL = Coded(f"url must be an absolute https URL of at most {URL_MAX_LENGTH} characters.", "invalid_url")
EVENT_TYPES = Coded("event_types must list event types (GET /v1/webhooks/event-types) or be [\"*\"].",
                    "invalid_event_types")
UNKNOWN_EVENT_TYPE = Coded("event_types names an event type that does not exist (GET /v1/webhooks/event-types "
                           "lists them).", "unknown_event_type")


class WebhookEndpointInput(Contract):
    """The fields a create sets (an edit loads it with partial=True: absent ones stay as they are)."""
    error_messages = {"type": Coded("The body must be an object.", "invalid_body"),
                      "unknown": Coded("Unknown field: {field}.", "unknown_field")}

    url = Text(URL_MAX_LENGTH, required=True, blank=INVALID_URL, invalid=INVALID_URL, too_long=INVALID_URL)
    event_types = ListOf(fields.String(validate=[OneOf(("*", *ALL_TYPES), error=UNKNOWN_EVENT_TYPE)],
                                       error_messages={"invalid": EVENT_TYPES, "null": EVENT_TYPES}),
                         required=True, max_items=MAX_EVENT_TYPES, too_many=EVENT_TYPES,
                         validate=[Length(min=1, error=EVENT_TYPES)],
                         error_messages={"invalid": EVENT_TYPES, "null": EVENT_TYPES, "required": EVENT_TYPES})
    description = Name("The description", DESCRIPTION_MAX_LENGTH, none_as_empty=True, load_default="",
                       invalid=Coded("description must be a string.", "invalid_type"),
                       too_long=Coded(f"description must be at most {DESCRIPTION_MAX_LENGTH} characters.",
                                      "description_too_long"))
    enabled = StrictBool(load_default=True,
                             error_messages={"invalid": Coded("enabled must be true or false.", "invalid_type"),
                                             "null": Coded("enabled must be true or false.", "invalid_type")})


DELIVERY_STATUSES = ("pending", "delivered", "failed")


class DeliveryFilters(Contract):
    status = fields.String(allow_none=True, validate=[OneOf(DELIVERY_STATUSES, error=Coded(
        f"status must be one of {', '.join(DELIVERY_STATUSES)}.", "invalid_status"))])
