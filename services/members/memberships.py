"""Memberships and their roles: the founder, membership lookups, the member list, role edits,
removing a member and leaving (product rules §2 roles and ownership, §3 members). Also the checks the
invitations and billing-transfer modules share with these: who the caller is in an organization and
what their roles allow, the organization lock, the ownership rules for granting roles, the status that
ends a billing transfer (a member who leaves ends the transfers offered to them).

The functions that change memberships receive the command's open write transaction (`session`; the
command pipeline, common.commands, checked the caller's right, commits, and runs the command again when
its commit loses a race on a unique key) and first lock the organization's membership rows
(`lock_organization`), so that invariants counted across rows (at least one Owner, exactly one
Billing holder, one pending transfer) hold when two requests race on PostgreSQL; SQLite's
BEGIN IMMEDIATE already serializes writers. The lock also orders the versions of the memberships it
changes: each change attaches the membership's new state to its event (membership_states.py).
"""
from sqlalchemy import and_, func, or_, select

from common.errors import Conflict, ValidationFailed, member_not_found, organization_not_found
from common.paging import keyset_page
from common.permissions import ROLE_ORDER, Action, sort_roles
from common.timeutil import utcnow
from services.members.events import (
    MEMBER_ADDED,
    MEMBER_LEFT,
    MEMBER_REMOVED,
    MEMBER_ROLES_CHANGED,
    emit,
)
from services.members.member_order import members_in_order
from services.members.member_rules import (
    BILLING,
    FOUNDER_ROLES,
    OWNER,
    caller_membership,
    check_billing_not_granted,
    check_grant,
    check_query_text,
    email_like_pattern,
    end_transfer,
    find_member,
    like_pattern,
    lock_organization,
    parse_roles,
)
from services.members.membership_states import carried, changed_state, current_state, removed_state
from services.members.models import PENDING, BillingTransfer, BudgetGroupMemberFact, MemberRole, Membership, User
from services.members.schemas import member_schema, membership_schema

MEMBER_SORTS = ("name", "joined_at", "role")
# Leaving while holding Billing; in an Individual organization (its one member holds Billing) the
# service answers individual_organization instead (MembersService.remove_member).
BILLING_HOLDER_CANNOT_LEAVE = "billing_holder_cannot_leave"


# ---- founders and lookups ----------------------------------------------------------------------------
def add_founder(session, identity, organization_id):
    """Make the caller the first member of a new organization, holding Owner and Billing.

    Idempotent for the founder; refused once the organization has any other member, so this cannot be
    used to join an existing organization. The answer carries the founder's membership state too, so
    orgs can apply it to its read model at once (the new organization is readable by its founder). A
    concurrent retry of this very call may insert it first: run again, this one finds it.
    """
    lock_organization(session, organization_id)
    if session.scalar(select(func.count()).select_from(Membership).where(
            Membership.organization_id == organization_id, Membership.user_id != identity.id)):
        raise Conflict("This organization already has members.", code="organization_has_members")
    existing = session.get(Membership, (organization_id, identity.id))
    if existing is not None:
        return _founder_answer(session, existing, current_state(session, existing))
    membership = Membership(organization_id=organization_id, user_id=identity.id, joined_at=utcnow())
    membership.role_rows = [MemberRole(organization_id=organization_id, user_id=identity.id, role=r)
                            for r in FOUNDER_ROLES]
    session.add(membership)
    session.flush()
    state = changed_state(session, membership)
    emit(session, MEMBER_ADDED, "create", organization_id, identity, "member", identity.id,
         after={"user_id": identity.id, "email": identity.email, "roles": list(FOUNDER_ROLES)},
         state=carried(state))
    return _founder_answer(session, membership, state)


def _founder_answer(session, membership, state):
    return dict(membership_dict(session, membership), state=state)


def membership_of(store, organization_id, user_id):
    """The user's membership in the organization; NotFound when there is none."""
    with store.read() as session:
        membership = session.get(Membership, (organization_id, user_id))
        if membership is None:
            raise organization_not_found()
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


def membership_dict(session, membership, member_count=None):
    if member_count is None:
        member_count = session.scalar(select(func.count()).select_from(Membership)
                                      .where(Membership.organization_id == membership.organization_id))
    return dict(membership_schema.dump(membership), member_count=member_count)


# ---- members -----------------------------------------------------------------------------------------
def list_members(store, identity, organization_id, q=None, role=None, sort=None, cursor=None, limit=None):
    """Members with name, email, roles, joined date: searched by name or email, filtered by role,
    sorted by name, joined_at or role (`-` in front for descending). Any member may list."""
    q = check_query_text(q)
    if role not in (None, "") and role not in ROLE_ORDER:
        raise ValidationFailed(f"role must be one of {', '.join(ROLE_ORDER)}.", code="unknown_role", field="role")
    sort = sort or "name"
    if not isinstance(sort, str) or sort.lstrip("-") not in MEMBER_SORTS:
        raise ValidationFailed(f"sort must be one of {', '.join(MEMBER_SORTS)} (prefix - for descending).",
                               code="invalid_sort", field="sort")
    with store.read() as session:
        query = (select(Membership, User, BudgetGroupMemberFact.budget_group_id)
                 .join(User, User.id == Membership.user_id)
                 .outerjoin(BudgetGroupMemberFact, and_(
                     BudgetGroupMemberFact.organization_id == Membership.organization_id,
                     BudgetGroupMemberFact.user_id == Membership.user_id))
                 .where(Membership.organization_id == organization_id))
        if q:
            query = query.where(or_(func.lower(User.name).like(like_pattern(q), escape="\\"),
                                    User.email.like(email_like_pattern(q), escape="\\")))
        if role:
            query = query.where(Membership.role_rows.any(MemberRole.role == role))
        return keyset_page(session, query, members_in_order(sort), cursor, limit, dump=lambda row: member_dict(*row))


