"""Which budget group each member is in, as the members service's read model receives it
(common.readmodels, kind `budget_group_members`): the member list shows it.

Every change of a member's group (put in, moved, taken out, their group deleted, the member gone from
the organization) raises the placement's version (`next_version`, a row never deleted) and attaches
its whole new state to the event that records the change; taken out is a state with no group. Changes
of one organization's placements run under the group's row lock or the member's row lock, and the
version row is itself locked, so two changes never share a version. The same states are served whole,
page by page, to fill or rebuild the read model (`snapshot_group_members`).
"""
from sqlalchemy import and_, select

from common.errors import ValidationFailed
from common.paging import Keyset, asc, check_limit, keyset_rows
from common.readmodels import BUDGET_GROUP_MEMBERS, SNAPSHOT_PAGE, budget_group_member_state, raise_version
from services.credits.models import BudgetGroupMember, BudgetGroupMemberVersion

MAX_SNAPSHOT_PAGE = 1000
BY_MEMBER = Keyset("budget_group_member_states", asc("organization_id", BudgetGroupMember.organization_id),
                   asc("user_id", BudgetGroupMember.user_id))


def next_version(session, organization_id, user_id):
    """Raise the placement's version and return it (1 for its first change)."""
    return raise_version(session, BudgetGroupMemberVersion, organization_id=organization_id, user_id=user_id)


def changed_state(session, organization_id, user_id, budget_group_id):
    """The state of a member just put in `budget_group_id` (None: taken out of their group), newly versioned."""
    return budget_group_member_state(organization_id, user_id, budget_group_id,
                                     next_version(session, organization_id, user_id))


def carried(*states):
    """The `state` of an event that changed these placements."""
    return {BUDGET_GROUP_MEMBERS: list(states)}


def snapshot_group_members(store, after=None, limit=None):
    """One page of the state of every member in a group, ordered by (organization_id, user_id), from after
    `after` (the previous page's `next_after`); `next_after` is None on the last page."""
    limit = check_limit(limit, default=SNAPSHOT_PAGE, maximum=MAX_SNAPSHOT_PAGE)
    if after is not None and (not isinstance(after, list | tuple) or len(after) != 2
                              or not all(isinstance(part, str) for part in after)):
        raise ValidationFailed("after must be the next_after of the previous page: [organization_id, user_id].",
                               code="invalid_type", field="after")
    query = select(BudgetGroupMember, BudgetGroupMemberVersion.version).outerjoin(BudgetGroupMemberVersion, and_(
        BudgetGroupMemberVersion.organization_id == BudgetGroupMember.organization_id,
        BudgetGroupMemberVersion.user_id == BudgetGroupMember.user_id))
    with store.read() as session:
        rows, last = keyset_rows(session, query, BY_MEMBER, None if after is None else tuple(after), limit)
        items = [budget_group_member_state(m.organization_id, m.user_id, m.group_id, version or 0)
                 for m, version in rows]
    return {"items": items, "next_after": list(last) if last else None}
