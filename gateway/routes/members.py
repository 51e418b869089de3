"""Members, invitations and billing transfers: the members service's resources."""
from werkzeug.wrappers import Response

from common import idempotency
from common.rpc import call
from gateway import export
from gateway.http import OPTIONAL_IDEMPOTENCY_KEY, json_response, route
from gateway.request_input import idempotency_key, load, read_json
from gateway.schemas.members import (
    INVITATION_STATUSES,
    TRANSFER_STATUSES,
    BillingTransfer,
    BillingTransferBody,
    BillingTransferPage,
    Invitation,
    InvitationBody,
    InvitationPage,
    InvitationsQuery,
    Member,
    MemberPage,
    MembersQuery,
    RolesBody,
    StatusQuery,
)


class MemberRoutes:
    # ---- members -----------------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/members", "Members (any member); CSV with format=csv",
           response=MemberPage(), query_schema=MembersQuery(),
           downloads={"text/csv": export.MEMBER_CSV_COLUMNS}, query={
               "q": "search in name or email", "role": "owner | admin | builder | member | billing",
               "sort": "name | joined_at | role; prefix - for descending", "cursor": "from next_cursor",
               "limit": "1-200, default 50", "format": "csv: download every matching member"})
    def list_members(self, request, org_id):
        query = load(MembersQuery(), request.args.to_dict())
        filters = (org_id, query["q"], query["role"], query["sort"])
        # Each member's budget group too: the members service keeps which group each one is in.
        if query["format"] != "csv":
            answer = call(self.members.list_members, *filters, query["cursor"], query["limit"])
            return json_response(MemberPage().dump(answer))
        members = Member(many=True).dump(export.every_page(org_id,
            lambda cursor: call(self.members.list_members, *filters, cursor, 200)))
        return export.members_csv(org_id, members)

    @route("PATCH", "/v1/organizations/<org_id>/members/<user_id>", "Edit a member's roles (Owner/Admin)",
           body=RolesBody(), response=Member(), errors=(403, 409))
    def edit_member_roles(self, request, org_id, user_id):
        body = read_json(request, RolesBody())
        # The member as the list shows them, their budget group included.
        member = call(self.members.edit_roles, org_id, user_id, body["roles"])
        return json_response(Member().dump(member))

    @route("DELETE", "/v1/organizations/<org_id>/members/<user_id>",
           "Remove a member (Owner/Admin), or leave when user_id is your own", status=204, errors=(403, 409))
    def remove_member(self, request, org_id, user_id):
        call(self.members.remove_member, org_id, user_id)
        return Response(status=204)

    # ---- invitations -------------------------------------------------------------------------------
    @route("POST", "/v1/organizations/<org_id>/invitations", "Invite by email (Owner/Admin)",
           body=InvitationBody(), response=Invitation(), status=201, errors=(403, 409),
           headers=OPTIONAL_IDEMPOTENCY_KEY)
    def invite(self, request, org_id):
        body = read_json(request, InvitationBody())
        invitation = call(self.members.invite, org_id, body["email"], body["roles"], body["agent_ids"],
                          idempotency_key(request))
        return json_response(Invitation().dump(invitation), 201, headers=idempotency.replay_headers(invitation))

    @route("GET", "/v1/organizations/<org_id>/invitations", "The organization's invitations (Owner/Admin)",
           response=InvitationPage(), errors=(403,), query_schema=InvitationsQuery(), query={
               "status": {"enum": INVITATION_STATUSES}, "q": "search in email",
               "cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_invitations(self, request, org_id):
        query = load(InvitationsQuery(), request.args.to_dict())
        page = call(self.members.list_invitations, org_id, query["status"], query["q"], query["cursor"],
                    query["limit"])
        return json_response(InvitationPage().dump(page))

    @route("POST", "/v1/organizations/<org_id>/invitations/<invitation_id>/resend",
           "Send again, renewing the expiry (Owner/Admin; 10 minutes after the last send)",
           response=Invitation(), errors=(403, 409))
    def resend_invitation(self, request, org_id, invitation_id):
        return json_response(Invitation().dump(call(self.members.resend_invitation, org_id, invitation_id)))

    @route("POST", "/v1/organizations/<org_id>/invitations/<invitation_id>/revoke",
           "End a pending invitation (Owner/Admin)", response=Invitation(), errors=(403, 409))
    def revoke_invitation(self, request, org_id, invitation_id):
        return json_response(Invitation().dump(call(self.members.revoke_invitation, org_id, invitation_id)))

    @route("GET", "/v1/invitations", "Invitations addressed to the signed-in user's email",
           response=InvitationPage(), query_schema=StatusQuery(), query={
               "status": {"enum": INVITATION_STATUSES}, "cursor": "from next_cursor",
               "limit": "1-200, default 50"})
    def my_invitations(self, request):
        query = load(StatusQuery(), request.args.to_dict())
        page = call(self.members.my_invitations, query["status"], query["cursor"], query["limit"])
        return json_response(InvitationPage().dump(page))

    @route("POST", "/v1/invitations/<invitation_id>/accept", "Join with the invitation's roles (invitee only)",
           response=Invitation(), errors=(403, 409))
    def accept_invitation(self, request, invitation_id):
        return json_response(Invitation().dump(call(self.members.accept_invitation, invitation_id)))

    @route("POST", "/v1/invitations/<invitation_id>/reject", "Turn the invitation down (invitee only)",
           response=Invitation(), errors=(403, 409))
    def reject_invitation(self, request, invitation_id):
        return json_response(Invitation().dump(call(self.members.reject_invitation, invitation_id)))

    # ---- billing transfers -------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/billing-transfers",
           "Billing transfers (Owners and the Billing holder: all; others: their own)",
           response=BillingTransferPage(), query_schema=StatusQuery(), query={
               "status": {"enum": TRANSFER_STATUSES}, "cursor": "from next_cursor",
               "limit": "1-200, default 50"})
    def list_billing_transfers(self, request, org_id):
        query = load(StatusQuery(), request.args.to_dict())
        page = call(self.members.list_billing_transfers, org_id, query["status"], query["cursor"], query["limit"])
        return json_response(BillingTransferPage().dump(page))

    @route("POST", "/v1/organizations/<org_id>/billing-transfers",
           "Offer Billing to another member (an Owner holding Billing)", body=BillingTransferBody(),
           response=BillingTransfer(), status=201, errors=(403, 409))
    def start_billing_transfer(self, request, org_id):
        body = read_json(request, BillingTransferBody())
        transfer = call(self.members.start_billing_transfer, org_id, body["to_user_id"])
        return json_response(BillingTransfer().dump(transfer), 201)

    @route("POST", "/v1/organizations/<org_id>/billing-transfers/<transfer_id>/accept",
           "Take Billing over (the recipient)", response=BillingTransfer(), errors=(403, 409))
    def accept_billing_transfer(self, request, org_id, transfer_id):
        return self._answer_transfer(self.members.accept_billing_transfer, org_id, transfer_id)

    @route("POST", "/v1/organizations/<org_id>/billing-transfers/<transfer_id>/decline",
           "Turn the transfer down (the recipient)", response=BillingTransfer(), errors=(403, 409))
    def decline_billing_transfer(self, request, org_id, transfer_id):
        return self._answer_transfer(self.members.decline_billing_transfer, org_id, transfer_id)

    @route("POST", "/v1/organizations/<org_id>/billing-transfers/<transfer_id>/cancel",
           "Withdraw the transfer (its initiator)", response=BillingTransfer(), errors=(403, 409))
    def cancel_billing_transfer(self, request, org_id, transfer_id):
        return self._answer_transfer(self.members.cancel_billing_transfer, org_id, transfer_id)

    def _answer_transfer(self, method, org_id, transfer_id):
        return json_response(BillingTransfer().dump(call(method, org_id, transfer_id)))
