"""Domain logic of the members service: plain functions over a `Store`, callable without a broker."""
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from common import outbox
from common.errors import Conflict, NotFound
from common.events import change_event, changed_fields
from common.permissions import Role
from common.timeutil import utcnow
from services.members.models import MemberRole, Membership, OutboxEvent, User
from services.members.schemas import membership_schema, user_schema

FOUNDER_ROLES = (Role.OWNER.value, Role.BILLING.value)


def register_user(store, identity):
    """Create or refresh the user the gateway saw in a token. Returns (user dict, created?)."""
    try:
        return _register_user(store, identity)
    except IntegrityError:  # two first requests of a new user raced; the other one created the row
        return _register_user(store, identity)


def _register_user(store, identity):
    email = identity.email.strip().lower()
    with store.write() as session:
        user = session.get(User, identity.id)
        now = utcnow()
        if user is None:
            user = User(id=identity.id, email=email, name=identity.name, created_at=now, updated_at=now)
            session.add(user)
            outbox.record(session, OutboxEvent, change_event(
                "user.registered", "create", None, identity.as_actor(), "user", identity.id,
                after={"email": email, "name": identity.name}))
            return user_dict(user), True
        before, after = changed_fields({"email": user.email, "name": user.name},
                                       {"email": email, "name": identity.name})
        if after:
            user.email, user.name, user.updated_at = email, identity.name, now
            outbox.record(session, OutboxEvent, change_event(
                "user.updated", "update", None, identity.as_actor(), "user", identity.id,
                before=before, after=after))
        return user_dict(user), False


def add_founder(store, identity, organization_id):
    """Make the caller the first member of a new organization, holding Owner and Billing.

    Idempotent for the founder; refused once the organization has any other member, so this cannot be
    used to join an existing organization.
    """
    try:
        with store.write() as session:
            # Others first: a concurrent retry of this very call may have made the caller a member.
            if session.scalar(select(func.count()).select_from(Membership).where(
                    Membership.organization_id == organization_id, Membership.user_id != identity.id)):
                raise Conflict("This organization already has members.", code="organization_has_members")
            existing = session.get(Membership, (organization_id, identity.id))
            if existing is not None:
                return membership_dict(session, existing)
            membership = Membership(organization_id=organization_id, user_id=identity.id, joined_at=utcnow())
            membership.role_rows = [MemberRole(organization_id=organization_id, user_id=identity.id, role=r)
                                    for r in FOUNDER_ROLES]
            session.add(membership)
            session.flush()
            outbox.record(session, OutboxEvent, change_event(
                "member.added", "create", organization_id, identity.as_actor(), "member", identity.id,
                after={"user_id": identity.id, "email": identity.email, "roles": list(FOUNDER_ROLES)}))
            return membership_dict(session, membership)
    except IntegrityError:
        # A concurrent retry of the same call inserted it first.
        with store.read() as session:
            existing = session.get(Membership, (organization_id, identity.id))
            if existing is None:
                raise
            return membership_dict(session, existing)


def membership_of(store, organization_id, user_id):
    """The user's membership in the organization; NotFound when there is none."""
    with store.read() as session:
        membership = session.get(Membership, (organization_id, user_id))
        if membership is None:
            raise NotFound("Organization not found.", code="organization_not_found", field="organization_id")
        return membership_dict(session, membership)


def memberships_of_user(store, user_id):
    """Every membership of the user, with each organization's member count."""
    with store.read() as session:
        memberships = session.scalars(select(Membership).where(Membership.user_id == user_id)).all()
        org_ids = [m.organization_id for m in memberships]
        counts = dict(session.execute(
            select(Membership.organization_id, func.count()).where(Membership.organization_id.in_(org_ids))
            .group_by(Membership.organization_id)).all()) if org_ids else {}
        return [membership_dict(session, m, counts.get(m.organization_id, 1)) for m in memberships]


def forget_organization(store, organization_id):
    """The organization was deleted: its memberships go (idempotent; the deletion is the audited change)."""
    with store.write() as session:
        session.execute(delete(MemberRole).where(MemberRole.organization_id == organization_id))
        result = session.execute(delete(Membership).where(Membership.organization_id == organization_id))
        return result.rowcount


def user_dict(user):
    return user_schema.dump(user)


def membership_dict(session, membership, member_count=None):
    if member_count is None:
        member_count = session.scalar(select(func.count()).select_from(Membership)
                                      .where(Membership.organization_id == membership.organization_id))
    return dict(membership_schema.dump(membership), member_count=member_count)
