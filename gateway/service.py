"""The HTTP gateway: authenticates each request, calls the services over RPC, shapes the answers.

It owns no data. Each handler: authenticate, validate input with a schema, one or more RPC calls
(bounded by common.rpc.call), dump the answer with a schema. Permission checks happen again in the
services; the gateway's are not the only line.
"""
import csv
import io
import json
from collections import OrderedDict

import eventlet
from kombu import Connection
from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy
from werkzeug.wrappers import Response

from common import idempotency
from common.auth import Auth
from common.errors import AppError, NotFound
from common.rpc import call
from gateway import schemas, tokens
from gateway.http import http, json_response, load, read_json, route
from gateway.openapi import document

SERVICES = ("orgs", "members", "credits", "audit")
EXPORT_MAX_ROWS = 10000

# Users this process has already signed in (their Individual organization exists). Only an
# optimisation: sign-in is idempotent, and another replica simply does it once more.
_signed_in = OrderedDict()
_SIGNED_IN_MAX = 10000


class GatewayService:
    name = "gateway"

    auth = Auth()
    config = Config()
    orgs = RpcProxy("orgs")
    members = RpcProxy("members")
    credits = RpcProxy("credits")
    audit = RpcProxy("audit")

    def _authenticate(self, request):
        identity = tokens.identity_from_header(request.headers.get("Authorization"))
        self.auth.sign_in(identity)
        if identity not in _signed_in:
            call(self.orgs.sign_in)
            _signed_in[identity] = True
            if len(_signed_in) > _SIGNED_IN_MAX:
                _signed_in.popitem(last=False)
        return identity

    # ---- operations --------------------------------------------------------------------------------
    @route("GET", "/health", "Whether RabbitMQ and every service answer", public=True,
           response=schemas.Health(), errors=(503,))
    def health(self, request):
        # Asked in parallel: a hung service costs its time-out once, not once per service after it.
        pile = eventlet.GreenPile()
        pile.spawn(_broker_status, self.config["AMQP_URI"])
        for name in SERVICES:
            pile.spawn(_ping, getattr(self, name))
        broker, *services = list(pile)
        report = {"rabbitmq": broker, "services": dict(zip(SERVICES, services, strict=True))}
        healthy = report["rabbitmq"] == "ok" and all(v == "ok" for v in report["services"].values())
        report["status"] = "ok" if healthy else "degraded"
        return json_response(schemas.Health().dump(report), 200 if healthy else 503)

    @route("GET", "/openapi.json", "This document", public=True)
    def openapi(self, request):
        return json_response(document())

    # ---- me ----------------------------------------------------------------------------------------
    @route("GET", "/v1/me", "The signed-in user, their active organization and memberships",
           response=schemas.Me())
    def get_me(self, request):
        self._authenticate(request)
        return json_response(schemas.Me().dump(call(self.orgs.get_me)))

    @route("PUT", "/v1/me/active-organization", "Switch the active organization",
           body=schemas.ActiveOrganizationBody(), response=schemas.Me())
    def set_active_organization(self, request):
        self._authenticate(request)
        body = read_json(request, schemas.ActiveOrganizationBody())
        return json_response(schemas.Me().dump(call(self.orgs.set_active_organization, body["organization_id"])))

    # ---- organizations -----------------------------------------------------------------------------
    @route("GET", "/v1/organizations", "Organization cards of the signed-in user",
           response=schemas.OrganizationPage(), query={"cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_organizations(self, request):
        self._authenticate(request)
        query = load(schemas.ListQuery(), request.args.to_dict())
        page = call(self.orgs.list_organizations, query["cursor"], query["limit"])
        return json_response(schemas.OrganizationPage().dump(page))

    @route("POST", "/v1/organizations", "Create a Collective organization (Idempotency-Key optional)",
           body=schemas.OrganizationNameBody(), response=schemas.OrganizationCard(), status=201,
           headers={"Idempotency-Key": "optional; a retry with the same key returns the first answer"})
    def create_organization(self, request):
        self._authenticate(request)
        body = read_json(request, schemas.OrganizationNameBody())
        card = call(self.orgs.create_organization, body["name"], _idempotency_key(request))
        return json_response(schemas.OrganizationCard().dump(card), 201)

    @route("GET", "/v1/organizations/<org_id>", "One organization card", response=schemas.OrganizationCard())
    def get_organization(self, request, org_id):
        self._authenticate(request)
        return json_response(schemas.OrganizationCard().dump(call(self.orgs.get_organization, org_id)))

    @route("PATCH", "/v1/organizations/<org_id>", "Rename (Owner/Admin)", body=schemas.OrganizationNameBody(),
           response=schemas.OrganizationCard(), errors=(403,))
    def rename_organization(self, request, org_id):
        self._authenticate(request)
        body = read_json(request, schemas.OrganizationNameBody())
        card = call(self.orgs.rename_organization, org_id, body["name"])
        return json_response(schemas.OrganizationCard().dump(card))

    @route("DELETE", "/v1/organizations/<org_id>", "Delete a Collective organization (Owner/Admin)",
           status=204, errors=(403, 409))
    def delete_organization(self, request, org_id):
        self._authenticate(request)
        call(self.orgs.delete_organization, org_id)
        return Response(status=204)

    # ---- members -----------------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/members", "Members (any member); CSV with format=csv",
           response=schemas.MemberPage(), query={
               "q": "search in name or email", "role": "owner | admin | builder | member | billing",
               "sort": "name | joined_at | role; prefix - for descending", "cursor": "from next_cursor",
               "limit": "1-200, default 50", "format": "csv: download every matching member"})
    def list_members(self, request, org_id):
        self._authenticate(request)
        query = load(schemas.MembersQuery(), request.args.to_dict())
        filters = (org_id, query["q"], query["role"], query["sort"])
        if query["format"] != "csv":
            answer = call(self.members.list_members, *filters, query["cursor"], query["limit"])
            page = self._members_page(org_id, answer)
            return json_response(schemas.MemberPage().dump(page))
        members = schemas.Member(many=True).dump(_every_page(
            lambda cursor: self._members_page(org_id, call(self.members.list_members, *filters, cursor, 200))))
        rows = ([m["user_id"], m["name"], m["email"], " ".join(m["roles"]), m["budget_group_id"] or "", m["joined_at"]]
                for m in members)
        return _csv_download(f"members-{org_id}.csv", MEMBER_CSV_COLUMNS, rows)

    def _members_page(self, org_id, page):
        """Members come from the members service, their budget group from credits (which owns groups)."""
        groups = call(self.credits.budget_groups_of_members, org_id, [m["user_id"] for m in page["items"]]) \
            if page["items"] else {}
        for member in page["items"]:
            member["budget_group_id"] = groups.get(member["user_id"])
        return page

    @route("PATCH", "/v1/organizations/<org_id>/members/<user_id>", "Edit a member's roles (Owner/Admin)",
           body=schemas.RolesBody(), response=schemas.Member(), errors=(403, 409))
    def edit_member_roles(self, request, org_id, user_id):
        self._authenticate(request)
        body = read_json(request, schemas.RolesBody())
        return json_response(schemas.Member().dump(call(self.members.edit_roles, org_id, user_id, body["roles"])))

    @route("DELETE", "/v1/organizations/<org_id>/members/<user_id>",
           "Remove a member (Owner/Admin), or leave when user_id is your own", status=204, errors=(403, 409))
    def remove_member(self, request, org_id, user_id):
        self._authenticate(request)
        call(self.members.remove_member, org_id, user_id)
        return Response(status=204)

    # ---- invitations -------------------------------------------------------------------------------
    @route("POST", "/v1/organizations/<org_id>/invitations", "Invite by email (Owner/Admin)",
           body=schemas.InvitationBody(), response=schemas.Invitation(), status=201, errors=(403, 409),
           headers={"Idempotency-Key": "optional; a retry with the same key returns the first answer"})
    def invite(self, request, org_id):
        self._authenticate(request)
        body = read_json(request, schemas.InvitationBody())
        invitation = call(self.members.invite, org_id, body["email"], body["roles"], body["agent_ids"],
                          _idempotency_key(request))
        return json_response(schemas.Invitation().dump(invitation), 201)

    @route("GET", "/v1/organizations/<org_id>/invitations", "The organization's invitations (Owner/Admin)",
           response=schemas.InvitationPage(), errors=(403,), query={
               "status": "pending | accepted | rejected | revoked | expired", "q": "search in email",
               "cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_invitations(self, request, org_id):
        self._authenticate(request)
        query = load(schemas.InvitationsQuery(), request.args.to_dict())
        page = call(self.members.list_invitations, org_id, query["status"], query["q"], query["cursor"],
                    query["limit"])
        return json_response(schemas.InvitationPage().dump(page))

    @route("POST", "/v1/organizations/<org_id>/invitations/<invitation_id>/resend",
           "Send again, renewing the expiry (Owner/Admin; 10 minutes after the last send)",
           response=schemas.Invitation(), errors=(403, 409))
    def resend_invitation(self, request, org_id, invitation_id):
        self._authenticate(request)
        return json_response(schemas.Invitation().dump(
            call(self.members.resend_invitation, org_id, invitation_id)))

    @route("POST", "/v1/organizations/<org_id>/invitations/<invitation_id>/revoke",
           "End a pending invitation (Owner/Admin)", response=schemas.Invitation(), errors=(403, 409))
    def revoke_invitation(self, request, org_id, invitation_id):
        self._authenticate(request)
        return json_response(schemas.Invitation().dump(
            call(self.members.revoke_invitation, org_id, invitation_id)))

    @route("GET", "/v1/invitations", "Invitations addressed to the signed-in user's email",
           response=schemas.InvitationPage(), query={
               "status": "pending | accepted | rejected | revoked | expired", "cursor": "from next_cursor",
               "limit": "1-200, default 50"})
    def my_invitations(self, request):
        self._authenticate(request)
        query = load(schemas.StatusQuery(), request.args.to_dict())
        page = call(self.members.my_invitations, query["status"], query["cursor"], query["limit"])
        return json_response(schemas.InvitationPage().dump(page))

    @route("POST", "/v1/invitations/<invitation_id>/accept", "Join with the invitation's roles (invitee only)",
           response=schemas.Invitation(), errors=(403, 409))
    def accept_invitation(self, request, invitation_id):
        self._authenticate(request)
        return json_response(schemas.Invitation().dump(call(self.members.accept_invitation, invitation_id)))

    @route("POST", "/v1/invitations/<invitation_id>/reject", "Turn the invitation down (invitee only)",
           response=schemas.Invitation(), errors=(403, 409))
    def reject_invitation(self, request, invitation_id):
        self._authenticate(request)
        return json_response(schemas.Invitation().dump(call(self.members.reject_invitation, invitation_id)))

    # ---- billing transfers -------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/billing-transfers",
           "Billing transfers (Owners and the Billing holder: all; others: their own)",
           response=schemas.BillingTransferPage(), query={
               "status": "pending | accepted | declined | cancelled", "cursor": "from next_cursor",
               "limit": "1-200, default 50"})
    def list_billing_transfers(self, request, org_id):
        self._authenticate(request)
        query = load(schemas.StatusQuery(), request.args.to_dict())
        page = call(self.members.list_billing_transfers, org_id, query["status"], query["cursor"], query["limit"])
        return json_response(schemas.BillingTransferPage().dump(page))

    @route("POST", "/v1/organizations/<org_id>/billing-transfers",
           "Offer Billing to another member (an Owner holding Billing)", body=schemas.BillingTransferBody(),
           response=schemas.BillingTransfer(), status=201, errors=(403, 409))
    def start_billing_transfer(self, request, org_id):
        self._authenticate(request)
        body = read_json(request, schemas.BillingTransferBody())
        transfer = call(self.members.start_billing_transfer, org_id, body["to_user_id"])
        return json_response(schemas.BillingTransfer().dump(transfer), 201)

    @route("POST", "/v1/organizations/<org_id>/billing-transfers/<transfer_id>/accept",
           "Take Billing over (the recipient)", response=schemas.BillingTransfer(), errors=(403, 409))
    def accept_billing_transfer(self, request, org_id, transfer_id):
        return self._answer_transfer(request, self.members.accept_billing_transfer, org_id, transfer_id)

    @route("POST", "/v1/organizations/<org_id>/billing-transfers/<transfer_id>/decline",
           "Turn the transfer down (the recipient)", response=schemas.BillingTransfer(), errors=(403, 409))
    def decline_billing_transfer(self, request, org_id, transfer_id):
        return self._answer_transfer(request, self.members.decline_billing_transfer, org_id, transfer_id)

    @route("POST", "/v1/organizations/<org_id>/billing-transfers/<transfer_id>/cancel",
           "Withdraw the transfer (its initiator)", response=schemas.BillingTransfer(), errors=(403, 409))
    def cancel_billing_transfer(self, request, org_id, transfer_id):
        return self._answer_transfer(request, self.members.cancel_billing_transfer, org_id, transfer_id)

    def _answer_transfer(self, request, method, org_id, transfer_id):
        self._authenticate(request)
        return json_response(schemas.BillingTransfer().dump(call(method, org_id, transfer_id)))

    # ---- credits ----------------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/credits", "Balance, this month's spend and the grants holding credit "
           "(Owner/Billing)", response=schemas.Credits(), errors=(403,))
    def get_credits(self, request, org_id):
        self._authenticate(request)
        return json_response(schemas.Credits().dump(call(self.credits.get_credits, org_id)))

    @route("GET", "/v1/organizations/<org_id>/credits/ledger",
           "Every grant, spend and expiry with who, when and the balance after, newest first (Owner/Billing)",
           response=schemas.LedgerPage(), errors=(403,), query={
               "kind": "grant | spend | expiry", "cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_ledger(self, request, org_id):
        self._authenticate(request)
        query = load(schemas.LedgerQuery(), request.args.to_dict())
        page = call(self.credits.list_ledger, org_id, query["kind"], query["cursor"], query["limit"])
        return json_response(schemas.LedgerPage().dump(page))

    @route("POST", "/v1/organizations/<org_id>/credits/grants",
           "Add credit: free (may expire) or paid (Owner/Billing)", body=schemas.GrantBody(),
           response=schemas.Grant(), status=201, errors=(403,),
           headers={"Idempotency-Key": "optional; a retry with the same key returns the first answer"})
    def add_grant(self, request, org_id):
        self._authenticate(request)
        body = read_json(request, schemas.GrantBody())
        grant = call(self.credits.add_grant, org_id, body["amount"], body["type"], body["expires_at"],
                     _idempotency_key(request))
        return json_response(schemas.Grant().dump(grant), 201)

    @route("POST", "/v1/organizations/<org_id>/usage",
           "Spend credit on the use of an agent (a member who may use it); dry_run true only evaluates",
           body=schemas.SpendBody(), response=schemas.Spend(), status=201, errors=(402, 403),
           headers={"Idempotency-Key": "required unless dry_run: a retry with the same key returns the first "
                                       "answer (header Idempotent-Replayed: true) and charges nothing"})
    def spend(self, request, org_id):
        self._authenticate(request)
        body = read_json(request, schemas.SpendBody())
        if body["dry_run"]:
            evaluation = call(self.credits.evaluate_spend, org_id, body["agent_id"], body["amount"])
            return json_response(schemas.SpendEvaluation().dump(evaluation))
        answer = call(self.credits.spend, org_id, body["agent_id"], body["amount"], _idempotency_key(request))
        headers = {"Idempotent-Replayed": "true"} if answer["replayed"] else None
        return json_response(schemas.Spend().dump(answer["spend"]), 201, headers=headers)

    @route("GET", "/v1/me/usage", "My spend this month, what I can still spend and what binds, per organization",
           response=schemas.OrganizationUsagePage())
    def my_usage(self, request):
        self._authenticate(request)
        names = {card["id"]: card["name"]
                 for card in _every_page(lambda cursor: call(self.orgs.list_organizations, cursor, 200))}
        items = [dict(usage, organization_name=names[usage["organization_id"]])
                 for usage in call(self.credits.my_usage, list(names))]
        return json_response(schemas.OrganizationUsagePage().dump({"items": items, "next_cursor": None}))

    # ---- budget groups -----------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/budget-groups", "Budget groups with member counts (Owner/Admin)",
           response=schemas.BudgetGroupPage(), errors=(403,),
           query={"cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_budget_groups(self, request, org_id):
        self._authenticate(request)
        query = load(schemas.ListQuery(), request.args.to_dict())
        page = call(self.credits.list_budget_groups, org_id, query["cursor"], query["limit"])
        return json_response(schemas.BudgetGroupPage().dump(page))

    @route("POST", "/v1/organizations/<org_id>/budget-groups", "Create a budget group (Owner/Admin)",
           body=schemas.BudgetGroupBody(), response=schemas.BudgetGroup(), status=201, errors=(403,))
    def create_budget_group(self, request, org_id):
        self._authenticate(request)
        body = read_json(request, schemas.BudgetGroupBody())
        return json_response(schemas.BudgetGroup().dump(call(self.credits.create_budget_group, org_id, body)), 201)

    @route("GET", "/v1/organizations/<org_id>/budget-groups/<group_id>",
           "A budget group with each member's usage this month against the limit (Owner/Admin)",
           response=schemas.BudgetGroupDetail(), errors=(403,),
           query={"cursor": "from members_next_cursor", "limit": "members per page, 1-200, default 50"})
    def get_budget_group(self, request, org_id, group_id):
        self._authenticate(request)
        query = load(schemas.ListQuery(), request.args.to_dict())
        group = call(self.credits.get_budget_group, org_id, group_id, query["cursor"], query["limit"])
        return json_response(schemas.BudgetGroupDetail().dump(group))

    @route("PATCH", "/v1/organizations/<org_id>/budget-groups/<group_id>",
           "Rename or change limits (Owner/Admin); applies from the next spend on",
           body=schemas.BudgetGroupBody(), response=schemas.BudgetGroup(), errors=(403,))
    def update_budget_group(self, request, org_id, group_id):
        self._authenticate(request)
        body = read_json(request, schemas.BudgetGroupBody())
        return json_response(schemas.BudgetGroup().dump(
            call(self.credits.update_budget_group, org_id, group_id, body)))

    @route("DELETE", "/v1/organizations/<org_id>/budget-groups/<group_id>",
           "Delete a budget group; its members are no longer capped by it (Owner/Admin)", status=204, errors=(403,))
    def delete_budget_group(self, request, org_id, group_id):
        self._authenticate(request)
        call(self.credits.delete_budget_group, org_id, group_id)
        return Response(status=204)

    @route("PUT", "/v1/organizations/<org_id>/budget-groups/<group_id>/members/<user_id>",
           "Put a member in the group, out of any other (Owner/Admin); 201 when placed, 200 if already there",
           response=schemas.BudgetGroupMembership(), status=201, errors=(403, 409))
    def add_budget_group_member(self, request, org_id, group_id, user_id):
        self._authenticate(request)
        answer = call(self.credits.add_budget_group_member, org_id, group_id, user_id)
        return json_response(schemas.BudgetGroupMembership().dump(answer["membership"]),
                             201 if answer["created"] else 200)

    @route("DELETE", "/v1/organizations/<org_id>/budget-groups/<group_id>/members/<user_id>",
           "Take a member out of the group (Owner/Admin)", status=204, errors=(403,))
    def remove_budget_group_member(self, request, org_id, group_id, user_id):
        self._authenticate(request)
        call(self.credits.remove_budget_group_member, org_id, group_id, user_id)
        return Response(status=204)

    # ---- agents ------------------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/agents",
           "Agents the caller can see (Owner/Admin: all; Builder: contributed or assigned; others: assigned)",
           response=schemas.AgentPage(), query={"q": "search in name", "cursor": "from next_cursor",
                                                "limit": "1-200, default 50"})
    def list_agents(self, request, org_id):
        self._authenticate(request)
        query = load(schemas.AgentsQuery(), request.args.to_dict())
        page = call(self.orgs.list_agents, org_id, query["q"], query["cursor"], query["limit"])
        return json_response(schemas.AgentPage().dump(page))

    @route("POST", "/v1/organizations/<org_id>/agents",
           "Create an agent (Owner/Admin/Builder; a Builder becomes its first contributor)",
           body=schemas.AgentBody(), response=schemas.Agent(), status=201, errors=(403,),
           headers={"Idempotency-Key": "optional; a retry with the same key returns the first answer"})
    def create_agent(self, request, org_id):
        self._authenticate(request)
        body = read_json(request, schemas.AgentBody())
        agent = call(self.orgs.create_agent, org_id, body, _idempotency_key(request))
        return json_response(schemas.Agent().dump(agent), 201)

    @route("GET", "/v1/organizations/<org_id>/agents/<agent_id>", "One agent (if the caller can see it)",
           response=schemas.Agent())
    def get_agent(self, request, org_id, agent_id):
        self._authenticate(request)
        return json_response(schemas.Agent().dump(call(self.orgs.get_agent, org_id, agent_id)))

    @route("PATCH", "/v1/organizations/<org_id>/agents/<agent_id>",
           "Edit an agent's configuration (Owner/Admin; Builders: agents they contribute to)",
           body=schemas.AgentBody(), response=schemas.Agent(), errors=(403,))
    def update_agent(self, request, org_id, agent_id):
        self._authenticate(request)
        body = read_json(request, schemas.AgentBody())
        return json_response(schemas.Agent().dump(call(self.orgs.update_agent, org_id, agent_id, body)))

    @route("DELETE", "/v1/organizations/<org_id>/agents/<agent_id>", "Delete an agent (Owner/Admin)",
           status=204, errors=(403,))
    def delete_agent(self, request, org_id, agent_id):
        self._authenticate(request)
        call(self.orgs.delete_agent, org_id, agent_id)
        return Response(status=204)

    @route("GET", "/v1/organizations/<org_id>/agents/<agent_id>/contributors", "The agent's contributors",
           response=schemas.AgentPersonPage())
    def list_contributors(self, request, org_id, agent_id):
        self._authenticate(request)
        return json_response(schemas.AgentPersonPage().dump(call(self.orgs.list_contributors, org_id, agent_id)))

    @route("POST", "/v1/organizations/<org_id>/agents/<agent_id>/contributors",
           "Add a contributor (Owner/Admin; the member must hold Builder); 200 if already one",
           body=schemas.UserIdBody(), response=schemas.AgentPerson(), status=201, errors=(403,))
    def add_contributor(self, request, org_id, agent_id):
        self._authenticate(request)
        body = read_json(request, schemas.UserIdBody())
        answer = call(self.orgs.add_contributor, org_id, agent_id, body["user_id"])
        return json_response(schemas.AgentPerson().dump(answer["contributor"]), 201 if answer["created"] else 200)

    @route("DELETE", "/v1/organizations/<org_id>/agents/<agent_id>/contributors/<user_id>",
           "Remove a contributor (Owner/Admin; never the last one)", status=204, errors=(403, 409))
    def remove_contributor(self, request, org_id, agent_id, user_id):
        self._authenticate(request)
        call(self.orgs.remove_contributor, org_id, agent_id, user_id)
        return Response(status=204)

    @route("PUT", "/v1/organizations/<org_id>/agents/<agent_id>/assignees/<user_id>",
           "Assign the agent to a member (Owner/Admin); 201 when new, 200 if already assigned",
           response=schemas.AgentPerson(), status=201, errors=(403,))
    def assign_agent(self, request, org_id, agent_id, user_id):
        self._authenticate(request)
        answer = call(self.orgs.assign_agent, org_id, agent_id, user_id)
        return json_response(schemas.AgentPerson().dump(answer["assignee"]), 201 if answer["created"] else 200)

    @route("DELETE", "/v1/organizations/<org_id>/agents/<agent_id>/assignees/<user_id>",
           "Take the agent away from a member (Owner/Admin)", status=204, errors=(403,))
    def unassign_agent(self, request, org_id, agent_id, user_id):
        self._authenticate(request)
        call(self.orgs.unassign_agent, org_id, agent_id, user_id)
        return Response(status=204)

    @route("POST", "/v1/organizations/<org_id>/agents/<agent_id>/transfer",
           "Move the agent to another organization (Owner/Admin here; Owner/Admin/Builder there); "
           "dry_run true reports per contributor whether they keep access",
           body=schemas.TransferBody(), response=schemas.TransferReport(), errors=(403,))
    def transfer_agent(self, request, org_id, agent_id):
        self._authenticate(request)
        body = read_json(request, schemas.TransferBody())
        report = call(self.orgs.transfer_agent, org_id, agent_id, body["destination_organization_id"],
                      body["dry_run"])
        return json_response(schemas.TransferReport().dump(report))

    @route("GET", "/v1/organizations/<org_id>/agents/<agent_id>/audit",
           "The agent's trail in this organization, a row per changed field (Owner/Admin)",
           response=schemas.AgentTrailPage(), errors=(403,), query={
               "entity_type": "agent", "action": "create | update | delete", "actor": "user id or email",
               "field": "e.g. instructions", "old_value": "contained in the old value",
               "new_value": "contained in the new value", "since": "ISO 8601, inclusive",
               "until": "ISO 8601, exclusive", "cursor": "from next_cursor", "limit": "1-200, default 20"})
    def agent_audit(self, request, org_id, agent_id):
        self._authenticate(request)
        query = load(schemas.AgentTrailQuery(), request.args.to_dict())
        cursor, limit = query.pop("cursor"), query.pop("limit")
        page = call(self.audit.list_agent_entries, org_id, agent_id, query, cursor, limit)
        return json_response(schemas.AgentTrailPage().dump(page))

    # ---- audit -------------------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/audit", "The organization's audit trail (Owner/Admin)",
           response=schemas.AuditPage(), errors=(403,), query={
               "entity_type": "e.g. organization", "action": "create | update | delete",
               "actor": "user id or email", "field": "a changed field", "target": "entity id",
               "since": "ISO 8601, inclusive", "until": "ISO 8601, exclusive", "cursor": "from next_cursor",
               "limit": "1-200, default 50", "format": "json | csv: download every matching entry"})
    def list_audit(self, request, org_id):
        self._authenticate(request)
        query = load(schemas.AuditQuery(), request.args.to_dict())
        export, cursor, limit = query.pop("format"), query.pop("cursor"), query.pop("limit")
        if export is None:
            page = call(self.audit.list_entries, org_id, query, cursor, limit)
            return json_response(schemas.AuditPage().dump(page))
        entries = _every_page(lambda cursor: call(self.audit.list_entries, org_id, query, cursor, 200))
        entries = schemas.AuditEntry(many=True).dump(entries)
        filename = f"audit-{org_id}.{export}"
        if export == "json":
            return json_response(entries, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
        return _csv_download(filename, AUDIT_CSV_COLUMNS, _audit_rows(entries))

    # ---- anything else: JSON 404 instead of werkzeug's HTML page ------------------------------------
    @http("GET,POST,PUT,PATCH,DELETE", "/<path:path>")
    def unknown_route(self, request, path):
        raise NotFound(f"There is no route {request.method} /{path}.", code="route_not_found")


def _idempotency_key(request):
    return idempotency.check_key(request.headers.get("Idempotency-Key"))


def _ping(service):
    try:
        call(service.ping, timeout=3)
        return "ok"
    except AppError as exc:
        return exc.code


def _broker_status(amqp_uri):
    try:
        with eventlet.Timeout(3):
            with Connection(amqp_uri, connect_timeout=2) as connection:
                connection.ensure_connection(max_retries=1)
        return "ok"
    except BaseException:   # eventlet.Timeout is not an Exception
        return "unreachable"


def _every_page(fetch):
    """Follow next_cursor from the first page; at most EXPORT_MAX_ROWS items (downloads)."""
    items, cursor = [], None
    while len(items) < EXPORT_MAX_ROWS:
        page = fetch(cursor)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return items[:EXPORT_MAX_ROWS]


def _csv_download(filename, header, rows):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([_spreadsheet_safe(cell) for cell in row] for row in rows)
    return Response(out.getvalue(), headers={"Content-Disposition": f'attachment; filename="{filename}"'},
                    mimetype="text/csv")


def _spreadsheet_safe(cell):
    """Text a spreadsheet would run as a formula (a member named "=HYPERLINK(...)") gets a leading
    apostrophe, so opening a download cannot execute what a user typed into their name."""
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + cell
    return cell


MEMBER_CSV_COLUMNS = ["user_id", "name", "email", "roles", "budget_group_id", "joined_at"]
AUDIT_CSV_COLUMNS = ["occurred_at", "event_id", "type", "entity_type", "entity_id", "action", "actor_id",
                     "actor_email", "field", "old_value", "new_value"]


def _audit_rows(entries):
    for e in entries:
        for change in e["changes"] or [{"field": "", "old_value": None, "new_value": None}]:
            yield [e["occurred_at"], e["event_id"], e["type"], e["entity_type"], e["entity_id"], e["action"],
                   e["actor"].get("id"), e["actor"].get("email", ""), change["field"],
                   json.dumps(change["old_value"]), json.dumps(change["new_value"])]
