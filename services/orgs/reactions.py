"""How the orgs service reacts to other services' change events (the bindings of
common.events.ORGS_QUEUE): members' events that carry memberships' state feed orgs' read model of
memberships (common.readmodels); some of them also have effects here, each event once, the effects in
one transaction with the state and the record that it was handled (common.inbox)."""
from common import inbox, readmodels
from common.event_types import INVITATION_ACCEPTED, MEMBER_ROLES_CHANGED, MEMBERSHIP_ENDED
from common.permissions import Role
from services.orgs import agent_people, organizations
from services.orgs.models import READ_MODELS, ProcessedEvent

# The events with effects beyond the read model (the others, member.added and billing_transfer.accepted,
# only update it: applying a state is idempotent by its version, so they need no inbox record).
REACTS_TO = (*MEMBERSHIP_ENDED, MEMBER_ROLES_CHANGED, INVITATION_ACCEPTED)


def handle_change_event(store, event):
    """Apply the memberships' state the event carries (newer versions win), and react once:

    - member.removed / member.left: the user's active organization falls back to their Individual one
      if it was this one (product rules §1), and their places on the organization's agents go;
    - member.roles_changed without Builder: their contributions go (only Builders contribute);
    - invitation.accepted: the invitation's agents are assigned to the newcomer.

    The state, the effects and the record that the event was handled commit together, so a
    redelivery does nothing (common.inbox). Returns False for a redelivery (for an event without
    effects: when it brought nothing newer)."""
    with store.write() as session:
        applied = readmodels.apply_event_state(session, READ_MODELS, event)
        kind = event["type"]
        if kind not in REACTS_TO:
            return applied > 0
        if not inbox.first_delivery(session, ProcessedEvent, event):
            return False
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
