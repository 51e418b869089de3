"""Organizations: the caller's cards, creating, renaming and deleting a Collective organization."""
from werkzeug.wrappers import Response

from common import idempotency
from common.rpc import call
from gateway.http import OPTIONAL_IDEMPOTENCY_KEY, json_response, route
from gateway.request_input import idempotency_key, load, read_json
from gateway.schemas.common import ListQuery
from gateway.schemas.organizations import OrganizationCard, OrganizationNameBody, OrganizationPage


class OrganizationRoutes:
    @route("GET", "/v1/organizations", "Organization cards of the signed-in user",
           response=OrganizationPage(), query_schema=ListQuery(),
           query={"cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_organizations(self, request):
        query = load(ListQuery(), request.args.to_dict())
        page = call(self.orgs.list_organizations, query["cursor"], query["limit"])
        return json_response(OrganizationPage().dump(page))

    @route("POST", "/v1/organizations", "Create a Collective organization (Idempotency-Key optional)",
           body=OrganizationNameBody(), response=OrganizationCard(), status=201,
           headers=OPTIONAL_IDEMPOTENCY_KEY)
    def create_organization(self, request):
        body = read_json(request, OrganizationNameBody())
        card = call(self.orgs.create_organization, body["name"], idempotency_key(request))
        return json_response(OrganizationCard().dump(card), 201, headers=idempotency.replay_headers(card))

    @route("GET", "/v1/organizations/<org_id>", "One organization card", response=OrganizationCard())
    def get_organization(self, request, org_id):
        return json_response(OrganizationCard().dump(call(self.orgs.get_organization, org_id)))

    @route("PATCH", "/v1/organizations/<org_id>", "Rename (Owner/Admin)", body=OrganizationNameBody(),
           response=OrganizationCard(), errors=(403,))
    def rename_organization(self, request, org_id):
        body = read_json(request, OrganizationNameBody())
        card = call(self.orgs.rename_organization, org_id, body["name"])
        return json_response(OrganizationCard().dump(card))

    @route("DELETE", "/v1/organizations/<org_id>", "Delete a Collective organization (Owner/Admin)",
           status=204, errors=(403, 409))
    def delete_organization(self, request, org_id):
        call(self.orgs.delete_organization, org_id)
        return Response(status=204)
