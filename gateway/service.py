"""The HTTP gateway: authenticates each request, calls the services over RPC, shapes the answers.

It owns no data. The routes live in gateway/routes/, a mixin class per resource, which GatewayService
inherits (Nameko finds entrypoints on inherited methods). For every route not marked public, the HTTP
entrypoint verifies the bearer token before the handler runs and signs a user in the first time this
process sees them (gateway.http, gateway.authentication). Each handler then validates input with a
schema (gateway/schemas/), makes one or more RPC calls (bounded by common.rpc.call) and dumps the answer
with a schema. Permission checks happen again in the services; the gateway's are not the only line.
"""
from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy

from common.auth import Auth

# Each @route registers its route when its module is imported, and /openapi.json lists the paths in that
# order: the route modules are imported in the order of the API's sections, not alphabetically.
# isort: off
from gateway.routes.operations import OperationRoutes
from gateway.routes.me import MeRoutes
from gateway.routes.organizations import OrganizationRoutes
from gateway.routes.members import MemberRoutes
from gateway.routes.credits import CreditRoutes
from gateway.routes.agents import AgentRoutes
from gateway.routes.audit import AuditRoutes
# isort: on


class GatewayService(OperationRoutes, MeRoutes, OrganizationRoutes, MemberRoutes, CreditRoutes, AgentRoutes,
                     AuditRoutes):
    name = "gateway"

    auth = Auth()
    config = Config()
    orgs = RpcProxy("orgs")
    members = RpcProxy("members")
    credits = RpcProxy("credits")
    audit = RpcProxy("audit")
