"""Budget groups (product rules §5): a monthly limit per member and a limit on how many Builders a group holds.
The monthly period and what a member may still spend are allowances.py.

Plain functions. A command's runs in the open write transaction the command pipeline gives it (common.commands,
common.unit_of_work), with the fields its declared contract (common.contracts.budgets.BudgetGroupInput) loaded;
`add_member`, which looks members' roles up (perhaps asking members) between reading and writing, receives the
command's UnitOfWork instead. Reads take a `Store`. Who may manage groups (Owner/Admin) is checked by the pipeline
first; members' roles come from a lookup the entrypoint passes in (`add_member`: the memberships read model). A
member is in at most one group: the primary key of budget_group_members is (organization, user).
"""
import uuid

from sqlalchemy import func, select

from common.auth import is_valid_user_id
from common.errors import Conflict, NotFound, member_not_found
from common.events import changed_fields
from common.money import format_amount
from common.paging import Keyset, asc, check_limit, keyset_page
from common.permissions import Role
from common.timeutil import iso, utcnow
from services.credits.allowances import budget_left, period_bounds, period_of
from services.credits.events import (
    BUDGET_GROUP_CREATED,
    BUDGET_GROUP_DELETED,
    BUDGET_GROUP_UPDATED,
    MEMBER_BUDGET_GROUP_CHANGED,
    emit,
)
from services.credits.group_member_states import carried, changed_state
from services.credits.models import BudgetGroup, BudgetGroupMember, MemberUsage
from services.credits.schemas import budget_group_schema, group_membership_schema

GROUP_FIELDS = ("name", "monthly_limit", "builder_limit")
ASSIGN_ATTEMPTS = 3     # roles lookups per assignment before giving up on a group that keeps changing
GROUPS_BY_NAME = Keyset("budget_groups", asc("name", func.lower(BudgetGroup.name)), asc("id", BudgetGroup.id))
GROUP_MEMBERS = Keyset("budget_group_members", asc("user_id", BudgetGroupMember.user_id))


def budget_group_not_found():
    return NotFound("Budget group not found.", code="budget_group_not_found", field="budget_group_id")


class GroupChanged(Exception):
    """The group's members or builder limit changed between the roles lookup and the assignment."""


# ---- groups ----------------------------------------------------------------------------------------
def _shown(fields):
    """Field values as events and answers show them (amounts as strings)."""
    return {k: format_amount(v) if k == "monthly_limit" else v for k, v in fields.items()}


def _group(session, organization_id, group_id, for_update=False):
    if not isinstance(group_id, str) or len(group_id) > 64:
        raise budget_group_not_found()
    group = session.get(BudgetGroup, group_id, with_for_update=for_update, populate_existing=for_update)
    if group is None or group.organization_id != organization_id:
        raise budget_group_not_found()
    return group


def _member_count(session, group_id):
    return session.scalar(select(func.count()).where(BudgetGroupMember.group_id == group_id))


def group_dict(group, member_count):
    return budget_group_schema.dump({c.key: getattr(group, c.key) for c in BudgetGroup.__table__.columns}
                                    | {"member_count": member_count})


def create_group(session, identity, organization_id, fields, now=None):
    """A new group of the loaded `fields` (name trimmed; monthly_limit in units or None: no limit;
    builder_limit or None)."""
    now = now or utcnow()
    fields = dict({"monthly_limit": None, "builder_limit": None}, **fields)
    group = BudgetGroup(id=str(uuid.uuid4()), organization_id=organization_id, created_by=identity.id,
                        created_at=now, updated_at=now, **fields)
    session.add(group)
    emit(session, BUDGET_GROUP_CREATED, "create", organization_id, identity, "budget_group", group.id,
         after=_shown(fields), occurred_at=now)
    return group_dict(group, 0)


def list_groups(store, organization_id, cursor=None, limit=None):
    """Groups by name with their member count; a group without a monthly limit shows "No limit"."""
    count = (select(func.count()).where(BudgetGroupMember.group_id == BudgetGroup.id)
             .correlate(BudgetGroup).scalar_subquery())
    query = select(BudgetGroup, count).where(BudgetGroup.organization_id == organization_id)
    with store.read() as session:
        return keyset_page(session, query, GROUPS_BY_NAME, cursor, limit, dump=lambda row: group_dict(*row))


