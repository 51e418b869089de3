"""The people on an agent (product rules §6): contributors (Builders who may edit it) and assignees (members who
may use it). Owners and Admins add and remove them; an accepted invitation assigns its agents; a
member who leaves, is removed or loses Builder loses their places (reactions.py calls these two in
its transaction). Who may do what is in agents.py.

Each change is one change event whose before/after is the whole list that changed (`contributors` or
`assignees`), so the agent's trail shows it as one row; it carries the agent's access state with its
next version (agent_states.access_changed).
"""
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from common.errors import Conflict, NotFound, ValidationFailed, member_not_found
from common.events import changed_fields
from common.paging import Keyset, asc, keyset_page
from common.permissions import Role
from common.timeutil import iso, utcnow
from services.orgs.agent_states import access_changed, access_of
from services.orgs.agents import is_assigned, place_of, visible_agent
from services.orgs.events import (
    AGENT_ACCESS_REVOKED,
    AGENT_ASSIGNEE_ADDED,
    AGENT_ASSIGNEE_REMOVED,
    AGENT_CONTRIBUTOR_ADDED,
    AGENT_CONTRIBUTOR_REMOVED,
    emit,
)
from services.orgs.models import Agent, AgentAssignee, AgentContributor


@dataclass(frozen=True)
class Place:
    """One kind of place on an agent: its list on the agent, its table, its events and answers."""
    kind: str                 # the agent's list, and the field the events change
    model: type
    added: str
    removed: str
    not_there: str            # the 404 message when the person has no such place
    not_there_code: str


CONTRIBUTORS = Place("contributors", AgentContributor, AGENT_CONTRIBUTOR_ADDED, AGENT_CONTRIBUTOR_REMOVED,
                     "This member is not a contributor of the agent.", "contributor_not_found")
ASSIGNEES = Place("assignees", AgentAssignee, AGENT_ASSIGNEE_ADDED, AGENT_ASSIGNEE_REMOVED,
                  "This member is not assigned to the agent.", "assignee_not_found")
# Oldest first, as the agent's `contributors` (ties, rare, by user id).
CONTRIBUTORS_BY_DATE = Keyset("contributors", asc("added_at", AgentContributor.added_at, datetime),
                              asc("user_id", AgentContributor.user_id))


def person_dict(row):
    return {"user_id": row.user_id, "added_by": row.added_by, "added_at": iso(row.added_at)}


# ---- by an Owner or Admin -------------------------------------------------------------------------------
def list_contributors(store, identity, roles, organization_id, agent_id, cursor=None, limit=None):
    with store.read() as session:
        agent = visible_agent(session, identity, roles, organization_id, agent_id)
        return keyset_page(session, select(AgentContributor).where(AgentContributor.agent_id == agent.id),
                           CONTRIBUTORS_BY_DATE, cursor, limit, dump=person_dict)


def add_contributor(session, identity, roles, organization_id, agent_id, user_id, user_roles, now=None):
    """Make a Builder a contributor. `user_roles`: their roles in the organization, None for a
    non-member. Returns (contributor, created); adding one twice changes nothing."""
    return _give(session, identity, roles, organization_id, agent_id, CONTRIBUTORS, user_id, user_roles, now)


def assign(session, identity, roles, organization_id, agent_id, user_id, user_roles, now=None):
    """Let a member use the agent. Returns (assignee, created); assigning twice changes nothing."""
    return _give(session, identity, roles, organization_id, agent_id, ASSIGNEES, user_id, user_roles, now)


def remove_contributor(session, identity, roles, organization_id, agent_id, user_id):
    return _take(session, identity, roles, organization_id, agent_id, CONTRIBUTORS, user_id)


def unassign(session, identity, roles, organization_id, agent_id, user_id):
    return _take(session, identity, roles, organization_id, agent_id, ASSIGNEES, user_id)