def edit_roles(session, identity, organization_id, user_id, roles):
    """Set a member's roles (the pipeline checked the caller may edit roles; what they may grant is
    decided here from their roles under the lock). Billing is kept if held and never granted here."""
    wanted = parse_roles(roles)
    lock_organization(session, organization_id)
    caller = caller_membership(session, organization_id, identity)
    target = find_member(session, organization_id, user_id)
    if target is None:
        raise member_not_found()
    before = set(target.roles)
    check_billing_not_granted(wanted, before)
    after = wanted | (before & {BILLING})
    check_grant(set(caller.roles), before, after, target.user_id == identity.id)
    if OWNER in before and OWNER not in after and _owner_count(session, organization_id) == 1:
        raise _last_owner()
    if after != before:
        state = set_roles(session, target, after)
        emit(session, MEMBER_ROLES_CHANGED, "update", organization_id, identity, "member", target.user_id,
             before={"roles": sort_roles(before)}, after={"roles": sort_roles(after)}, state=carried(state))
    group = session.get(BudgetGroupMemberFact, (organization_id, target.user_id))
    return member_dict(target, session.get(User, target.user_id), group.budget_group_id if group else None)


def remove_member(session, identity, organization_id, user_id, now=None):
    """Remove a member (Owner/Admin), or leave when `user_id` is the caller's own id (any member: the
    pipeline checked only membership, so the right to remove others is decided here)."""
    now = now or utcnow()
    lock_organization(session, organization_id)
    if user_id == identity.id:
        membership = caller_membership(session, organization_id, identity)
        roles = set(membership.roles)
        if BILLING in roles:
            raise Conflict("You hold Billing: hand it over with a billing transfer before leaving.",
                           code=BILLING_HOLDER_CANNOT_LEAVE)
        if OWNER in roles and _owner_count(session, organization_id) == 1:
            raise Conflict("You are the only Owner: make another member Owner before leaving.", code="last_owner")
        event_type = MEMBER_LEFT
    else:
        caller = caller_membership(session, organization_id, identity, Action.REMOVE_MEMBERS)
        membership = find_member(session, organization_id, user_id)
        if membership is None:
            raise member_not_found()
        roles = set(membership.roles)
        check_grant(set(caller.roles), roles, roles, False)   # an Admin may not remove an Owner/Admin
        if BILLING in roles:
            raise Conflict("This member holds Billing: it must be handed over with a billing transfer "
                           "before they can be removed.", code="billing_holder")
        if OWNER in roles and _owner_count(session, organization_id) == 1:
            raise _last_owner()
        event_type = MEMBER_REMOVED
    _cancel_transfers_to(session, identity, organization_id, membership.user_id, now)
    user = session.get(User, membership.user_id)
    session.delete(membership)
    state = removed_state(session, organization_id, membership.user_id)
    emit(session, event_type, "delete", organization_id, identity, "member", membership.user_id,
         before={"email": user.email, "name": user.name, "roles": sort_roles(roles)}, state=carried(state))
    return {"organization_id": organization_id, "user_id": membership.user_id, "left": event_type == MEMBER_LEFT}


def set_roles(session, membership, roles):
    """Give the membership exactly `roles` (the caller holds the organization lock); returns its new
    state, for the event that records the change."""
    for row in list(membership.role_rows):
        if row.role not in roles:
            membership.role_rows.remove(row)
    held = set(membership.roles)
    for role in sort_roles(roles):
        if role not in held:
            membership.role_rows.append(MemberRole(organization_id=membership.organization_id,
                                                   user_id=membership.user_id, role=role))
    session.flush()
    return changed_state(session, membership)


def member_dict(membership, user, budget_group_id=None):
    return member_schema.dump({
        "user_id": membership.user_id, "name": user.name, "email": user.email, "roles": membership.roles,
        # Budget groups belong to the credits service: which one a member is in comes from the read model
        # of them it keeps (models.BudgetGroupMemberFact, fed by credits' events).
        "budget_group_id": budget_group_id, "joined_at": membership.joined_at})


def _owner_count(session, organization_id):
    return session.scalar(select(func.count()).select_from(MemberRole).where(
        MemberRole.organization_id == organization_id, MemberRole.role == OWNER))


def _last_owner():
    return Conflict("An organization must keep at least one Owner.", code="last_owner")


def _cancel_transfers_to(session, identity, organization_id, user_id, now):
    """A member who leaves or is removed cannot receive Billing any more: their pending offer ends."""
    transfers = session.scalars(select(BillingTransfer).where(
        BillingTransfer.organization_id == organization_id, BillingTransfer.to_user_id == user_id,
        BillingTransfer.status == PENDING)).all()
    for transfer in transfers:
        end_transfer(session, transfer, "cancelled", identity, now, after={"reason": "recipient_no_longer_a_member"})
