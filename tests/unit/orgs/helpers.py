"""Shared by the orgs service's agent tests: roles, people, and what the store holds."""
from sqlalchemy import select

from common.auth import Identity
from services.orgs import agent_states, agents
from services.orgs.models import Agent, OutboxEvent

OWNER = ["owner", "billing"]
ADMIN = ["admin"]
BUILDER = ["builder"]
MEMBER = ["member"]
BILLING = ["billing"]


def person(name):
    return Identity(name, f"{name}@example.com", name.title())


CARL, MIRA, DAVE, ERIN = person("carl"), person("mira"), person("dave"), person("erin")


def events(store, prefix="agent."):
    """The envelopes in the outbox whose type starts with `prefix`, oldest first."""
    with store.read() as session:
        return [e.envelope for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
                if e.type.startswith(prefix)]


def types(store, prefix="agent."):
    return [e["type"] for e in events(store, prefix)]


def stored(store, agent_id):
    """The agent's row as stored, whatever its organization or state."""
    with store.read() as session:
        agent = session.get(Agent, agent_id)
        return {"organization_id": agent.organization_id, "deleted": agent.deleted_at is not None,
                **agent_states.access_of(agent)}


def names(page):
    return [a["name"] for a in page["items"]]


def new_agent(store, org, who, roles=OWNER, name="Helper", **fields):
    return agents.create_agent(store, who, roles, org, dict(name=name, **fields))
