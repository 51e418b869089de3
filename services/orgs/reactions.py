"""How the orgs service reacts to other services' change events (the bindings of
common.events.ORGS_QUEUE), each event once by the one rule of common.inbox: its id recorded in
`processed_events` in the transaction of its effects. Every event's memberships' state feeds orgs' read
model of memberships (common.readmodels); some events also have effects here (the table below)."""
from common import inbox
from common.event_types import INVITATION_ACCEPTED, MEMBER_ROLES_CHANGED, MEMBERSHIP_ENDED
from common.permissions import Role
from services.orgs import agent_people, organizations
from services.orgs.models import READ_MODELS, ProcessedEvent


def membership_ended(session, event):
    """member.removed / member.left: the user's active organization falls back to their Individual one if
    it was this one (product rules §1), and their places on the organization's agents go."""
    organizations.forget_active_membership(session, event["target"]["id"], event["organization_id"])
    agent_people.forget_member_access(session, event)


def roles_changed(session, event):
    """member.roles_changed without Builder: their contributions go (only Builders contribute)."""
    if Role.BUILDER.value not in (event.get("after") or {}).get("roles", []):
        agent_people.forget_member_access(session, event, contributors_only=True)


def invitation_accepted(session, event):
    """invitation.accepted: the invitation's agents are assigned to the newcomer."""
    agent_people.apply_invitation_agents(session, event)


# member.added and billing_transfer.accepted only feed the read model.
REACTIONS = inbox.Reactions(inbox.Inbox(ProcessedEvent), read_models=READ_MODELS, effects={
    **dict.fromkeys(MEMBERSHIP_ENDED, membership_ended),
    MEMBER_ROLES_CHANGED: roles_changed,
    INVITATION_ACCEPTED: invitation_accepted,
})


def handle_change_event(store, event):
    """React to the event once: its state and effects commit with its record, so a redelivery does
    nothing. Returns False for a redelivery."""
    return REACTIONS.once(store, event)
