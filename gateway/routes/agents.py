"""Agents: their configuration, contributors and assignees, and moving one to another organization."""
from werkzeug.wrappers import Response

from common import idempotency
from common.rpc import call
from gateway.http import OPTIONAL_IDEMPOTENCY_KEY, json_response, route
from gateway.request_input import idempotency_key, load, read_json
from gateway.schemas.agents import (
    Agent,
    AgentBody,
    AgentPage,
    AgentPerson,
    AgentPersonPage,
    AgentsQuery,
    TransferBody,
    TransferReport,
    UserIdBody,
)
from gateway.schemas.common import ListQuery


class AgentRoutes:
    @route("GET", "/v1/organizations/<org_id>/agents",
           "Agents the caller can see (Owner/Admin: all; Builder: contributed or assigned; others: assigned)",
           response=AgentPage(), query_schema=AgentsQuery(),
           query={"q": "search in name", "cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_agents(self, request, org_id):
        query = load(AgentsQuery(), request.args.to_dict())
        page = call(self.orgs.list_agents, org_id, query["q"], query["cursor"], query["limit"])
        return json_response(AgentPage().dump(page))

    @route("POST", "/v1/organizations/<org_id>/agents",
           "Create an agent (Owner/Admin/Builder; a Builder becomes its first contributor)",
           body=AgentBody(), response=Agent(), status=201, errors=(403,), headers=OPTIONAL_IDEMPOTENCY_KEY)
    def create_agent(self, request, org_id):
        body = read_json(request, AgentBody())
        agent = call(self.orgs.create_agent, org_id, body, idempotency_key(request))
        return json_response(Agent().dump(agent), 201, headers=idempotency.replay_headers(agent))

    @route("GET", "/v1/organizations/<org_id>/agents/<agent_id>", "One agent (if the caller can see it)",
           response=Agent())
    def get_agent(self, request, org_id, agent_id):
        return json_response(Agent().dump(call(self.orgs.get_agent, org_id, agent_id)))

    @route("PATCH", "/v1/organizations/<org_id>/agents/<agent_id>",
           "Edit an agent's configuration (Owner/Admin; Builders: agents they contribute to)",
           body=AgentBody(), response=Agent(), errors=(403,))
    def update_agent(self, request, org_id, agent_id):
        body = read_json(request, AgentBody())
        return json_response(Agent().dump(call(self.orgs.update_agent, org_id, agent_id, body)))

    @route("DELETE", "/v1/organizations/<org_id>/agents/<agent_id>", "Delete an agent (Owner/Admin)",
           status=204, errors=(403,))
    def delete_agent(self, request, org_id, agent_id):
        call(self.orgs.delete_agent, org_id, agent_id)
        return Response(status=204)

    # ---- contributors and assignees ----------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/agents/<agent_id>/contributors", "The agent's contributors",
           response=AgentPersonPage(), query_schema=ListQuery(),
           query={"cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_contributors(self, request, org_id, agent_id):
        query = load(ListQuery(), request.args.to_dict())
        page = call(self.orgs.list_contributors, org_id, agent_id, query["cursor"], query["limit"])
        return json_response(AgentPersonPage().dump(page))

    @route("POST", "/v1/organizations/<org_id>/agents/<agent_id>/contributors",
           "Add a contributor (Owner/Admin; the member must hold Builder); 200 if already one",
           body=UserIdBody(), response=AgentPerson(), status=201, responses={200: AgentPerson()}, errors=(403,))
    def add_contributor(self, request, org_id, agent_id):
        body = read_json(request, UserIdBody())
        answer = call(self.orgs.add_contributor, org_id, agent_id, body["user_id"])
        return json_response(AgentPerson().dump(answer["contributor"]), 201 if answer["created"] else 200)

    @route("DELETE", "/v1/organizations/<org_id>/agents/<agent_id>/contributors/<user_id>",
           "Remove a contributor (Owner/Admin; never the last one)", status=204, errors=(403, 409))
    def remove_contributor(self, request, org_id, agent_id, user_id):
        call(self.orgs.remove_contributor, org_id, agent_id, user_id)
        return Response(status=204)

    @route("PUT", "/v1/organizations/<org_id>/agents/<agent_id>/assignees/<user_id>",
           "Assign the agent to a member (Owner/Admin); 201 when new, 200 if already assigned",
           response=AgentPerson(), status=201, responses={200: AgentPerson()}, errors=(403,))
    def assign_agent(self, request, org_id, agent_id, user_id):
        answer = call(self.orgs.assign_agent, org_id, agent_id, user_id)
        return json_response(AgentPerson().dump(answer["assignee"]), 201 if answer["created"] else 200)

    @route("DELETE", "/v1/organizations/<org_id>/agents/<agent_id>/assignees/<user_id>",
           "Take the agent away from a member (Owner/Admin)", status=204, errors=(403,))
    def unassign_agent(self, request, org_id, agent_id, user_id):
        call(self.orgs.unassign_agent, org_id, agent_id, user_id)
        return Response(status=204)

    # ---- transfer ----------------------------------------------------------------------------------
    @route("POST", "/v1/organizations/<org_id>/agents/<agent_id>/transfer",
           "Move the agent to another organization (Owner/Admin here; Owner/Admin/Builder there); "
           "dry_run true reports per contributor whether they keep access",
           body=TransferBody(), response=TransferReport(), errors=(403,))
    def transfer_agent(self, request, org_id, agent_id):
        body = read_json(request, TransferBody())
        report = call(self.orgs.transfer_agent, org_id, agent_id, body["destination_organization_id"],
                      body["dry_run"])
        return json_response(TransferReport().dump(report))
