"""Shared by the orgs service's agent tests: roles, people, and what the store holds."""
import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import select

from common import idempotency
from common.auth import Identity
from common.contracts import load
from common.contracts.agents import AgentInput
from common.errors import Forbidden, NotFound
from common.membership_facts import Memberships
from common.readmodels import apply_membership, membership_state
from common.unit_of_work import UnitOfWork
from services.orgs import agent_states, agents
from services.orgs.models import READ_MODELS, Agent, OutboxEvent
from services.orgs.service import OrgsService

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
    return committed(store, agents.create_agent, who, roles, org, load(AgentInput, dict(name=name, **fields)))


def committed(store, work, *args, **kwargs):
    """`work(session, *args)` as a command's unit of work runs it (common.unit_of_work): one write
    transaction, committed with its events."""
    return UnitOfWork(store).run(lambda session: work(session, *args, **kwargs))


def keyed(store, identity, key, work, *args):
    """`work(session, identity, *args)` as a command under an Idempotency-Key runs (common.unit_of_work):
    the key's stored answer replayed, or the work's stored, fingerprinted with the work and its values."""
    operation = idempotency.operation(work.__name__, *map(str, args))
    return UnitOfWork(store, OrgsService.db, identity.id, key, operation).run(work, identity, *args)


class Reply:
    """What `method.call_async(...)` gives back: `.result()` answers (or raises) then."""

    def __init__(self, answer):
        self.answer = answer

    def result(self):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def member(store, org_id, user_id, roles, version=1):
    """Put a membership into orgs' read model, as members' events do."""
    with store.write() as session:
        apply_membership(session, READ_MODELS, membership_state(org_id, user_id, roles, version))


def orgs_worker(store, identity, owner_states=()):
    """The orgs service for `identity`; members confirms refusals with `owner_states` (membership
    states it holds), and its calls are counted by the mock."""
    service = worker_factory(OrgsService, db=store)
    service.auth.identity = identity
    service.memberships = Memberships(store, READ_MODELS, lambda: service.members)
    owner_states = list(owner_states)
    service.members.membership_states.call_async.side_effect = lambda org_id, user_ids: Reply(
        [s for s in owner_states if s["organization_id"] == org_id and s["user_id"] in user_ids])
    return service


def refused(store, org, identity, roles, method, *args):
    """The refusal the orgs service's pipeline gives `identity`, holding `roles` in `org`, for `method`."""
    member(store, org, identity.id, roles)
    with pytest.raises((Forbidden, NotFound)) as refusal:
        getattr(orgs_worker(store, identity), method)(org, *args)
    return refusal.value.code


def edit_agent(store, identity, roles, org, agent_id, data):
    """update_agent with `data` loaded as its entrypoint's declared contract loads it (an edit)."""
    return committed(store, agents.update_agent, identity, roles, org, agent_id, load(AgentInput, data, partial=True))
