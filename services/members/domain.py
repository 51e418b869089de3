"""Domain logic of the members service: plain functions over a `Store`, callable without a broker.

Sections: users and founders; memberships (list, roles, remove, leave); invitations; billing
transfers. Rules: SPEC.md §2 (roles, ownership), §3 (members, invitations), §4 (billing hand-over).

Every function that changes memberships first locks the organization's membership rows
(`_lock_organization`), so that invariants counted across rows (at least one Owner, exactly one
Billing holder, one pending transfer) hold when two requests race on PostgreSQL; SQLite's
BEGIN IMMEDIATE already serializes writers.
"""
import re
import uuid
from datetime import timedelta

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError

from common import idempotency, outbox
from common.auth import SYSTEM_ACTOR
from common.authz import check_allowed
from common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from common.events import change_event, changed_fields
from common.paging import page_of_list, page_of_query
from common.permissions import ROLE_ORDER, Action, Role, sort_roles
from common.timeutil import as_utc, iso, utcnow
from services.members.models import (
    PENDING,
    BillingTransfer,
    IdempotentRequest,
    Invitation,
    MemberRole,
    Membership,
    OutboxEvent,
    User,
)
from services.members.schemas import (
    billing_transfer_schema,
    invitation_schema,
    member_schema,
    membership_schema,
    user_schema,
)

OWNER, ADMIN, BUILDER, MEMBER, BILLING = (r.value for r in Role)
FOUNDER_ROLES = (OWNER, BILLING)
GRANTABLE_ROLES = (OWNER, ADMIN, BUILDER, MEMBER)   # Billing moves only by transfer
ADMIN_GRANTABLE_ROLES = {BUILDER, MEMBER}           # "ultimate ownership stays with Owners"
INVITATION_TTL = timedelta(days=7)
RESEND_AFTER = timedelta(minutes=10)
MAX_AGENTS_PER_INVITATION = 100
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MEMBER_SORTS = ("name", "joined_at", "role")
INVITATION_STATUSES = ("pending", "accepted", "rejected", "revoked", "expired")
TRANSFER_STATUSES = ("pending", "accepted", "declined", "cancelled")


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


MAX_ROLES_LOOKUP = 500


def roles_of_members(store, identity, organization_id, user_ids):
    """{user_id: roles} for those of `user_ids` who are members; the caller must be a member too
    (NotFound otherwise, like every organization lookup). Other services use it to check a person
    they are about to name (an agent's contributor must hold Builder)."""
    if (not isinstance(user_ids, list) or len(user_ids) > MAX_ROLES_LOOKUP
            or not all(isinstance(u, str) for u in user_ids)):
        raise ValidationFailed(f"user_ids must be a list of at most {MAX_ROLES_LOOKUP} user ids.",
                               code="invalid_type", field="user_ids")
    with store.read() as session:
        _caller(session, organization_id, identity)
        if not user_ids:
            return {}
        rows = session.scalars(select(Membership).where(
            Membership.organization_id == organization_id, Membership.user_id.in_(user_ids))).all()
        return {m.user_id: sort_roles(m.roles) for m in rows}


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
    """The organization was deleted: its memberships, invitations and billing transfers go
    (idempotent; the deletion is the audited change)."""
    with store.write() as session:
        session.execute(delete(Invitation).where(Invitation.organization_id == organization_id))
        session.execute(delete(BillingTransfer).where(BillingTransfer.organization_id == organization_id))
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


# ---- shared checks -----------------------------------------------------------------------------------
def organization_not_found():
    return NotFound("Organization not found.", code="organization_not_found", field="organization_id")


def member_not_found(field="user_id"):
    return NotFound("There is no such member in this organization.", code="member_not_found", field=field)


def last_owner():
    return Conflict("An organization must keep at least one Owner.", code="last_owner")


def _member(session, organization_id, user_id):
    if not (isinstance(organization_id, str) and isinstance(user_id, str)):
        return None
    return session.get(Membership, (organization_id, user_id))


