"""Agents (product rules §6): create, edit, delete, list and use, and the access rules everything about agents
goes by. The orgs service owns agents because an agent belongs to an organization, not to a person;
contributors and assignees are in agent_people.py, the transfer in agent_transfer.py.

Plain functions over a session (a command's write transaction from the pipeline, common.commands, or
a query's read), callable without a broker; fields arrive validated (common.contracts.agents). Membership
facts belong to the members service: the pipeline and the entrypoints read them from orgs' read model
(the caller's roles, other people's roles) and pass them in.

Who may do what, from the caller's roles in the agent's organization (common.permissions):
- see: Owner/Admin every agent; a Builder the agents they contribute to or are assigned; a Member the
  agents assigned to them (a Billing-only member sees none: an assignment takes effect if they later
  get the Member role). An agent the caller cannot see answers 404, like an unknown id.
- edit: Owner/Admin any; a Builder the agents they contribute to. Create: Owner/Admin/Builder.
- delete, contributors, assignees, transfer, the agent's trail: Owner/Admin (**decision** for delete:
  the agent is the organization's property, so a contributor may change it but not destroy it).
- use (spend credit through it): Owner/Admin any; a Builder if assigned or contributor; a Member if
  assigned.

Every change is one change event (target: the agent), so the agent's trail lists configuration
fields, `contributors` and `assignees` alike, one row per changed field. A change of the agent's access
(its creation and deletion, its organization, contributors, assignees) also counts one more `version`
and its event carries the agent's whole access `state` (access_changed()): other services keep it in
their read models (common.readmodels), and rebuild them from snapshot_agents().
"""
import uuid

from sqlalchemy import exists, func, or_, select

from common.contracts.agents import FIELD_LIMITS
from common.errors import Forbidden, ValidationFailed, agent_not_found
from common.events import changed_fields
from common.paging import SEARCH_MAX_LENGTH, Keyset, asc, check_limit, keyset_page
from common.permissions import Action, Role, allows, contributes, may_see_agent, may_use_agent
from common.timeutil import iso, utcnow
from services.orgs.agent_states import access_changed, access_of
from services.orgs.events import AGENT_CREATED, AGENT_DELETED, AGENT_UPDATED, emit
from services.orgs.models import Agent, AgentAssignee, AgentContributor
from services.orgs.organizations import get_live

CONFIG_FIELDS = tuple(FIELD_LIMITS)      # configuration fields (common.contracts.agents: their limits)
# The list's order: case-insensitive by name as the database lowers it (its lower() and Python's differ
# beyond ASCII on SQLite, and the comparison with a cursor runs in the database), then by id.
AGENTS_BY_NAME = Keyset("agents", asc("name", func.lower(Agent.name)), asc("id", Agent.id))


# ---- access rules --------------------------------------------------------------------------------------
def sees_every_agent(roles):
    return allows(roles, Action.EDIT_ANY_AGENT)


def is_contributing_builder(roles, agent, user_id):
    return contributes(roles, place_of(agent, "contributors", user_id) is not None)


def is_assigned(agent, user_id):
    return place_of(agent, "assignees", user_id) is not None


def can_see(roles, agent, user_id):
    return may_see_agent(roles, place_of(agent, "contributors", user_id) is not None, is_assigned(agent, user_id))


def can_edit(roles, agent, user_id):
    return allows(roles, Action.EDIT_ANY_AGENT) or (
        allows(roles, Action.EDIT_CONTRIBUTED_AGENTS) and is_contributing_builder(roles, agent, user_id))


def can_use(roles, agent, user_id):
    return may_use_agent(roles, place_of(agent, "contributors", user_id) is not None, is_assigned(agent, user_id))


def agent_permissions(roles, agent, user_id):
    """What the caller may do with this agent, for clients to offer (the checks stay server-side)."""
    granted = []
    if can_edit(roles, agent, user_id):
        granted.append("edit")
    if sees_every_agent(roles):
        granted += ["delete", "manage_access", "transfer", "view_audit"]
    if can_use(roles, agent, user_id):
        granted.append("use")
    return granted


def _visible_condition(roles, user_id):
    """SQL form of can_see() for lists."""
    if sees_every_agent(roles):
        return None
    assigned = exists().where(AgentAssignee.agent_id == Agent.id, AgentAssignee.user_id == user_id)
    conditions = []
    if allows(roles, Action.USE_GRANTED_AGENTS):
        conditions.append(assigned)
    if Role.BUILDER.value in roles:
        conditions.append(exists().where(AgentContributor.agent_id == Agent.id, AgentContributor.user_id == user_id))
    return or_(*conditions) if conditions else False


# ---- shapes --------------------------------------------------------------------------------------------
def config_of(agent):
    return {name: getattr(agent, name) for name in CONFIG_FIELDS}


def agent_dict(agent, roles=None, user_id=None):
    body = dict(id=agent.id, organization_id=agent.organization_id, **config_of(agent), **access_of(agent),
                created_by=agent.created_by, created_at=iso(agent.created_at), updated_at=iso(agent.updated_at))
    if roles is not None:
        body["permissions"] = agent_permissions(roles, agent, user_id)
    return body


