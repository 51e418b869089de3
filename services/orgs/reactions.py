"""How the orgs service reacts to other services' change events (the bindings of
common.events.ORGS_QUEUE): each event once, its effects in one transaction with the record that it
was handled (common.inbox)."""
from common import inbox
from services.orgs import agents, domain
from services.orgs.models import ProcessedEvent


def handle_change_event(store, event):
    """React once to another service's change event (see common.events.ORGS_QUEUE for which):

    - member.removed / member.left: the user's active organization falls back to their Individual one
      if it was this one (SPEC §1), and their places on the organization's agents go;
    - member.roles_changed without Builder: their contributions go (only Builders contribute);
    - invitation.accepted: the invitation's agents are assigned to the newcomer.

    The effects and the record that the event was handled commit together, so a redelivery does
    nothing (common.inbox). Returns False for a redelivery."""
    with store.write() as session:
        if not inbox.first_delivery(session, ProcessedEvent, event):
            return False
        kind = event["type"]
        if kind in ("member.removed", "member.left"):
            domain.forget_active_membership(session, event["target"]["id"], event["organization_id"])
            agents.forget_member_access(session, event)
        elif kind == "member.roles_changed" and "builder" not in (event.get("after") or {}).get("roles", []):
            agents.forget_member_access(session, event, contributors_only=True)
        elif kind == "invitation.accepted":
            agents.apply_invitation_agents(session, event)
        return True