def _caller(session, organization_id, identity, action=None):
    """The caller's membership; NotFound for non-members (ids cannot be probed), Forbidden when their
    roles do not allow `action`."""
    membership = _member(session, organization_id, identity.id)
    if membership is None:
        raise organization_not_found()
    if action is not None:
        check_allowed(membership.roles, action)
    return membership


def _lock_organization(session, organization_id):
    """Serialize membership changes of one organization (PostgreSQL row locks; a no-op on SQLite,
    whose writers are serialized already). Always in one order, so two lockers cannot deadlock."""
    session.execute(select(Membership.user_id).where(Membership.organization_id == organization_id)
                    .order_by(Membership.user_id).with_for_update())


def _owner_count(session, organization_id):
    return session.scalar(select(func.count()).select_from(MemberRole).where(
        MemberRole.organization_id == organization_id, MemberRole.role == OWNER))


def _is_postgres(session):
    return session.get_bind().dialect.name == "postgresql"


def parse_roles(roles):
    """The requested roles as a set; 422 for anything but a non-empty list of known role names."""
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ValidationFailed("roles must be a list of role names.", code="invalid_type", field="roles")
    wanted = set(roles)
    if not wanted:
        raise ValidationFailed("At least one role is required.", code="roles_required", field="roles")
    unknown = sorted(wanted - set(ROLE_ORDER))
    if unknown:
        raise ValidationFailed(f"Unknown role {unknown[0]!r}; roles are {', '.join(GRANTABLE_ROLES)}.",
                               code="unknown_role", field="roles")
    return wanted


def _check_billing_not_granted(wanted, held):
    if BILLING in wanted and BILLING not in held:
        raise ValidationFailed("Billing cannot be granted; it moves only by a billing transfer.",
                               code="billing_by_transfer_only", field="roles")


def _check_grant(caller_roles, before, after, target_is_caller):
    """Ownership rules (SPEC §2): an Admin grants only Builder or Member and does not touch the roles
    of an Owner or another Admin; Owners may do anything (the last-Owner rule is checked apart)."""
    if OWNER in caller_roles:
        return
    if not target_is_caller and before & {OWNER, ADMIN}:
        raise Forbidden("Only an Owner can change or remove an Owner or an Admin.",
                        code="owner_or_admin_protected", field="user_id")
    if (after - before) - ADMIN_GRANTABLE_ROLES - {BILLING}:
        raise Forbidden("An Admin can grant only the Builder and Member roles.",
                        code="role_not_grantable", field="roles")


def _like(text):
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _check_query_text(q, field="q"):
    if q in (None, ""):
        return None
    if not isinstance(q, str) or len(q) > 200:
        raise ValidationFailed(f"{field} must be text of at most 200 characters.", code="invalid_query", field=field)
    return q


# ---- members -----------------------------------------------------------------------------------------
def list_members(store, identity, organization_id, q=None, role=None, sort=None, cursor=None, limit=None):
    """Members with name, email, roles, joined date: searched by name or email, filtered by role,
    sorted by name, joined_at or role (`-` in front for descending). Any member may list."""
    q = _check_query_text(q)
    if role not in (None, "") and role not in ROLE_ORDER:
        raise ValidationFailed(f"role must be one of {', '.join(ROLE_ORDER)}.", code="unknown_role", field="role")
    sort = sort or "name"
    if not isinstance(sort, str) or sort.lstrip("-") not in MEMBER_SORTS:
        raise ValidationFailed(f"sort must be one of {', '.join(MEMBER_SORTS)} (prefix - for descending).",
                               code="invalid_sort", field="sort")
    descending, key = sort.startswith("-"), sort.lstrip("-")
    with store.read() as session:
        _caller(session, organization_id, identity, Action.VIEW_MEMBERS)
        query = (select(Membership, User).join(User, User.id == Membership.user_id)
                 .where(Membership.organization_id == organization_id))
        if q:
            pattern = _like(q)
            query = query.where(or_(func.lower(User.name).like(pattern, escape="\\"),
                                    User.email.like(pattern, escape="\\")))
        if role:
            query = query.where(Membership.role_rows.any(MemberRole.role == role))
        members = [member_dict(m, u) for m, u in session.execute(query).all()]
    by_name = lambda m: (m["name"].casefold(), m["email"], m["user_id"])  # noqa: E731
    sort_keys = {
        "name": by_name,
        "joined_at": lambda m: (m["joined_at"], by_name(m)),
        "role": lambda m: (min(ROLE_ORDER[r] for r in m["roles"]), by_name(m)),
    }
    members.sort(key=sort_keys[key], reverse=descending)
    return page_of_list(members, cursor, limit)