def place_of(agent, kind, user_id):
    """The user's row among the agent's contributors or assignees (`kind`), or None."""
    return next((row for row in getattr(agent, kind) if row.user_id == user_id), None)


# ---- lookups -------------------------------------------------------------------------------------------
def _live_agent(session, organization_id, agent_id, for_update=False):
    """The organization's live agent, whoever asks (access is checked by the caller)."""
    if not isinstance(agent_id, str) or len(agent_id) > 64:
        raise agent_not_found()
    agent = session.get(Agent, agent_id, with_for_update=for_update, populate_existing=for_update)
    if agent is None or agent.deleted_at is not None or agent.organization_id != organization_id:
        raise agent_not_found()
    return agent


def visible_agent(session, identity, roles, organization_id, agent_id, for_update=False):
    """The live agent of a live organization, if the caller can see it; agent_not_found otherwise."""
    get_live(session, organization_id)
    agent = _live_agent(session, organization_id, agent_id, for_update)
    if not can_see(roles, agent, identity.id):
        raise agent_not_found()      # like an unknown id: agents one cannot see cannot be probed
    return agent


# ---- agents --------------------------------------------------------------------------------------------
def create_agent(session, identity, roles, organization_id, fields, now=None):
    """Create an agent in the organization; a Builder who creates it becomes its first contributor."""
    now = now or utcnow()
    get_live(session, organization_id)
    agent = Agent(id=str(uuid.uuid4()), organization_id=organization_id, created_by=identity.id,
                  created_at=now, updated_at=now, **{name: fields.get(name, "") for name in CONFIG_FIELDS})
    agent.avatar_url = fields.get("avatar_url")
    if Role.BUILDER.value in roles:
        agent.contributors.append(AgentContributor(user_id=identity.id, added_by=identity.id, added_at=now))
    state = access_changed(agent)          # version 1, inserted with the agent
    session.add(agent)
    session.flush()
    # Fields left empty are not "changed" by the creation: they would be noise rows in the trail.
    initial = {k: v for k, v in config_of(agent).items() if v not in ("", None)}
    emit(session, AGENT_CREATED, "create", agent.organization_id, identity, "agent", agent.id,
         after=dict(initial, contributors=access_of(agent)["contributors"]), state=state)
    return agent_dict(agent, roles, identity.id)


def list_agents(store, identity, roles, organization_id, q=None, cursor=None, limit=None):
    """The agents the caller can see, by name (case-insensitive), searchable by name; keyset-paged."""
    limit = check_limit(limit)
    if q is not None and (not isinstance(q, str) or len(q) > SEARCH_MAX_LENGTH):
        raise ValidationFailed(f"q must be text of at most {SEARCH_MAX_LENGTH} characters.", field="q")
    conditions = [Agent.organization_id == organization_id, Agent.deleted_at.is_(None)]
    visible = _visible_condition(roles, identity.id)
    if visible is not None:
        conditions.append(visible)
    if q and q.strip():
        conditions.append(Agent.name.icontains(q.strip(), autoescape=True))
    with store.read() as session:
        get_live(session, organization_id)
        return keyset_page(session, select(Agent).where(*conditions), AGENTS_BY_NAME, cursor, limit,
                           dump=lambda agent: agent_dict(agent, roles, identity.id))


def get_agent(store, identity, roles, organization_id, agent_id):
    with store.read() as session:
        return agent_dict(visible_agent(session, identity, roles, organization_id, agent_id), roles, identity.id)


def update_agent(session, identity, roles, organization_id, agent_id, fields, now=None):
    """Change some configuration fields; the event carries only the fields whose value changed. Who may
    edit depends on the agent (a contributing Builder), so it is decided here, not by the pipeline."""
    agent = visible_agent(session, identity, roles, organization_id, agent_id, for_update=True)
    if not can_edit(roles, agent, identity.id):
        raise Forbidden("Only an Owner, Admin or a contributing Builder can edit this agent.")
    before, after = changed_fields({k: getattr(agent, k) for k in fields}, fields)
    if before:
        for name, value in after.items():
            setattr(agent, name, value)
        agent.updated_at = now or utcnow()
        emit(session, AGENT_UPDATED, "update", agent.organization_id, identity, "agent", agent.id,
             before=before, after=after)
    return agent_dict(agent, roles, identity.id)


def delete_agent(session, identity, roles, organization_id, agent_id, now=None):
    """Delete an agent (Owner/Admin: the pipeline checked Action.EDIT_ANY_AGENT)."""
    agent = visible_agent(session, identity, roles, organization_id, agent_id, for_update=True)
    now = now or utcnow()
    agent.deleted_at = agent.updated_at = now
    emit(session, AGENT_DELETED, "delete", agent.organization_id, identity, "agent", agent.id,
         before=dict(config_of(agent), **access_of(agent)), state=access_changed(agent))
    return {"id": agent.id, "deleted_at": iso(now)}
