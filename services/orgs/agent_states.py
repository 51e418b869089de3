"""An agent's access as other services keep it (common.readmodels): the state each change of its
contributors or assignees carries with a version that only grows, and the pages and lookups orgs serves
for other services' read models (snapshots for fills and rebuilds, current states to confirm a refusal)."""
from sqlalchemy import select

from common.errors import ValidationFailed
from common.paging import Keyset, asc, check_limit, keyset_rows
from common.readmodels import AGENTS, SNAPSHOT_PAGE, agent_state
from services.orgs.models import Agent

AGENTS_BY_ID = Keyset("agent_states", asc("id", Agent.id))


def access_of(agent):
    return {"contributors": [c.user_id for c in agent.contributors],
            "assignees": [a.user_id for a in agent.assignees]}


def access_state(agent):
    """The agent's access as other services' read models keep it; a deleted agent is a tombstone."""
    people = access_of(agent)
    return agent_state(agent.id, agent.organization_id, people["contributors"], people["assignees"],
                       agent.version or 0, active=agent.deleted_at is None)


def access_changed(agent):
    """Count one more change of the agent's access (made under its row lock, or on its insert) and
    return the `state` its event carries."""
    agent.version = (agent.version or 0) + 1
    return {AGENTS: [access_state(agent)]}


SNAPSHOT_LIMIT_MAX = 1000
STATES_LOOKUP_MAX = 500


def snapshot(store, after=None, limit=SNAPSHOT_PAGE):
    """One page of every agent's access state, deleted ones as tombstones, by agent id: {"items",
    "next_after"} (the last id when there may be more, else None). For fills and rebuilds."""
    limit = check_limit(limit, default=SNAPSHOT_PAGE, maximum=SNAPSHOT_LIMIT_MAX)
    if after is not None and not isinstance(after, str):
        raise ValidationFailed("after must be an agent id.", code="invalid_type", field="after")
    with store.read() as session:
        rows, last = keyset_rows(session, select(Agent), AGENTS_BY_ID, None if after is None else (after,), limit)
        return {"items": [access_state(agent) for agent in rows], "next_after": last[0] if last else None}


def access_states(store, organization_id, agent_ids):
    """The access states of those of `agent_ids` that are agents of the organization now (deleted ones
    as tombstones), with their current versions: a consumer confirms a refusal with them."""
    if (not isinstance(organization_id, str) or not isinstance(agent_ids, list)
            or len(agent_ids) > STATES_LOOKUP_MAX or not all(_is_agent_id(a) for a in agent_ids)):
        raise ValidationFailed(f"agent_ids must be a list of at most {STATES_LOOKUP_MAX} agent ids.",
                               code="invalid_type", field="agent_ids")
    if not agent_ids:
        return []
    with store.read() as session:
        rows = session.scalars(select(Agent).where(Agent.id.in_(agent_ids), Agent.organization_id == organization_id)
                               .order_by(Agent.id)).all()
        return [access_state(agent) for agent in rows]


def _is_agent_id(value):
    return isinstance(value, str) and 0 < len(value) <= 64
