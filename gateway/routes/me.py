"""The signed-in user: who they are, their memberships, and which organization is active."""
from common.rpc import call
from gateway.http import json_response, route
from gateway.request_input import read_json
from gateway.schemas.organizations import ActiveOrganizationBody, Me


class MeRoutes:
    @route("GET", "/v1/me", "The signed-in user, their active organization and memberships", response=Me())
    def get_me(self, request):
        return json_response(Me().dump(call(self.orgs.get_me)))

    @route("PUT", "/v1/me/active-organization", "Switch the active organization",
           body=ActiveOrganizationBody(), response=Me(), errors=(404,))
    def set_active_organization(self, request):
        body = read_json(request, ActiveOrganizationBody())
        return json_response(Me().dump(call(self.orgs.set_active_organization, body["organization_id"])))
