"""Members, invitations and billing transfers: the members service's resources."""
from marshmallow import Schema, fields, validate

from common.contracts.invitations import InvitationInput
from common.paging import SEARCH_MAX_LENGTH
from common.permissions import ALL_ROLES
from common.schemas import UserId
from gateway.schemas.common import ContractField, ListQuery, Strict, date_time, page_of, roles_list

# The statuses services/members checks list filters against (422 invalid_status for any other).
INVITATION_STATUSES = ["pending", "accepted", "rejected", "revoked", "expired"]
TRANSFER_STATUSES = ["pending", "accepted", "declined", "cancelled"]
MEMBER_SORTS = ["name", "joined_at", "role"]


# ---- requests -------------------------------------------------------------------------------------
class MembersQuery(ListQuery):
    q = fields.String(load_default=None, metadata={"description": "search in name or email",
                                                   "maxLength": SEARCH_MAX_LENGTH})
    role = fields.String(load_default=None, metadata={"enum": list(ALL_ROLES)})
    sort = fields.String(load_default=None, metadata={"enum": MEMBER_SORTS + [f"-{s}" for s in MEMBER_SORTS]})
    format = fields.String(load_default=None, validate=validate.OneOf(["csv"]))


class StatusQuery(ListQuery):
    status = fields.String(load_default=None)


class InvitationsQuery(StatusQuery):
    q = fields.String(load_default=None, metadata={"description": "search in email", "maxLength": SEARCH_MAX_LENGTH})


class RolesBody(Strict):
    roles = roles_list(required=True,
                       metadata={"description": "owner, admin, builder, member (Billing only by transfer)"})


class InvitationBody(Strict):
    # The members service applies the invitation's rules (common.contracts.invitations) after the caller's
    # permission (a 404 or 403 comes first); absent arrives as None.
    email = ContractField(InvitationInput.field("email"), load_default=None, allow_none=True)
    roles = roles_list(required=True)
    agent_ids = ContractField(InvitationInput.field("agent_ids"), shape=fields.List(fields.String()),
                              load_default=None, metadata={"description": "agents to assign on acceptance"})


class BillingTransferBody(Strict):
    to_user_id = UserId(required=True)


# ---- responses ------------------------------------------------------------------------------------
class Member(Schema):
    user_id = fields.String()
    name = fields.String()
    email = fields.String()
    roles = roles_list()
    budget_group_id = fields.String(allow_none=True)
    joined_at = date_time()


MemberPage = page_of(Member, "MemberPage")


class Invitation(Schema):
    id = fields.String()
    organization_id = fields.String()
    organization_name = fields.String()
    email = fields.String()
    roles = roles_list()
    agent_ids = fields.List(fields.String())
    status = fields.String(metadata={"enum": INVITATION_STATUSES})
    created_at = date_time()
    last_sent_at = date_time()
    expires_at = date_time()
    ended_at = date_time(allow_none=True)
    invited_by = fields.String()
    invited_by_email = fields.String()
    send_count = fields.Integer()


InvitationPage = page_of(Invitation, "InvitationPage")


class BillingTransfer(Schema):
    id = fields.String()
    organization_id = fields.String()
    from_user_id = fields.String()
    to_user_id = fields.String()
    status = fields.String(metadata={"enum": TRANSFER_STATUSES})
    created_at = date_time()
    ended_at = date_time(allow_none=True)


BillingTransferPage = page_of(BillingTransfer, "BillingTransferPage")
