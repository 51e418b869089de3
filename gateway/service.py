"""The HTTP gateway: authenticates each request, calls the services over RPC, shapes the answers.

It owns no data (it keeps the API keys it verified for a minute: gateway.known_keys). The routes live in
gateway/routes/, a mixin class per resource, which GatewayService
inherits (Nameko finds entrypoints on inherited methods). For every route not marked public, the HTTP
entrypoint verifies the bearer token before the handler runs and signs a user in the first time this
process sees them (gateway.http, gateway.authentication). Each handler then validates input with a
schema (gateway/schemas/), makes one or more RPC calls (bounded by common.rpc.call) and dumps the answer
with a schema. Permission checks happen again in the services; the gateway's are not the only line.
"""
from nameko.dependency_providers import Config

from common.auth import Auth
from common.events import change_event_or_none, key_revocations_queue
from common.framework.replies import consume_own_queue
from common.heap import FrozenStartupHeap
from common.rpc import service_proxy
from gateway.known_keys import known_keys

# Each @route registers its route when its module is imported, and /openapi.json lists the paths in that
# order: the route modules are imported in the order of the API's sections, not alphabetically.
# Modules, not their classes: `python -m devtools.serve gateway.service` runs every class in this module
# that has entrypoints, and a mixin imported here by name would be one (with no `name`, so the run would fail).
# isort: off
from gateway.routes import (operations, me, organizations, members, api_keys, credits, billing, agents, audit,
                            webhooks, console)
# isort: on


class GatewayService(operations.OperationRoutes, me.MeRoutes, organizations.OrganizationRoutes,
                     members.MemberRoutes, api_keys.ApiKeyRoutes, credits.CreditRoutes, billing.BillingRoutes,
                     agents.AgentRoutes, audit.AuditRoutes, webhooks.WebhookRoutes, console.ConsoleRoutes):
    name = "gateway"

    auth = Auth()
    heap = FrozenStartupHeap()      # common.heap: fewer long garbage-collector pauses under load
    config = Config()
    orgs = service_proxy("orgs")
    members = service_proxy("members")
    credits = service_proxy("credits")
    billing = service_proxy("billing")
    audit = service_proxy("audit")
    webhooks = service_proxy("webhooks")

    # A revoked API key stops working at once in every gateway process, not when its minute in
    # gateway.known_keys runs out.
    # On a queue of its own, declared anew after a reconnection (common.framework.replies): the keys kept
    # are forgotten then, as a revocation sent meanwhile may have been lost.
    @consume_own_queue(queue_factory=key_revocations_queue, on_renewed=known_keys.forget_all)
    def on_api_key_revoked(self, message):
        event = change_event_or_none(message)
        if event is not None:
            known_keys.forget(event["target"]["id"])
