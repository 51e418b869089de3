"""Organization API keys (SPEC §9): created, listed and revoked by Owners and Admins."""
from common.rpc import call
from gateway.http import json_response, route
from gateway.request_input import load, read_json
from gateway.schemas.api_keys import ApiKey, ApiKeyBody, ApiKeyPage, CreatedApiKey
from gateway.schemas.common import ListQuery


class ApiKeyRoutes:
    @route("POST", "/v1/organizations/<org_id>/api-keys",
           "Create an API key (Owner/Admin): its secret is in the answer this once", body=ApiKeyBody(),
           response=CreatedApiKey(), status=201, errors=(403,))
    def create_api_key(self, request, org_id):
        body = read_json(request, ApiKeyBody())
        created = call(self.members.create_api_key, org_id, body["name"], body["scopes"], body["expires_at"])
        return json_response(CreatedApiKey().dump(created), 201)

    @route("GET", "/v1/organizations/<org_id>/api-keys", "The organization's API keys, never their secrets "
           "(Owner/Admin)", response=ApiKeyPage(), errors=(403,), query_schema=ListQuery(),
           query={"cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_api_keys(self, request, org_id):
        query = load(ListQuery(), request.args.to_dict())
        return json_response(ApiKeyPage().dump(call(self.members.list_api_keys, org_id, query["cursor"],
                                                    query["limit"])))

    @route("DELETE", "/v1/organizations/<org_id>/api-keys/<key_id>", "Revoke an API key at once (Owner/Admin)",
           response=ApiKey(), errors=(403,))
    def revoke_api_key(self, request, org_id, key_id):
        return json_response(ApiKey().dump(call(self.members.revoke_api_key, org_id, key_id)))
