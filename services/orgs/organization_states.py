"""An organization as other services keep it (common.readmodels, kind `organizations`): its name, type,
creation time and whether it is alive, with a version that only grows (`Organization.version`, raised
under the organization's row lock or on its insert). Every change (created, renamed, deleted: a
tombstone) carries this state; the same states are served page by page to fill or rebuild a read model."""
from sqlalchemy import select

from common.errors import ValidationFailed
from common.paging import Keyset, asc, check_limit, keyset_rows
from common.readmodels import ORGANIZATIONS, SNAPSHOT_PAGE, organization_state
from services.orgs.models import Organization

ORGANIZATIONS_BY_ID = Keyset("organization_states", asc("id", Organization.id))
SNAPSHOT_LIMIT_MAX = 1000


def state_of(org):
    return organization_state(org.id, org.name, org.type, org.created_at, org.version or 0,
                              active=org.deleted_at is None)


def changed(org):
    """Count one more change of the organization and return the `state` its event carries."""
    org.version = (org.version or 0) + 1
    return {ORGANIZATIONS: [state_of(org)]}


def current(store, organization_id):
    """The organization's current state (handed to members with its founder: known there at once)."""
    with store.read() as session:
        return state_of(session.get(Organization, organization_id))


def snapshot(store, after=None, limit=SNAPSHOT_PAGE):
    """One page of every organization's state, deleted ones as tombstones, by id: {"items", "next_after"}
    (the last id when there may be more, else None). For fills and rebuilds."""
    limit = check_limit(limit, default=SNAPSHOT_PAGE, maximum=SNAPSHOT_LIMIT_MAX)
    if after is not None and not isinstance(after, str):
        raise ValidationFailed("after must be an organization id.", code="invalid_type", field="after")
    with store.read() as session:
        rows, last = keyset_rows(session, select(Organization), ORGANIZATIONS_BY_ID,
                                 None if after is None else (after,), limit)
        return {"items": [state_of(org) for org in rows], "next_after": last[0] if last else None}