def edit_roles(store, identity, organization_id, user_id, roles):
    """Set a member's roles (Owner/Admin). Billing is kept if held and never granted here."""
    wanted = parse_roles(roles)
    with store.write() as session:
        _lock_organization(session, organization_id)
        caller = _caller(session, organization_id, identity, Action.EDIT_MEMBER_ROLES)
        target = _member(session, organization_id, user_id)
        if target is None:
            raise member_not_found()
        before = set(target.roles)
        _check_billing_not_granted(wanted, before)
        after = wanted | (before & {BILLING})
        _check_grant(set(caller.roles), before, after, target.user_id == identity.id)
        if OWNER in before and OWNER not in after and _owner_count(session, organization_id) == 1:
            raise last_owner()
        if after != before:
            _set_roles(session, target, after)
            outbox.record(session, OutboxEvent, change_event(
                "member.roles_changed", "update", organization_id, identity.as_actor(), "member", target.user_id,
                before={"roles": sort_roles(before)}, after={"roles": sort_roles(after)}))
        return member_dict(target, session.get(User, target.user_id))


def _set_roles(session, membership, roles):
    for row in list(membership.role_rows):
        if row.role not in roles:
            membership.role_rows.remove(row)
    held = set(membership.roles)
    for role in sort_roles(roles):
        if role not in held:
            membership.role_rows.append(MemberRole(organization_id=membership.organization_id,
                                                   user_id=membership.user_id, role=role))
    session.flush()


def remove_member(store, identity, organization_id, user_id, now=None):
    """Remove a member (Owner/Admin), or leave when `user_id` is the caller's own id."""
    now = now or utcnow()
    with store.write() as session:
        _lock_organization(session, organization_id)
        if user_id == identity.id:
            membership = _caller(session, organization_id, identity)
            roles = set(membership.roles)
            if BILLING in roles:
                raise Conflict("You hold Billing: hand it over with a billing transfer before leaving.",
                               code="billing_holder_cannot_leave")
            if OWNER in roles and _owner_count(session, organization_id) == 1:
                raise Conflict("You are the only Owner: make another member Owner before leaving.",
                               code="last_owner")
            event_type = "member.left"
        else:
            caller = _caller(session, organization_id, identity, Action.REMOVE_MEMBERS)
            membership = _member(session, organization_id, user_id)
            if membership is None:
                raise member_not_found()
            roles = set(membership.roles)
            _check_grant(set(caller.roles), roles, roles, False)   # an Admin may not remove an Owner/Admin
            if BILLING in roles:
                raise Conflict("This member holds Billing: it must be handed over with a billing transfer "
                               "before they can be removed.", code="billing_holder")
            if OWNER in roles and _owner_count(session, organization_id) == 1:
                raise last_owner()
            event_type = "member.removed"
        _cancel_transfers_to(session, identity, organization_id, membership.user_id, now)
        user = session.get(User, membership.user_id)
        session.delete(membership)
        outbox.record(session, OutboxEvent, change_event(
            event_type, "delete", organization_id, identity.as_actor(), "member", membership.user_id,
            before={"email": user.email, "name": user.name, "roles": sort_roles(roles)}))
        return {"organization_id": organization_id, "user_id": membership.user_id, "left": event_type == "member.left"}


