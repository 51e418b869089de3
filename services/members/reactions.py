"""How the members service reacts to other services' change events (the binding of
common.events.MEMBERS_QUEUE), each event once by the one rule of common.inbox: its id recorded in
`processed_events` in the transaction of its effects. The states the events carry feed the read models
(common.readmodels): which budget group each member is in (from credits), organizations and agents'
access (from orgs). Members' own invitation events call for an email (emails.py: stored here, sent by a
job)."""
from sqlalchemy import delete

from common import inbox
from common.config import settings
from common.event_types import INVITATION_CREATED, INVITATION_RESENT, ORGANIZATION_DELETED
from common.timeutil import utcnow
from services.members.api_keys import revoke_keys_of_deleted_organization
from services.members.emails import queue_invitation_email
from services.members.models import READ_MODELS, BillingTransfer, Invitation, MemberRole, Membership, ProcessedEvent


def organization_deleted(session, event):
    """organization.deleted: everything the members service holds about the organization goes.

    Its memberships, invitations and billing transfers are deleted (the deletion itself is the audited
    change, so no event here: read models retire the organization's memberships on organization.deleted);
    the membership versions stay (models.MembershipVersion: versions only grow). Its API keys are revoked,
    each with an event: gateways drop a key they hold on it (services/members/api_keys.py)."""
    organization_id = event["target"]["id"]
    revoke_keys_of_deleted_organization(session, organization_id, utcnow())
    for model in (Invitation, BillingTransfer, MemberRole, Membership):
        session.execute(delete(model).where(model.organization_id == organization_id))


def invitation_sent(session, event):
    """invitation.created, invitation.resent: its email, sent by the job (emails.py)."""
    queue_invitation_email(session, event, settings().app_url)


# Credits' and orgs' other events only feed the read models.
REACTIONS = inbox.Reactions(inbox.Inbox(ProcessedEvent), read_models=READ_MODELS,
                            effects={ORGANIZATION_DELETED: organization_deleted,
                                     INVITATION_CREATED: invitation_sent, INVITATION_RESENT: invitation_sent})


def handle_change_event(store, event):
    """React to the event once. Returns False for a redelivery."""
    return REACTIONS.once(store, event)
