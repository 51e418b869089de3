"""Organizations, each user's active organization and sign-in (the Individual organization made on first
sight): plain functions over a session (the command pipeline's write transaction, common.commands, or a
query's read), callable without a broker. Names arrive validated (common.contracts.organizations).

Membership facts (roles, member counts) belong to the members service; orgs keeps the ones it needs
in its read model (common.readmodels, fed by members' events in reactions.py), read through
the read model (common.membership_facts), and the functions here receive them as arguments; only the
cards read the read model's table themselves, to page it in SQL with the organizations.
"""
import uuid
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import aliased

from common.contracts.organizations import NAME_MAX_LENGTH
from common.errors import Conflict, organization_not_found
from common.paging import Keyset, asc, keyset_page
from common.permissions import sort_roles
from common.readmodels import apply_membership
from common.timeutil import iso, utcnow
from services.orgs import organization_states
from services.orgs.events import (
    ACTIVE_ORGANIZATION_CHANGED,
    ORGANIZATION_CREATED,
    ORGANIZATION_DELETED,
    ORGANIZATION_RENAMED,
    emit,
)
from services.orgs.models import READ_MODELS, ActiveOrganization, Organization
from services.orgs.schemas import organization_schema

INDIVIDUAL, COLLECTIVE = "individual", "collective"
# The cards' order: the Individual organization first, then oldest first.
CARDS = Keyset("organizations", asc("collective", case((Organization.type == INDIVIDUAL, 0), else_=1), int),
               asc("created_at", Organization.created_at, datetime), asc("id", Organization.id))


def get_live(session, organization_id, for_update=False):
    """The organization unless deleted. `for_update` locks the row (PostgreSQL) so that concurrent
    changes queue and each event's `before` is what the change really replaced."""
    org = (session.get(Organization, organization_id, with_for_update=for_update)
           if isinstance(organization_id, str) else None)
    if org is None or org.deleted_at is not None:
        raise organization_not_found()
    return org


def _individual_of(session, user_id):
    return session.scalar(select(Organization).where(Organization.individual_user_id == user_id))


def _individual_id(session, user_id):
    return session.scalar(select(Organization.id).where(Organization.individual_user_id == user_id))


# ---- sign-in ---------------------------------------------------------------------------------------------
def ensure_individual(session, identity):
    """The user's Individual organization, created (and made active) the first time. Two first requests
    of one user racing both insert it: the loser's commit fails on the unique user id, and the pipeline's
    second attempt finds the winner's (common.unit_of_work)."""
    existing = _individual_of(session, identity.id)
    if existing is not None:
        return org_dict(existing)
    name = (identity.name or identity.email or "Personal").strip()[:NAME_MAX_LENGTH]
    now = utcnow()
    org = Organization(id=str(uuid.uuid4()), name=name, type=INDIVIDUAL, individual_user_id=identity.id,
                       created_by=identity.id, created_at=now, updated_at=now)
    session.add(org)
    if session.get(ActiveOrganization, identity.id) is None:
        session.add(ActiveOrganization(user_id=identity.id, organization_id=org.id, updated_at=now))
    emit(session, ORGANIZATION_CREATED, "create", org.id, identity, "organization", org.id,
         after={"name": name, "type": INDIVIDUAL}, state=organization_states.changed(org))
    session.flush()
    return org_dict(org)


def me(session, identity, memberships):
    """The caller as the product shows them: who they are, their active organization and their
    memberships (`memberships` from the read model of members' facts), live organizations only."""
    live = live_organizations(session, [m["organization_id"] for m in memberships])
    return {"id": identity.id, "email": identity.email, "name": identity.name,
            "active_organization_id": active_organization_id(session, identity.id, set(live)),
            "memberships": [{"organization_id": m["organization_id"], "roles": m["roles"]}
                            for m in memberships if m["organization_id"] in live]}


# ---- organizations ---------------------------------------------------------------------------------------

def create_collective(session, identity, name):
    """Create a Collective organization; the caller is recorded as its creator."""
    now = utcnow()
    org = Organization(id=str(uuid.uuid4()), name=name, type=COLLECTIVE, created_by=identity.id,
                       created_at=now, updated_at=now)
    session.add(org)
    emit(session, ORGANIZATION_CREATED, "create", org.id, identity, "organization", org.id,
         after={"name": name, "type": COLLECTIVE}, state=organization_states.changed(org))
    session.flush()
    return org_dict(org)


def rename(session, identity, organization_id, name):
    org = get_live(session, organization_id, for_update=True)
    if org.name == name:
        return org_dict(org)          # nothing changed, so no event
    before = org.name
    org.name, org.updated_at = name, utcnow()
    emit(session, ORGANIZATION_RENAMED, "update", org.id, identity, "organization", org.id,
         before={"name": before}, after={"name": name}, state=organization_states.changed(org))
    return org_dict(org)