def member_dict(membership, user):
    return member_schema.dump({
        "user_id": membership.user_id, "name": user.name, "email": user.email, "roles": membership.roles,
        # Budget groups belong to the credits service; the gateway fills this in from there.
        "budget_group_id": None, "joined_at": membership.joined_at})


# ---- invitations -------------------------------------------------------------------------------------
def clean_email(email):
    if email is None or (isinstance(email, str) and not email.strip()):
        raise ValidationFailed("Email is required.", code="email_required", field="email")
    if not isinstance(email, str):
        raise ValidationFailed("Email must be a string.", code="invalid_type", field="email")
    email = email.strip().lower()
    if len(email) > 320 or not EMAIL_PATTERN.match(email):
        raise ValidationFailed("Email is not a valid address.", code="invalid_email", field="email")
    return email


def clean_agent_ids(agent_ids):
    if agent_ids is None:
        return []
    if not isinstance(agent_ids, list) or not all(isinstance(a, str) and 0 < len(a) <= 64 for a in agent_ids):
        raise ValidationFailed("agent_ids must be a list of agent ids.", code="invalid_type", field="agent_ids")
    if len(agent_ids) > MAX_AGENTS_PER_INVITATION:
        raise ValidationFailed(f"An invitation assigns at most {MAX_AGENTS_PER_INVITATION} agents.",
                               code="too_many_agents", field="agent_ids")
    return list(dict.fromkeys(agent_ids))


def effective_status(invitation, now):
    """A pending invitation past its expiry is expired, even before the job has recorded it."""
    if invitation.status == PENDING and as_utc(invitation.expires_at) <= now:
        return "expired"
    return invitation.status


def check_may_invite(store, identity, organization_id):
    """404 for non-members, 403 for members whose roles do not allow inviting."""
    with store.read() as session:
        _caller(session, organization_id, identity, Action.MANAGE_INVITATIONS)


def invite(store, identity, organization, email, roles, agent_ids=None, idempotency_key=None, now=None):
    """Invite an email address (Owner/Admin). `organization` is {"id", "name", "type"} as the orgs
    service described it to the entrypoint. Returns (invitation, created?) — False for a replayed key."""
    now = now or utcnow()
    email, wanted, agent_ids = clean_email(email), parse_roles(roles), clean_agent_ids(agent_ids)
    _check_billing_not_granted(wanted, set())
    organization_id = organization["id"]
    if organization["type"] == "individual":
        raise Conflict("An Individual organization cannot receive invitations.", code="individual_organization")
    try:
        with store.write() as session:
            replay = idempotency.find_replay(session, IdempotentRequest, identity.id, idempotency_key, "invite")
            if replay is not None:
                return replay, False
            caller = _caller(session, organization_id, identity, Action.MANAGE_INVITATIONS)
            _check_grant(set(caller.roles), set(), wanted, False)
            if session.scalar(select(func.count()).select_from(Membership).join(User, User.id == Membership.user_id)
                              .where(Membership.organization_id == organization_id, User.email == email)):
                raise Conflict(f"{email} is already a member of this organization.", code="already_member",
                               field="email")
            _expire_due(session, now, Invitation.organization_id == organization_id, Invitation.email == email)
            _check_no_pending_invitation(session, organization_id, email)
            invitation = Invitation(
                id=str(uuid.uuid4()), organization_id=organization_id, organization_name=organization["name"],
                email=email, roles=sort_roles(wanted), agent_ids=agent_ids, status=PENDING,
                invited_by=identity.id, invited_by_email=identity.email, send_count=1, created_at=now,
                last_sent_at=now, expires_at=now + INVITATION_TTL)
            session.add(invitation)
            session.flush()
            result = invitation_dict(invitation, now)
            outbox.record(session, OutboxEvent, change_event(
                "invitation.created", "create", organization_id, identity.as_actor(), "invitation", invitation.id,
                after={"email": email, "roles": result["roles"], "agent_ids": agent_ids,
                       "status": PENDING, "expires_at": result["expires_at"]}))
            idempotency.remember(session, IdempotentRequest, identity.id, idempotency_key, "invite", result, now)
            return result, True
    except IntegrityError:
        # Lost a race: the same key's first request, or another admin inviting this email, won.
        with store.read() as session:
            replay = idempotency.find_replay(session, IdempotentRequest, identity.id, idempotency_key, "invite")
            if replay is not None:
                return replay, False
            _check_no_pending_invitation(session, organization_id, email)
        raise