def get_group(store, organization_id, group_id, cursor=None, limit=None, now=None):
    """The group with each member's usage this period against its limit (members keyset-paged by id)."""
    now = now or utcnow()
    limit = check_limit(limit)
    GROUP_MEMBERS.position(cursor)          # a bad cursor is refused before the group is looked up
    with store.read() as session:
        group = _group(session, organization_id, group_id)
        query = (select(BudgetGroupMember, MemberUsage.used)
                 .outerjoin(MemberUsage, (MemberUsage.organization_id == BudgetGroupMember.organization_id)
                            & (MemberUsage.user_id == BudgetGroupMember.user_id)
                            & (MemberUsage.period == period_of(now)))
                 .where(BudgetGroupMember.group_id == group.id))
        # The members are a page like every list's: {"items", "next_cursor"}.
        members = keyset_page(session, query, GROUP_MEMBERS, cursor, limit)
        answer = group_dict(group, _member_count(session, group.id))
    start, resets_at = period_bounds(now)
    members["items"] = [{"user_id": member.user_id, "used": format_amount(used or 0), "limit": answer["monthly_limit"],
                         "remaining": format_amount(budget_left(group.monthly_limit, used or 0)),
                         "added_at": iso(member.added_at)} for member, used in members["items"]]
    answer.update(period=period_of(now), period_start=iso(start), resets_at=iso(resets_at), members=members)
    return answer


def update_group(session, identity, organization_id, group_id, fields, now=None):
    """Change name or limits (the loaded `fields` given). A new limit applies from the next spend on; past
    usage is kept as it was."""
    now = now or utcnow()
    group = _group(session, organization_id, group_id, for_update=True)
    before, after = changed_fields({k: getattr(group, k) for k in fields}, fields)
    if before:
        for name, value in after.items():
            setattr(group, name, value)
        group.updated_at = now
        emit(session, BUDGET_GROUP_UPDATED, "update", organization_id, identity, "budget_group", group.id,
             before=_shown(before), after=_shown(after), occurred_at=now)
    return group_dict(group, _member_count(session, group.id))


def delete_group(session, identity, organization_id, group_id, now=None):
    """Delete the group; its members are no longer capped by it."""
    now = now or utcnow()
    group = _group(session, organization_id, group_id, for_update=True)
    user_ids = sorted(session.scalars(select(BudgetGroupMember.user_id)
                                      .where(BudgetGroupMember.group_id == group.id)).all())
    session.execute(BudgetGroupMember.__table__.delete().where(BudgetGroupMember.group_id == group.id))
    session.delete(group)
    # Its members are in no group now: each one's new state rides on the one event.
    states = [changed_state(session, organization_id, user_id, None) for user_id in user_ids]
    emit(session, BUDGET_GROUP_DELETED, "delete", organization_id, identity, "budget_group", group.id,
         before=dict(_shown({k: getattr(group, k) for k in GROUP_FIELDS}), member_count=len(user_ids)),
         occurred_at=now, state=carried(*states))


# ---- members of groups -----------------------------------------------------------------------------
def add_member(uow, identity, organization_id, group_id, user_id, roles_of, now=None):
    """Put a member in the group (out of any other); returns {"membership", "created"}. `uow` is the
    command's UnitOfWork (common.unit_of_work): the roles lookup may ask members, outside any write transaction.

    `roles_of(user_ids)` answers {user_id: [role values]} for those of `user_ids` who are members of
    the organization (from the memberships read model). The builder limit needs the roles of the group's
    members: they are fetched first, and the assignment (under the group's lock) checks that the group
    is still what they were fetched for; if another assignment slipped in, they are fetched again."""
    if not is_valid_user_id(user_id):
        raise member_not_found()
    user_roles = roles_of([user_id]).get(user_id)
    if user_roles is None:
        raise member_not_found()
    is_builder = Role.BUILDER.value in user_roles
    for _ in range(ASSIGN_ATTEMPTS):
        snapshot = group_snapshot(uow, organization_id, group_id)
        builders = 0
        if is_builder and snapshot["builder_limit"] is not None:
            others = [u for u in snapshot["member_ids"] if u != user_id]
            builders = sum(Role.BUILDER.value in roles for roles in roles_of(others).values())
        try:
            with uow.write() as session:
                membership, created = assign_member(session, identity, organization_id, group_id, user_id,
                                                    is_builder, builders, snapshot, now=now)
            return {"membership": membership, "created": created}
        except GroupChanged:
            continue
    raise Conflict("The budget group changed while this member was being added; try again.",
                   code="budget_group_busy")


