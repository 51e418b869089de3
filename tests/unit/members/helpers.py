"""What the members service's unit tests share: the organization they use, people, and the events
recorded in the outbox."""
from sqlalchemy import select

from common.auth import SYSTEM_ACTOR, Identity
from common.event_types import ORGANIZATION_DELETED
from common.events import change_event
from services.members import invitations, users
from services.members.models import OutboxEvent

ORG = {"id": "org-1", "name": "Sehat Clinic", "type": "collective"}


def person(name):
    return Identity(name, f"{name}@example.com", name.title())


def events(store):
    with store.read() as session:
        return [e.envelope for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]


def join(store, inviter, name, roles):
    """A new user who joins ORG by accepting an invitation from `inviter`."""
    who = person(name)
    users.register_user(store, who)
    invitation, _ = invitations.invite(store, inviter, ORG, who.email, roles)
    invitations.accept_invitation(store, who, invitation["id"])
    return who


def organization_deleted(organization_id):
    """orgs' change event for a deleted organization, as the members service consumes it."""
    return change_event(ORGANIZATION_DELETED, "delete", organization_id, SYSTEM_ACTOR, "organization",
                        organization_id, before={"name": ORG["name"]})
