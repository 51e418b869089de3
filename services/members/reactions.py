"""How the members service reacts to other services' change events (the binding of
common.events.MEMBERS_QUEUE). Its one reaction is idempotent by itself (deleting what is already gone
deletes nothing, a revoked key is not revoked again), so it keeps no record of handled events."""
from sqlalchemy import delete

from common.event_types import ORGANIZATION_DELETED
from common.timeutil import utcnow
from services.members.api_keys import revoke_keys_of_deleted_organization
from services.members.models import BillingTransfer, Invitation, MemberRole, Membership


def handle_change_event(store, event):
    """organization.deleted: the organization's memberships, invitations and billing transfers go, its
    API keys are revoked."""
    if event["type"] == ORGANIZATION_DELETED:
        forget_organization(store, event["target"]["id"])


def forget_organization(store, organization_id):
    """Delete everything the members service holds about a deleted organization; returns how many
    memberships went (idempotent; the deletion itself is the audited change, so no event here: read
    models retire the organization's memberships on organization.deleted). The membership versions stay
    (models.MembershipVersion: versions only grow). Its API keys are revoked, each with an event: gateways
    drop a key they hold on it (services/members/api_keys.py)."""
    with store.write() as session:
        revoke_keys_of_deleted_organization(session, organization_id, utcnow())
        session.execute(delete(Invitation).where(Invitation.organization_id == organization_id))
        session.execute(delete(BillingTransfer).where(BillingTransfer.organization_id == organization_id))
        session.execute(delete(MemberRole).where(MemberRole.organization_id == organization_id))
        result = session.execute(delete(Membership).where(Membership.organization_id == organization_id))
        return result.rowcount