def _check_no_pending_invitation(session, organization_id, email):
    pending = session.scalar(select(Invitation).where(
        Invitation.organization_id == organization_id, Invitation.email == email, Invitation.status == PENDING))
    if pending is not None:
        raise Conflict(f"{email} already has a pending invitation to this organization; resend it instead.",
                       code="invitation_pending", field="email", details={"invitation_id": pending.id})


def _invitation_in(session, organization_id, invitation_id, lock=False):
    invitation = (session.get(Invitation, invitation_id, with_for_update=lock)
                  if isinstance(invitation_id, str) else None)
    if invitation is None or invitation.organization_id != organization_id:
        raise NotFound("There is no such invitation in this organization.", code="invitation_not_found",
                       field="invitation_id")
    return invitation


def _check_pending(invitation, now):
    status = effective_status(invitation, now)
    if status == "expired":
        raise Conflict(f"This invitation expired at {iso(invitation.expires_at)}; send a new one.",
                       code="invitation_expired", details={"status": status})
    if status != PENDING:
        raise Conflict(f"This invitation is no longer pending: it was {status}.", code="invitation_not_pending",
                       details={"status": status})


def _pending_invitation_to_manage(session, identity, organization_id, invitation_id, now):
    """A pending invitation of the organization, locked, for an Owner/Admin to resend or revoke."""
    _caller(session, organization_id, identity, Action.MANAGE_INVITATIONS)
    invitation = _invitation_in(session, organization_id, invitation_id, lock=True)
    _check_pending(invitation, now)
    return invitation


def resend_invitation(store, identity, organization_id, invitation_id, now=None):
    """Send again and renew the expiry (Owner/Admin); only 10 minutes or more after the last send."""
    now = now or utcnow()
    with store.write() as session:
        invitation = _pending_invitation_to_manage(session, identity, organization_id, invitation_id, now)
        retry_at = as_utc(invitation.last_sent_at) + RESEND_AFTER
        if now < retry_at:
            raise Conflict(f"This invitation was last sent at {iso(invitation.last_sent_at)}; it can be resent "
                           f"from {iso(retry_at)} (10 minutes after the last send).", code="resend_too_early",
                           details={"retry_at": iso(retry_at), "last_sent_at": iso(invitation.last_sent_at)})
        before = {"last_sent_at": iso(invitation.last_sent_at), "expires_at": iso(invitation.expires_at)}
        invitation.last_sent_at, invitation.expires_at = now, now + INVITATION_TTL
        invitation.send_count += 1
        outbox.record(session, OutboxEvent, change_event(
            "invitation.resent", "update", organization_id, identity.as_actor(), "invitation", invitation.id,
            before=before, after={"last_sent_at": iso(now), "expires_at": iso(invitation.expires_at)}))
        return invitation_dict(invitation, now)


def revoke_invitation(store, identity, organization_id, invitation_id, now=None):
    now = now or utcnow()
    with store.write() as session:
        invitation = _pending_invitation_to_manage(session, identity, organization_id, invitation_id, now)
        return _end_invitation(session, invitation, "revoked", identity.as_actor(), now)


