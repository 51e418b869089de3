"""What the members service's unit tests share: the organization they use, people, the events
recorded in the outbox, domain functions run in a transaction, and the service's entrypoints (Nameko's
worker_factory: the command pipeline of common.commands around them, orgs and the mailer mocks)."""
from nameko.testing.services import worker_factory
from sqlalchemy import select

from common.auth import SYSTEM_ACTOR, Identity
from common.event_types import ORGANIZATION_DELETED
from common.events import change_event
from common.readmodels import organization_state
from services.members import invitations, organization_facts, users
from services.members.models import OutboxEvent
from services.members.own_memberships import Memberships
from services.members.service import MembersService

ORG = {"id": "org-1", "name": "Sehat Clinic", "type": "collective"}


def person(name):
    return Identity(name, f"{name}@example.com", name.title())


def events(store):
    with store.read() as session:
        return [e.envelope for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]


def join(store, inviter, name, roles):
    """A new user who joins ORG by accepting an invitation from `inviter`."""
    who = person(name)
    written(store, users.register_user, who)
    invitation = written(store, invitations.invite, inviter, ORG, who.email, roles)
    written(store, invitations.accept_invitation, who, invitation["id"])
    return who


def known(store, type="collective", version=1):
    """ORG as orgs hands it over with its founder (the members service's read model of organizations)."""
    written(store, organization_facts.remember_organization, ORG["id"], organization_state(
        ORG["id"], ORG["name"], type, "2026-01-05T09:00:00Z", version))


def members_worker(store, identity):
    """The members service for `identity`, its commands run by the pipeline on `store`; ORG is known."""
    service = worker_factory(MembersService, db=store)
    service.auth.identity = identity
    service.memberships = Memberships(store)
    known(store)
    return service


def organization_deleted(organization_id):
    """orgs' change event for a deleted organization, as the members service consumes it."""
    return change_event(ORGANIZATION_DELETED, "delete", organization_id, SYSTEM_ACTOR, "organization",
                        organization_id, before={"name": ORG["name"]})


def written(store, function, *args, **kwargs):
    """`function(session, ...)` in one write transaction of `store`, as the command pipeline gives a
    domain function its session (common.commands)."""
    with store.write() as session:
        return function(session, *args, **kwargs)


def read(store, function, *args, **kwargs):
    """`function(session, ...)` in a read transaction of `store`."""
    with store.read() as session:
        return function(session, *args, **kwargs)
