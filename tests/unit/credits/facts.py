"""Helpers of the credits tests: facts in credits' read models (memberships, agents' access), a worker
whose members and orgs proxies are mocks, and `Owners`, what those two answer when credits confirms a
refusal (members.membership_states, orgs.agent_states)."""
import itertools

from nameko.testing.services import worker_factory

from common import readmodels
from common.events import change_event
from common.membership_facts import Memberships
from common.readmodels import agent_state, membership_state
from services.credits import reactions
from services.credits.models import READ_MODELS
from services.credits.service import CreditsService

ORG = "org-clinic"
OTHER_ORG = "org-other"
AGENT = "agent-1"
ADMIN_ACTOR = {"id": "olga", "email": "olga@example.com"}

_versions = itertools.count(1)


def next_version():
    """Versions only grow, whoever hands them out (each test's facts are newer than the last's)."""
    return next(_versions)


def member(store, user_id, roles, org=ORG, active=True, version=None):
    """A membership as credits' read model holds it; returns its state."""
    state = membership_state(org, user_id, roles, version or next_version(), active=active)
    with store.write() as session:
        readmodels.apply_membership(session, READ_MODELS, state)
    return state


def agent(store, agent_id=AGENT, org=ORG, contributors=(), assignees=(), active=True, version=None):
    """An agent's access as credits' read model holds it; returns its state."""
    state = agent_state(agent_id, org, contributors, assignees, version or next_version(), active=active)
    with store.write() as session:
        readmodels.apply_agent(session, READ_MODELS, state)
    return state


def membership_event(type_, state, action="update"):
    return change_event(type_, action, state["organization_id"], ADMIN_ACTOR, "member", state["user_id"],
                        state={"memberships": [state]})


def agent_event(type_, state, action="update"):
    return change_event(type_, action, state["organization_id"], ADMIN_ACTOR, "agent", state["agent_id"],
                        state={"agents": [state]})


def deliver(store, event):
    return reactions.handle_change_event(store, event)


class Reply:
    """What `method.call_async(...)` gives back: `.result()` answers (or raises) then."""

    def __init__(self, answer):
        self.answer = answer

    def result(self):
        return self.answer()


def answer_with(method, fn):
    """Make the RPC method proxy answer `fn(*args)`; returns the list of the calls' args."""
    calls = []

    def call_async(*args, **kwargs):
        calls.append(args)
        return Reply(lambda: fn(*args, **kwargs))
    method.call_async.side_effect = call_async
    return calls


class Owners:
    """Members and orgs as credits' confirmations see them: `memberships` {(org, user): state} and
    `agents` {agent_id: state} are what they hold now; `members_down` / `orgs_down` an error to raise
    instead. `asked` lists the confirmations, e.g. ("orgs", ORG, [AGENT])."""

    def __init__(self, service):
        self.memberships, self.agents = {}, {}
        self.members_down = self.orgs_down = None
        self.asked = []
        answer_with(service.members.membership_states, self._membership_states)
        answer_with(service.orgs.agent_states, self._agent_states)

    def knows_member(self, user_id, roles, org=ORG, version=None):
        self.memberships[(org, user_id)] = membership_state(org, user_id, roles, version or next_version())

    def knows_agent(self, agent_id=AGENT, org=ORG, contributors=(), assignees=(), version=None, active=True):
        self.agents[agent_id] = agent_state(agent_id, org, contributors, assignees, version or next_version(),
                                            active=active)

    def _membership_states(self, organization_id, user_ids):
        self.asked.append(("members", organization_id, list(user_ids)))
        if self.members_down is not None:
            raise self.members_down
        return [self.memberships[(organization_id, u)] for u in user_ids if (organization_id, u) in self.memberships]

    def _agent_states(self, organization_id, agent_ids):
        self.asked.append(("orgs", organization_id, list(agent_ids)))
        if self.orgs_down is not None:
            raise self.orgs_down
        return [s for a in agent_ids if (s := self.agents.get(a)) and s["organization_id"] == organization_id
                and s["active"]]


def credits_worker(store, identity, roles=("owner",), org=ORG):
    """A worker over a real database, `identity` a member of `org` with `roles` in its read model (none
    for roles=None); members and orgs are mocks answering as `service.owners` says."""
    service = worker_factory(CreditsService, db=store)
    service.auth.identity = identity
    service.memberships = Memberships(store, READ_MODELS, owner=lambda: service.members)
    service.owners = Owners(service)
    if roles is not None:
        member(store, identity.id, roles, org)
    return service


def rpc_calls(service):
    """Every call the worker made to members or orgs."""
    return service.members.mock_calls + service.orgs.mock_calls