def _end_invitation(session, invitation, status, actor, now, **after):
    """Move a pending invitation (callers have checked it is) to its final status, audited."""
    invitation.status, invitation.ended_at = status, now
    outbox.record(session, OutboxEvent, change_event(
        f"invitation.{status}", "update", invitation.organization_id, actor, "invitation", invitation.id,
        before={"status": PENDING}, after=dict({"status": status}, **after)))
    return invitation_dict(invitation, now)


def _addressed_invitation(session, identity, invitation_id):
    """An invitation the caller may answer: NotFound if unknown, Forbidden if sent to another email."""
    invitation = (session.get(Invitation, invitation_id, with_for_update=True)
                  if isinstance(invitation_id, str) else None)
    if invitation is None:
        raise NotFound("There is no such invitation.", code="invitation_not_found", field="invitation_id")
    if invitation.email != (identity.email or "").strip().lower():
        raise Forbidden("This invitation was sent to another email address; sign in with that address to "
                        "answer it.", code="invitation_not_for_you")
    return invitation


def accept_invitation(store, identity, invitation_id, now=None):
    """Join the organization with the invitation's roles (its agent list travels in the event)."""
    now = now or utcnow()
    with store.write() as session:
        invitation = _addressed_invitation(session, identity, invitation_id)
        _check_pending(invitation, now)
        organization_id = invitation.organization_id
        _lock_organization(session, organization_id)
        if _member(session, organization_id, identity.id) is not None:
            raise Conflict("You are already a member of this organization.", code="already_member")
        membership = Membership(organization_id=organization_id, user_id=identity.id, joined_at=now)
        membership.role_rows = [MemberRole(organization_id=organization_id, user_id=identity.id, role=r)
                                for r in invitation.roles]
        session.add(membership)
        invitation.accepted_by = identity.id
        return _end_invitation(session, invitation, "accepted", identity.as_actor(), now, user_id=identity.id,
                               roles=invitation.roles, agent_ids=invitation.agent_ids)


def reject_invitation(store, identity, invitation_id, now=None):
    now = now or utcnow()
    with store.write() as session:
        invitation = _addressed_invitation(session, identity, invitation_id)
        _check_pending(invitation, now)
        return _end_invitation(session, invitation, "rejected", identity.as_actor(), now)


def expire_due_invitations(store, now=None):
    """The periodic job: record the expiry of every pending invitation past its date (actor `system`)."""
    now = now or utcnow()
    with store.write() as session:
        return _expire_due(session, now)


def _expire_due(session, now, *conditions, batch=500):
    query = (select(Invitation).where(Invitation.status == PENDING, Invitation.expires_at <= now, *conditions)
             .order_by(Invitation.expires_at).limit(batch))
    if _is_postgres(session):
        query = query.with_for_update(skip_locked=True)   # replicas running the job split the work
    invitations = session.scalars(query).all()
    for invitation in invitations:
        _end_invitation(session, invitation, "expired", SYSTEM_ACTOR, now)
    return len(invitations)


def _status_condition(status, now):
    if status == PENDING:
        return (Invitation.status == PENDING) & (Invitation.expires_at > now)
    if status == "expired":
        return or_(Invitation.status == "expired",
                   (Invitation.status == PENDING) & (Invitation.expires_at <= now))
    return Invitation.status == status


def _check_status_filter(status, allowed):
    if status in (None, ""):
        return None
    if status not in allowed:
        raise ValidationFailed(f"status must be one of {', '.join(allowed)}.", code="invalid_status", field="status")
    return status


def list_invitations(store, identity, organization_id, status=None, q=None, cursor=None, limit=None, now=None):
    """The organization's invitations, newest first (Owner/Admin): filter by status, search by email."""
    now = now or utcnow()
    status, q = _check_status_filter(status, INVITATION_STATUSES), _check_query_text(q)
    with store.read() as session:
        _caller(session, organization_id, identity, Action.MANAGE_INVITATIONS)
        query = select(Invitation).where(Invitation.organization_id == organization_id)
        if status:
            query = query.where(_status_condition(status, now))
        if q:
            query = query.where(Invitation.email.like(_like(q), escape="\\"))
        page = page_of_query(session, query.order_by(Invitation.created_at.desc(), Invitation.id), cursor, limit)
        page["items"] = [invitation_dict(i, now) for i in page["items"]]
        return page


