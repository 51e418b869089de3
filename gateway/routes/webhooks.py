"""Webhooks (SPEC §12): an organization's endpoints, their secrets, their delivery logs, test messages."""
from common import idempotency
from common.rpc import call
from gateway.http import OPTIONAL_IDEMPOTENCY_KEY, json_response, route
from gateway.request_input import idempotency_key, load, read_json
from gateway.schemas.common import ListQuery
from gateway.schemas.webhooks import (
    DeletedEndpoint,
    Delivery,
    DeliveryPage,
    DeliveryQuery,
    Endpoint,
    EndpointBody,
    EndpointPage,
    EventTypes,
)

ENDPOINTS = "/v1/organizations/<org_id>/webhooks"
ENDPOINT = ENDPOINTS + "/<endpoint_id>"


class WebhookRoutes:
    @route("GET", "/v1/webhooks/event-types", "The event types an endpoint may subscribe to", response=EventTypes())
    def webhook_event_types(self, request):
        return json_response({"items": call(self.webhooks.event_types)})

    @route("POST", ENDPOINTS, "Add an endpoint; its signing secret is in this answer only (Owner/Admin)",
           body=EndpointBody(), response=Endpoint(), status=201, errors=(403, 409),
           headers=OPTIONAL_IDEMPOTENCY_KEY)
    def create_webhook_endpoint(self, request, org_id):
        body = read_json(request, EndpointBody())
        endpoint = call(self.webhooks.create_endpoint, org_id, body.get("url"), body.get("event_types"),
                        body.get("description"), body.get("enabled", True), idempotency_key(request))
        return json_response(Endpoint().dump(endpoint), 201, headers=idempotency.replay_headers(endpoint))

    @route("GET", ENDPOINTS, "The organization's endpoints (Owner/Admin)", response=EndpointPage(),
           errors=(403,), query_schema=ListQuery(), query={"cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_webhook_endpoints(self, request, org_id):
        query = load(ListQuery(), request.args.to_dict())
        page = call(self.webhooks.list_endpoints, org_id, query["cursor"], query["limit"])
        return json_response(EndpointPage().dump(page))

    @route("GET", ENDPOINT, "One endpoint (Owner/Admin)", response=Endpoint(), errors=(403,))
    def get_webhook_endpoint(self, request, org_id, endpoint_id):
        return json_response(Endpoint().dump(call(self.webhooks.get_endpoint, org_id, endpoint_id)))

    @route("PATCH", ENDPOINT, "Change an endpoint's URL, event types, description or whether it is enabled "
           "(Owner/Admin)", body=EndpointBody(), response=Endpoint(), errors=(403,))
    def update_webhook_endpoint(self, request, org_id, endpoint_id):
        body = read_json(request, EndpointBody())
        return json_response(Endpoint().dump(call(self.webhooks.update_endpoint, org_id, endpoint_id, body)))

    @route("DELETE", ENDPOINT, "Delete an endpoint; its pending deliveries end (Owner/Admin)",
           response=DeletedEndpoint(), errors=(403,))
    def delete_webhook_endpoint(self, request, org_id, endpoint_id):
        return json_response(DeletedEndpoint().dump(call(self.webhooks.delete_endpoint, org_id, endpoint_id)))

    @route("POST", ENDPOINT + "/rotate-secret", "A new signing secret, in this answer only; the previous one "
           "signs too for 24 hours (Owner/Admin)", response=Endpoint(), errors=(403,))
    def rotate_webhook_secret(self, request, org_id, endpoint_id):
        return json_response(Endpoint().dump(call(self.webhooks.rotate_secret, org_id, endpoint_id)))

    @route("GET", ENDPOINT + "/deliveries", "The endpoint's delivery log, newest first, each delivery with its "
           "attempts (Owner/Admin)", response=DeliveryPage(), errors=(403,), query_schema=DeliveryQuery(),
           query={"status": "pending | delivered | failed", "cursor": "from next_cursor",
                  "limit": "1-200, default 50"})
    def list_webhook_deliveries(self, request, org_id, endpoint_id):
        query = load(DeliveryQuery(), request.args.to_dict())
        page = call(self.webhooks.list_deliveries, org_id, endpoint_id, {"status": query["status"]},
                    query["cursor"], query["limit"])
        return json_response(DeliveryPage().dump(page))

    @route("POST", ENDPOINT + "/deliveries/<delivery_id>/retry", "Send a delivery again now (Owner/Admin)",
           response=Delivery(), errors=(403, 409))
    def retry_webhook_delivery(self, request, org_id, endpoint_id, delivery_id):
        return json_response(Delivery().dump(call(self.webhooks.retry_delivery, org_id, endpoint_id, delivery_id)))

    @route("POST", ENDPOINT + "/test", "Send the endpoint a test message (type webhook.test) (Owner/Admin)",
           response=Delivery(), status=201, errors=(403, 409))
    def send_webhook_test(self, request, org_id, endpoint_id):
        return json_response(Delivery().dump(call(self.webhooks.send_test, org_id, endpoint_id)), 201)