def delete(session, identity, organization_id):
    """Delete a Collective organization; whoever had it active falls back to their Individual one."""
    org = get_live(session, organization_id, for_update=True)
    if org.type == INDIVIDUAL:
        raise Conflict("An Individual organization cannot be deleted.", code="individual_organization")
    now = utcnow()
    org.deleted_at = now
    fallen_back = _fall_back_to_individual(session, org.id, now)
    emit(session, ORGANIZATION_DELETED, "delete", org.id, identity, "organization", org.id,
         before={"name": org.name, "type": org.type}, state=organization_states.changed(org))
    return {"id": org.id, "deleted_at": iso(now), "active_organization_reset_for": fallen_back}


def live_organizations(session, organization_ids):
    if not organization_ids:
        return {}
    rows = session.scalars(select(Organization).where(
        Organization.id.in_(list(organization_ids)), Organization.deleted_at.is_(None))).all()
    return {org.id: org for org in rows}


# ---- the active organization -----------------------------------------------------------------------------
def _fall_back_to_individual(session, organization_id, now):
    rows = session.scalars(select(ActiveOrganization)
                           .where(ActiveOrganization.organization_id == organization_id)).all()
    for row in rows:
        row.organization_id, row.updated_at = _individual_id(session, row.user_id), now
    return [row.user_id for row in rows]


def forget_active_membership(session, user_id, organization_id):
    """If the organization was the user's active one, they fall back to their Individual one.
    The removal is the audited change; this follows from it."""
    row = session.get(ActiveOrganization, user_id, with_for_update=True)
    if row is None or row.organization_id != organization_id:
        return False
    row.organization_id, row.updated_at = _individual_id(session, user_id), utcnow()
    return True


def set_active(session, identity, organization_id):
    """Switch the caller's active organization (membership already checked by the pipeline)."""
    org = get_live(session, organization_id, for_update=True)   # not deleted meanwhile
    row = session.get(ActiveOrganization, identity.id, with_for_update=True)
    now = utcnow()
    if row is None:
        row = ActiveOrganization(user_id=identity.id, organization_id=org.id, updated_at=now)
        session.add(row)
        before = None
    elif row.organization_id == org.id:
        return org.id
    else:
        before, row.organization_id, row.updated_at = row.organization_id, org.id, now
    emit(session, ACTIVE_ORGANIZATION_CHANGED, "update", org.id, identity, "user", identity.id,
         before={"active_organization_id": before}, after={"active_organization_id": org.id})
    return org.id


def active_organization_id(session, user_id, live_member_of):
    """The user's active organization: the stored one while it is among `live_member_of` (ids of the
    live organizations they belong to, as live_organizations() gives), otherwise their Individual
    one (the fall-back rule of product rules §1)."""
    row = session.get(ActiveOrganization, user_id)
    if row is not None and row.organization_id in live_member_of:
        return row.organization_id
    return _individual_id(session, user_id)


def stored_active_id(session, user_id):
    row = session.get(ActiveOrganization, user_id)
    return row.organization_id if row else None


# ---- memberships (the read model of members' facts) -------------------------------------------------------
def remember_founder(session, founder):
    """Apply the membership state of members' add_founder answer at once, so that the new organization
    is listed right away (its member.added event arrives a moment later and changes nothing then)."""
    state = founder.get("state") if isinstance(founder, dict) else None
    if not state:
        return False
    return apply_membership(session, READ_MODELS, state)


# ---- cards -----------------------------------------------------------------------------------------------
def cards(store, user_id, cursor=None, limit=None):
    """A page of the user's organization cards: name, type, my roles, member count, active flag.
    Individual first, then oldest first; the live organizations of their live memberships."""
    facts, others = READ_MODELS.memberships, aliased(READ_MODELS.memberships)
    member_count = (select(func.count()).where(others.organization_id == Organization.id, others.active.is_(True))
                    .correlate(Organization).scalar_subquery())
    with store.read() as session:
        row = session.get(ActiveOrganization, user_id)   # the stored one while among them (active_organization_id)
        active = row.organization_id if row is not None and session.scalar(_organizations_of(user_id).where(
            Organization.id == row.organization_id)) is not None else _individual_id(session, user_id)
        return keyset_page(session, _organizations_of(user_id).add_columns(facts.roles, member_count), CARDS,
                           cursor, limit, dump=lambda row: card(
                               org_dict(row[0]), {"roles": sort_roles(row[1]), "member_count": row[2]}, active))


def _organizations_of(user_id):
    facts = READ_MODELS.memberships
    return (select(Organization).join(facts, facts.organization_id == Organization.id)
            .where(facts.user_id == user_id, facts.active.is_(True), Organization.deleted_at.is_(None)))


def member_card(session, user_id, membership):
    """The card of the organization of `membership` (the caller's, just looked up).

    The stored active organization is this one only if it is alive and the caller a member, both just
    established; so no fall-back computation is needed here."""
    org = org_dict(get_live(session, membership["organization_id"]))
    return card(org, membership, stored_active_id(session, user_id))


def card(org, membership, active_id):
    """An organization card from the org's dict and the caller's membership of it."""
    return dict(org, roles=membership["roles"], member_count=membership["member_count"],
                active=org["id"] == active_id)


def org_dict(org):
    return organization_schema.dump(org)