def my_invitations(store, identity, status=None, cursor=None, limit=None, now=None):
    """Invitations addressed to the caller's email, newest first."""
    now = now or utcnow()
    status = _check_status_filter(status, INVITATION_STATUSES)
    with store.read() as session:
        query = select(Invitation).where(Invitation.email == (identity.email or "").strip().lower())
        if status:
            query = query.where(_status_condition(status, now))
        page = page_of_query(session, query.order_by(Invitation.created_at.desc(), Invitation.id), cursor, limit)
        page["items"] = [invitation_dict(i, now) for i in page["items"]]
        return page


def invitation_dict(invitation, now):
    return dict(invitation_schema.dump(invitation), status=effective_status(invitation, now))


def invitation_email(invitation, app_url):
    """Subject and body of the email that carries an invitation."""
    link = f"{app_url.rstrip('/')}/v1/invitations/{invitation['id']}/accept"
    subject = f"You are invited to {invitation['organization_name']}"
    body = (f"{invitation['invited_by_email']} invited you to join {invitation['organization_name']} as "
            f"{', '.join(invitation['roles'])}.\n\nAccept (signed in as {invitation['email']}): POST {link}\n"
            f"The invitation expires at {invitation['expires_at']}.\n")
    return subject, body


# ---- billing transfers -------------------------------------------------------------------------------
def start_billing_transfer(store, identity, organization_id, to_user_id, now=None):
    """Offer Billing to another member; only an Owner who holds Billing; one pending per organization."""
    now = now or utcnow()
    if not isinstance(to_user_id, str) or not to_user_id.strip():
        raise ValidationFailed("to_user_id is required.", code="to_user_id_required", field="to_user_id")
    try:
        with store.write() as session:
            _lock_organization(session, organization_id)
            caller = _caller(session, organization_id, identity)
            if not {OWNER, BILLING} <= set(caller.roles):
                raise Forbidden("Only an Owner who holds Billing can hand Billing over.", code="not_billing_owner")
            if to_user_id == identity.id:
                raise ValidationFailed("You already hold Billing; choose another member.",
                                       code="already_billing_holder", field="to_user_id")
            if _member(session, organization_id, to_user_id) is None:
                raise member_not_found(field="to_user_id")
            _check_no_pending_transfer(session, organization_id)
            transfer = BillingTransfer(id=str(uuid.uuid4()), organization_id=organization_id,
                                       from_user_id=identity.id, to_user_id=to_user_id, status=PENDING,
                                       created_at=now)
            session.add(transfer)
            session.flush()
            outbox.record(session, OutboxEvent, change_event(
                "billing_transfer.started", "create", organization_id, identity.as_actor(), "billing_transfer",
                transfer.id, after={"from_user_id": identity.id, "to_user_id": to_user_id, "status": PENDING}))
            return billing_transfer_schema.dump(transfer)
    except IntegrityError:   # a concurrent start won the one pending slot
        with store.read() as session:
            _check_no_pending_transfer(session, organization_id)
        raise


def _check_no_pending_transfer(session, organization_id):
    pending = session.scalar(select(BillingTransfer).where(
        BillingTransfer.organization_id == organization_id, BillingTransfer.status == PENDING))
    if pending is not None:
        raise Conflict("A billing transfer is already pending in this organization.",
                       code="billing_transfer_pending", details={"billing_transfer_id": pending.id})


