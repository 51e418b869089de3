"""What the members service knows of orgs' facts, from its read models (common.readmodels): each
organization's name, type and liveness, each agent's organization and liveness. Inviting (the
organization's name and type, the agents an invitation names) and the Billing holder's leave of an
Individual organization are decided from them, without a call to orgs.

- An organization's state arrives with the founder's membership (orgs hands it to `add_founder`), so a
  new organization is known here before anyone can invite into it; later changes come with orgs'
  organization events. A deleted organization is a tombstone: 404 as before.
- An agent named by an invitation that is not a live agent of the organization here is confirmed with
  orgs first (`orgs.agent_states`, the states applied), as every read model confirms a refusal: an agent
  created a moment ago is never refused; with orgs down, the local answer (422 unknown_agent) stands.
"""
from sqlalchemy import select

from common.errors import AppError, ValidationFailed, organization_not_found
from common.readmodels import KIND, ORGANIZATIONS, apply_agent, apply_state
from common.rpc import call
from services.members.models import READ_MODELS, AgentAccess, OrganizationFact

STATES_LOOKUP_MAX = 500     # orgs.agent_states answers this many ids at a time


def organization_profile(session, organization_id):
    """{"id", "name", "type"} of a live organization, or 404 organization_not_found."""
    fact = session.get(OrganizationFact, organization_id) if isinstance(organization_id, str) else None
    if fact is None or not fact.active:
        raise organization_not_found()
    return {"id": fact.organization_id, "name": fact.name, "type": fact.type}


def remember_organization(session, organization_id, state):
    """Apply, in the founder's write transaction, the state of a new organization its creator's service
    handed over with the founder (newer versions only, as any state). A state that is not this
    organization's is left out."""
    if not isinstance(state, dict) or state.get("organization_id") != organization_id:
        return False
    kind = KIND[ORGANIZATIONS]
    if not all(field in state for field in (*kind.key, *kind.columns, "version")) \
            or not isinstance(state["version"], int) or isinstance(state["version"], bool):
        return False
    return apply_state(session, READ_MODELS, ORGANIZATIONS, state)


def _unknown_agents(store, organization_id, agent_ids):
    with store.read() as session:
        found = set(session.scalars(select(AgentAccess.agent_id).where(
            AgentAccess.agent_id.in_(agent_ids), AgentAccess.organization_id == organization_id,
            AgentAccess.active.is_(True))))
    return [agent_id for agent_id in agent_ids if agent_id not in found]


def _confirm(store, orgs, organization_id, agent_ids):
    """Ask orgs for these agents' current states and apply them; False if it cannot answer."""
    if orgs is None:
        return False
    states = []
    try:
        for start in range(0, len(agent_ids), STATES_LOOKUP_MAX):
            states += call(orgs().agent_states, organization_id, agent_ids[start:start + STATES_LOOKUP_MAX],
                           timeout=3)
    except AppError:
        return False                # orgs is down or refuses: the local answer stands
    with store.write() as session:
        for state in states:
            apply_agent(session, READ_MODELS, state)
    return True


def check_agent_ids(store, organization_id, agent_ids, orgs=None):
    """The ids if all are live agents of the organization, else 422 unknown_agent (as orgs answered it).
    `orgs`, a callable giving the orgs RPC proxy, confirms a refusal first: so this is called outside
    any write transaction, and applies the states orgs tells in a write transaction of its own (the
    read model's, not the command's)."""
    if not agent_ids:
        return []
    unknown = _unknown_agents(store, organization_id, agent_ids)
    if unknown and _confirm(store, orgs, organization_id, unknown):
        unknown = _unknown_agents(store, organization_id, agent_ids)
    if unknown:
        raise ValidationFailed(f"No agent {unknown[0]} in this organization.", code="unknown_agent",
                               field="agent_ids", details={"unknown_agent_ids": unknown})
    return list(agent_ids)