# Owners and Admins only: the pipeline checked Action.EDIT_ANY_AGENT before these run.
def _give(session, identity, roles, organization_id, agent_id, place, user_id, user_roles, now):
    agent = visible_agent(session, identity, roles, organization_id, agent_id, for_update=True)
    if user_roles is None:
        raise member_not_found()
    if place is CONTRIBUTORS and Role.BUILDER.value not in user_roles:
        raise ValidationFailed("Only members holding the Builder role can be contributors.",
                               code="contributor_must_be_builder", field="user_id")
    existing = place_of(agent, place.kind, user_id)
    if existing is not None:
        return person_dict(existing), False
    row = _add_person(session, identity.as_actor(), agent, place, user_id, now or utcnow())
    return person_dict(row), True


def _add_person(session, actor, agent, place, user_id, now, correlation_id=None):
    """Give the user a place on the agent, with its event."""
    before = access_of(agent)[place.kind]
    row = place.model(user_id=user_id, added_by=actor["id"], added_at=now)
    getattr(agent, place.kind).append(row)
    emit(session, place.added, "update", agent.organization_id, actor, "agent", agent.id,
         before={place.kind: before}, after={place.kind: before + [user_id]}, correlation_id=correlation_id,
         state=access_changed(agent))
    return row


def _take(session, identity, roles, organization_id, agent_id, place, user_id):
    """Take the user's place off the agent, with its event."""
    agent = visible_agent(session, identity, roles, organization_id, agent_id, for_update=True)
    row = place_of(agent, place.kind, user_id)
    if row is None:
        raise NotFound(place.not_there, code=place.not_there_code, field="user_id")
    if place is CONTRIBUTORS and len(agent.contributors) == 1:
        raise Conflict("The last contributor of an agent cannot be removed; add another one first.",
                       code="last_contributor", field="user_id")
    before = access_of(agent)[place.kind]
    getattr(agent, place.kind).remove(row)
    emit(session, place.removed, "update", agent.organization_id, identity, "agent", agent.id,
         before={place.kind: before}, after={place.kind: [u for u in before if u != row.user_id]},
         state=access_changed(agent))
    return {"agent_id": agent.id, "user_id": row.user_id}


# ---- following other services' events (called by reactions.handle_change_event, in its transaction) -----
def apply_invitation_agents(session, event, now=None):
    """An accepted invitation's agents are assigned to the newcomer (product rules §3). Agents deleted or moved
    away since the invitation are skipped, and so are assignments that exist already."""
    after = event.get("after") or {}
    user_id, agent_ids = after.get("user_id"), after.get("agent_ids") or []
    if not isinstance(user_id, str) or not isinstance(agent_ids, list):
        return 0
    assigned = 0
    for agent_id in sorted({a for a in agent_ids if isinstance(a, str)}):   # one lock order: no deadlocks
        agent = session.get(Agent, agent_id, with_for_update=True)
        if (agent is None or agent.deleted_at is not None or agent.organization_id != event["organization_id"]
                or is_assigned(agent, user_id)):
            continue
        _add_person(session, event["actor"], agent, ASSIGNEES, user_id, now or utcnow(),
                    correlation_id=event["event_id"])
        assigned += 1
    return assigned


def forget_member_access(session, event, contributors_only=False):
    """A member left or was removed (or lost Builder, `contributors_only`): their contributor (and
    assignee) places on the organization's agents go, one event per agent, by the actor of the
    membership change. The last contributor may go this way: the agent stays (product rules §6)."""
    user_id, organization_id = event["target"]["id"], event["organization_id"]
    changed = 0
    agents = session.scalars(select(Agent).where(
        Agent.organization_id == organization_id, Agent.deleted_at.is_(None),
        or_(Agent.contributors.any(AgentContributor.user_id == user_id),
            Agent.assignees.any(AgentAssignee.user_id == user_id))).order_by(Agent.id).with_for_update()).all()
    for agent in agents:
        before = access_of(agent)
        agent.contributors = [c for c in agent.contributors if c.user_id != user_id]
        if not contributors_only:
            agent.assignees = [a for a in agent.assignees if a.user_id != user_id]
        changed_before, changed_after = changed_fields(before, access_of(agent))
        if changed_before:
            emit(session, AGENT_ACCESS_REVOKED, "update", agent.organization_id, event["actor"], "agent", agent.id,
                 before=changed_before, after=changed_after, correlation_id=event["event_id"],
                 state=access_changed(agent))
            changed += 1
    return changed
