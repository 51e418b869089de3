"""How the orgs service reacts to other services' change events (the bindings of
common.events.ORGS_QUEUE): each event once, its effects in one transaction with the record that it
was handled (common.inbox)."""
from common import inbox
from common.event_types import INVITATION_ACCEPTED, MEMBER_ROLES_CHANGED, MEMBERSHIP_ENDED
from common.permissions import Role
from services.orgs import agent_people, organizations
from services.orgs.models import ProcessedEvent


def handle_change_event(store, event):
    """React once to another service's change event (see common.events.ORGS_QUEUE for which):

    - member.removed / member.left: the user's active organization falls back to their Individual one
      if it was this one (product rules §1), and their places on the organization's agents go;
    - member.roles_changed without Builder: their contributions go (only Builders contribute);
    - invitation.accepted: the invitation's agents are assigned to the newcomer.

    The effects and the record that the event was handled commit together, so a redelivery does
    nothing (common.inbox). Returns False for a redelivery."""
    with store.write() as session:
        if not inbox.first_delivery(session, ProcessedEvent, event):
            return False
        kind = event["type"]
        if kind in MEMBERSHIP_ENDED:
            organizations.forget_active_membership(session, event["target"]["id"], event["organization_id"])
            agent_people.forget_member_access(session, event)
        elif kind == MEMBER_ROLES_CHANGED and not _still_builder(event):
            agent_people.forget_member_access(session, event, contributors_only=True)
        elif kind == INVITATION_ACCEPTED:
            agent_people.apply_invitation_agents(session, event)
        return True


def _still_builder(event):
    return Role.BUILDER.value in (event.get("after") or {}).get("roles", [])
