"""What the members service knows of orgs' facts, from its read models (common.readmodels): each
organization's name, type and liveness, each agent's organization and liveness. Inviting (the
organization's name and type, the agents an invitation names) and the Billing holder's leave of an
Individual organization are decided from them, without a call to orgs.

- An organization's state arrives with the founder's membership (orgs hands it to `add_founder`), so a
  new organization is known here before anyone can invite into it; later changes come with orgs'
  organization events. A deleted organization is a tombstone: 404 as before.
- An agent named by an invitation that is not a live agent of the organization here may have been
  created a moment ago, its event still on its way: the check waits for the read model, up to
  NEW_AGENT_WAIT_SECONDS, before refusing (422 unknown_agent), rather than asking orgs. Members makes no
  call to orgs on any request (orgs calls members for an organization's founder: a call back would be
  a cycle, which can deadlock when both services' workers are busy waiting on each other). Agents' ids
  are UUIDs, so an id of another shape is refused at once, without waiting.
"""
import time
import uuid

import eventlet
from sqlalchemy import select

from common.errors import ValidationFailed, organization_not_found
from common.readmodels import KIND, ORGANIZATIONS, apply_state
from services.members.models import READ_MODELS, AgentAccess, OrganizationFact

# The read models' lag from a change (p99 under 1 s under load, docs/decisions.md), with a margin.
NEW_AGENT_WAIT_SECONDS = 3.0
NEW_AGENT_POLL_SECONDS = 0.05


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


def _could_be_new(agent_id):
    """Whether the id has the shape of the agents' ids (a UUID), so that its agent may exist already."""
    try:
        return str(uuid.UUID(agent_id)) == agent_id
    except ValueError:
        return False


def check_agent_ids(store, organization_id, agent_ids, clock=time.monotonic, sleep=eventlet.sleep):
    """The ids if all are live agents of the organization, else 422 unknown_agent. An id the read model
    does not know is waited for (see the module's text), so this runs outside any write transaction:
    the invitation's command is phased."""
    if not agent_ids:
        return []
    unknown = _unknown_agents(store, organization_id, agent_ids)
    deadline = clock() + NEW_AGENT_WAIT_SECONDS
    while unknown and all(_could_be_new(agent_id) for agent_id in unknown) and clock() < deadline:
        sleep(NEW_AGENT_POLL_SECONDS)
        unknown = _unknown_agents(store, organization_id, unknown)
    if unknown:
        raise ValidationFailed(f"No agent {unknown[0]} in this organization.", code="unknown_agent",
                               field="agent_ids", details={"unknown_agent_ids": unknown})
    return list(agent_ids)