def _pending_transfer(session, identity, organization_id, transfer_id, party):
    _lock_organization(session, organization_id)
    _caller(session, organization_id, identity)
    transfer = session.get(BillingTransfer, transfer_id) if isinstance(transfer_id, str) else None
    if transfer is None or transfer.organization_id != organization_id:
        raise NotFound("There is no such billing transfer in this organization.",
                       code="billing_transfer_not_found", field="transfer_id")
    if party == "recipient" and transfer.to_user_id != identity.id:
        raise Forbidden("Only the member this transfer is addressed to can accept or decline it.",
                        code="not_transfer_recipient")
    if party == "initiator" and transfer.from_user_id != identity.id:
        raise Forbidden("Only the member who started this transfer can cancel it.", code="not_transfer_initiator")
    if transfer.status != PENDING:
        raise Conflict(f"This billing transfer is no longer pending: it was {transfer.status}.",
                       code="billing_transfer_not_pending", details={"status": transfer.status})
    return transfer


def _end_transfer(session, transfer, status, actor, now, before=None, after=None):
    transfer.status, transfer.ended_at = status, now
    outbox.record(session, OutboxEvent, change_event(
        f"billing_transfer.{status}", "update", transfer.organization_id, actor, "billing_transfer", transfer.id,
        before=dict({"status": PENDING}, **(before or {})), after=dict({"status": status}, **(after or {}))))
    return billing_transfer_schema.dump(transfer)


def accept_billing_transfer(store, identity, organization_id, transfer_id, now=None):
    """The recipient takes Billing over: it leaves the initiator and joins the recipient's roles."""
    now = now or utcnow()
    with store.write() as session:
        transfer = _pending_transfer(session, identity, organization_id, transfer_id, "recipient")
        giver = _member(session, organization_id, transfer.from_user_id)
        receiver = _member(session, organization_id, identity.id)
        _set_roles(session, giver, set(giver.roles) - {BILLING})
        _set_roles(session, receiver, set(receiver.roles) | {BILLING})
        return _end_transfer(session, transfer, "accepted", identity.as_actor(), now,
                             before={"billing_holder": giver.user_id}, after={"billing_holder": receiver.user_id})


def decline_billing_transfer(store, identity, organization_id, transfer_id, now=None):
    now = now or utcnow()
    with store.write() as session:
        transfer = _pending_transfer(session, identity, organization_id, transfer_id, "recipient")
        return _end_transfer(session, transfer, "declined", identity.as_actor(), now)


def cancel_billing_transfer(store, identity, organization_id, transfer_id, now=None):
    now = now or utcnow()
    with store.write() as session:
        transfer = _pending_transfer(session, identity, organization_id, transfer_id, "initiator")
        return _end_transfer(session, transfer, "cancelled", identity.as_actor(), now)


def _cancel_transfers_to(session, identity, organization_id, user_id, now):
    """A member who leaves or is removed cannot receive Billing any more: their pending offer ends."""
    transfers = session.scalars(select(BillingTransfer).where(
        BillingTransfer.organization_id == organization_id, BillingTransfer.to_user_id == user_id,
        BillingTransfer.status == PENDING)).all()
    for transfer in transfers:
        _end_transfer(session, transfer, "cancelled", identity.as_actor(), now,
                      after={"reason": "recipient_no_longer_a_member"})


def list_billing_transfers(store, identity, organization_id, status=None, cursor=None, limit=None):
    """Owners and the Billing holder see every transfer; other members the ones they are party to."""
    status = _check_status_filter(status, TRANSFER_STATUSES)
    with store.read() as session:
        caller = _caller(session, organization_id, identity)
        query = select(BillingTransfer).where(BillingTransfer.organization_id == organization_id)
        if not set(caller.roles) & {OWNER, BILLING}:
            query = query.where(or_(BillingTransfer.from_user_id == identity.id,
                                    BillingTransfer.to_user_id == identity.id))
        if status:
            query = query.where(BillingTransfer.status == status)
        page = page_of_query(session, query.order_by(BillingTransfer.created_at.desc(), BillingTransfer.id),
                             cursor, limit)
        page["items"] = billing_transfer_schema.dump(page["items"], many=True)
        return page