def group_snapshot(store, organization_id, group_id):
    """The group's builder limit and members: what the members' roles are looked up for. `store` is anything
    that opens a read transaction with `read()`: a Store, or the command's UnitOfWork."""
    with store.read() as session:
        group = _group(session, organization_id, group_id)
        ids = session.scalars(select(BudgetGroupMember.user_id).where(BudgetGroupMember.group_id == group.id)).all()
        return {"builder_limit": group.builder_limit, "member_ids": sorted(ids)}


def assign_member(session, identity, organization_id, group_id, user_id, is_builder, builders_in_group, snapshot,
                  now=None):
    """Put a member in the group (moving them out of another one). A Builder is refused when the group
    already holds `builder_limit` Builders. `builders_in_group` was counted from the members' roles in
    `snapshot`; if the group changed since, GroupChanged (add_member looks the roles up again).
    Returns (membership, created)."""
    now = now or utcnow()
    group = _group(session, organization_id, group_id, for_update=True)
    current = session.get(BudgetGroupMember, (organization_id, user_id), with_for_update=True)
    if current is not None and current.group_id == group.id:
        return membership_dict(current), False
    if is_builder and group.builder_limit is not None:
        ids = session.scalars(select(BudgetGroupMember.user_id)
                              .where(BudgetGroupMember.group_id == group.id)).all()
        if group.builder_limit != snapshot["builder_limit"] or sorted(ids) != snapshot["member_ids"]:
            raise GroupChanged()
        if builders_in_group >= group.builder_limit:
            raise Conflict(f"The group \"{group.name}\" may hold at most {group.builder_limit} Builder(s) and "
                           f"is full.", code="builder_limit_reached", field="user_id",
                           details={"builder_limit": group.builder_limit, "builders": builders_in_group})
    previous = current.group_id if current is not None else None
    if current is None:
        current = BudgetGroupMember(organization_id=organization_id, user_id=user_id)
        session.add(current)
    current.group_id, current.added_by, current.added_at = group.id, identity.id, now
    emit(session, MEMBER_BUDGET_GROUP_CHANGED, "update", organization_id, identity, "member", user_id,
         before={"budget_group_id": previous}, after={"budget_group_id": group.id}, occurred_at=now,
         state=carried(changed_state(session, organization_id, user_id, group.id)))
    return membership_dict(current), True


def unassign_member(session, identity, organization_id, group_id, user_id, now=None):
    """Take a member out of the group (they are then capped by no group)."""
    now = now or utcnow()
    group = _group(session, organization_id, group_id, for_update=True)
    current = session.get(BudgetGroupMember, (organization_id, user_id), with_for_update=True) \
        if isinstance(user_id, str) else None
    if current is None or current.group_id != group.id:
        raise NotFound("This member is not in the budget group.", code="not_in_budget_group", field="user_id")
    session.delete(current)
    emit(session, MEMBER_BUDGET_GROUP_CHANGED, "update", organization_id, identity, "member", user_id,
         before={"budget_group_id": group.id}, after={"budget_group_id": None}, occurred_at=now,
         state=carried(changed_state(session, organization_id, user_id, None)))


def forget_member(session, event):
    """A member left or was removed (their event): out of their group, audited as a consequence of it."""
    organization_id, user_id = event["organization_id"], event["target"]["id"]
    current = session.get(BudgetGroupMember, (organization_id, user_id))
    if current is None:
        return False
    session.delete(current)
    emit(session, MEMBER_BUDGET_GROUP_CHANGED, "update", organization_id, event["actor"], "member", user_id,
         before={"budget_group_id": current.group_id}, after={"budget_group_id": None},
         correlation_id=event["event_id"], state=carried(changed_state(session, organization_id, user_id, None)))
    return True


def membership_dict(membership):
    return group_membership_schema.dump(membership)
