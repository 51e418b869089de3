"""Versions and full states of memberships: what other services' read models of them receive
(common.readmodels, docs/decisions.md 76).

Every change to a membership raises its version (`next_version`) and attaches the membership's whole new
state to the event that records the change; a removal attaches a tombstone (no roles, inactive, a newer
version). Callers change memberships under the organization lock (member_rules.lock_organization), so two
changes of one organization never race for a version. The same states are served whole, page by page,
for filling and rebuilding read models (`snapshot_memberships`), and a few at a time for a read model to
confirm a refusal before giving it (`membership_states`).
"""
from sqlalchemy import and_, select

from common.auth import is_valid_user_id
from common.errors import ValidationFailed
from common.paging import Keyset, asc, check_limit, keyset_rows
from common.permissions import sort_roles
from common.readmodels import MEMBERSHIPS, SNAPSHOT_PAGE, membership_state, raise_version
from services.members.models import Membership, MembershipVersion

MAX_SNAPSHOT_PAGE = 1000
MAX_STATES_LOOKUP = 500
BY_MEMBERSHIP = Keyset("memberships", asc("organization_id", Membership.organization_id),
                       asc("user_id", Membership.user_id))


# ---- versions and the states events carry -----------------------------------------------------------
def next_version(session, organization_id, user_id):
    """Raise the membership's version and return it: 1 for its first change, and on from where it was
    for a membership removed and added again (the version rows are never deleted)."""
    return raise_version(session, MembershipVersion, organization_id=organization_id, user_id=user_id)


def version_of(session, organization_id, user_id):
    """The membership's current version; 0 for one unchanged since before versions existed."""
    row = session.get(MembershipVersion, (organization_id, user_id))
    return row.version if row is not None else 0


def state_of(membership, version):
    return membership_state(membership.organization_id, membership.user_id, sort_roles(membership.roles), version,
                            joined_at=membership.joined_at)


def current_state(session, membership):
    return state_of(membership, version_of(session, membership.organization_id, membership.user_id))


def changed_state(session, membership):
    """The state of a membership just added or whose roles were just set, with a new version."""
    return state_of(membership, next_version(session, membership.organization_id, membership.user_id))


def removed_state(session, organization_id, user_id):
    """The tombstone of a membership just removed (or left), with a new version."""
    return membership_state(organization_id, user_id, [], next_version(session, organization_id, user_id),
                            active=False)


def carried(*states):
    """The `state` of an event that changed these memberships."""
    return {MEMBERSHIPS: list(states)}


# ---- serving states: snapshot pages and the confirm lookup -------------------------------------------
def _with_versions():
    return select(Membership, MembershipVersion.version).outerjoin(MembershipVersion, and_(
        MembershipVersion.organization_id == Membership.organization_id,
        MembershipVersion.user_id == Membership.user_id))


def snapshot_memberships(store, after=None, limit=None):
    """One page of the state of every current membership, ordered by (organization_id, user_id), from
    after `after` (the previous page's `next_after`); `next_after` is None on the last page."""
    limit = check_limit(limit, default=SNAPSHOT_PAGE, maximum=MAX_SNAPSHOT_PAGE)
    after = None if after is None else tuple(_check_after(after))
    with store.read() as session:
        rows, last = keyset_rows(session, _with_versions(), BY_MEMBERSHIP, after, limit)
        items = [state_of(membership, version or 0) for membership, version in rows]
    return {"items": items, "next_after": list(last) if last else None}


def membership_states(store, organization_id, user_ids, caller_id=None):
    """The states of those of `user_ids` who are members of the organization now, by user id. Told only
    to a member of the organization (or to the system, `caller_id` None): anyone else learns nothing
    (an empty list, as for a non-member asking about themselves)."""
    if not isinstance(organization_id, str):
        raise ValidationFailed("organization_id must be a string.", code="invalid_type", field="organization_id")
    if (not isinstance(user_ids, list) or len(user_ids) > MAX_STATES_LOOKUP
            or not all(is_valid_user_id(u) for u in user_ids)):
        raise ValidationFailed(f"user_ids must be a list of at most {MAX_STATES_LOOKUP} user ids.",
                               code="invalid_type", field="user_ids")
    if not user_ids:
        return []
    with store.read() as session:
        if caller_id is not None and session.get(Membership, (organization_id, caller_id)) is None:
            return []
        rows = session.execute(_with_versions().where(
            Membership.organization_id == organization_id, Membership.user_id.in_(set(user_ids)))
            .order_by(Membership.user_id)).all()
        return [state_of(membership, version or 0) for membership, version in rows]


def _check_after(after):
    if (not isinstance(after, list | tuple) or len(after) != 2
            or not all(isinstance(part, str) for part in after)):
        raise ValidationFailed("after must be the next_after of the previous page: [organization_id, user_id].",
                               code="invalid_type", field="after")
    return after
