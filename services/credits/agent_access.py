"""May the caller use this agent (product rules §2 "use agents", §6)? Decided from credits' own read
models (common.readmodels: memberships from members, agents' access from orgs), so a spend waits on no
other service.

The rules of product rules §2 "use agents", with the codes and messages orgs gives for its agents:
- not a member (or the organization was deleted): 404 organization_not_found;
- roles that use no agents at all (Billing only): 403 forbidden, before the agent is looked at;
- Owner/Admin: any agent of the organization; a Builder: the agents they contribute to or are assigned;
  a Member: the agents assigned to them; any other agent, or one not (or no longer) in the
  organization: 404 agent_not_found (agents one cannot see cannot be probed).

A read model lags its owner by the time an event takes to arrive. A refusal is therefore confirmed with
the owner before it is given (members.membership_states for the membership, orgs.agent_states for the
agent): the states they answer are applied here and the decision is taken again. With the owner down
the local answer stands. No RPC call happens inside a write transaction (common.db): a spend reads the
local answer before its write phase and confirms a refusal before it starts it (spends.py).
"""
from functools import cache

from sqlalchemy import bindparam, select

from common.errors import AppError, Forbidden, agent_not_found, organization_not_found
from common.permissions import Action, allows, may_see_agent, may_use_agent
from common.readmodels import apply_agent
from common.rpc import call

CONFIRM_TIMEOUT_SECONDS = 3
AGENT_REFUSALS = ("agent_not_found", "agent_use_forbidden")     # what orgs may know better


# ---- plain functions over a session ---------------------------------------------------------------
def roles_in(session, models, organization_id, user_id):
    """The user's roles in the organization from the read model; None when they are not a member or
    the organization was deleted."""
    if not isinstance(organization_id, str) or not isinstance(user_id, str):
        return None
    retired = models.retired
    if retired is not None and session.execute(_is_retired(retired), {"org": organization_id}).first():
        return None
    fact = session.execute(_membership(models.memberships), {"org": organization_id, "user": user_id}).first()
    return fact.roles if fact is not None and fact.active else None


# The statements every spend runs, built once per table (columns, not ORM objects, with bound parameters:
# spends.py says why that matters).
@cache
def _is_retired(retired):
    return select(retired.organization_id).where(retired.organization_id == bindparam("org"))


@cache
def _membership(facts):
    return select(facts.roles, facts.active).where(facts.organization_id == bindparam("org"),
                                                   facts.user_id == bindparam("user"))


@cache
def _agent_access(agents):
    return (select(agents.organization_id, agents.active, agents.contributors, agents.assignees)
            .where(agents.agent_id == bindparam("agent")))


def valid_agent_id(agent_id):
    return isinstance(agent_id, str) and 0 < len(agent_id) <= 64


def live_agent(session, models, organization_id, agent_id):
    """The agent's access facts (organization_id, active, contributors, assignees) if it is a live agent
    of the organization, else None."""
    if not valid_agent_id(agent_id):
        return None
    agent = session.execute(_agent_access(models.agents), {"agent": agent_id}).first()
    if agent is None or not agent.active or agent.organization_id != organization_id:
        return None
    return agent


def can_see(roles, agent, user_id):
    return may_see_agent(roles, user_id in agent.contributors, user_id in agent.assignees)


def can_use(roles, agent, user_id):
    return may_use_agent(roles, user_id in agent.contributors, user_id in agent.assignees)


def refusal_of(session, models, user_id, organization_id, agent_id):
    """None if the user may use the agent, else the error to answer (not raised)."""
    roles = roles_in(session, models, organization_id, user_id)
    return refusal_from(roles, lambda: live_agent(session, models, organization_id, agent_id), user_id)


def refusal_from(roles, agent_of, user_id):
    """The rules above, from facts read already: the user's `roles` (None: not a member, or the organization
    was deleted) and `agent_of()`, the live agent of the organization (None when it is not one); called only
    when the roles allow using agents at all. None if the use is allowed, else the error (not raised)."""
    if roles is None:
        return organization_not_found()
    if not (allows(roles, Action.USE_ANY_AGENT) or allows(roles, Action.USE_GRANTED_AGENTS)):
        return Forbidden("Your roles in this organization do not allow using agents.")
    agent = agent_of()
    if agent is None or not can_see(roles, agent, user_id):
        return agent_not_found()
    if not can_use(roles, agent, user_id):
        return Forbidden("You may not use this agent.", code="agent_use_forbidden")
    return None


def is_agent_refusal(refusal):
    """A refusal that rests on the agent's facts (orgs'), not only on the membership (members')."""
    return refusal.code in AGENT_REFUSALS


# ---- the workers' view: decide locally, confirm a refusal with the owners ---------------------------
class AgentUse:
    """The right to use agents, for one worker. `memberships` is the service's common.readmodels
    Memberships (its `confirm` asks members); `orgs` a callable giving the orgs RPC proxy."""

    def __init__(self, store, models, memberships, orgs):
        self.store, self.models, self.memberships, self._orgs = store, models, memberships, orgs

    def refusal_in(self, session, user_id, organization_id, agent_id):
        """None if the user may use the agent by the read models, else the refusal (not raised)."""
        return refusal_of(session, self.models, user_id, organization_id, agent_id)

    def refusal(self, user_id, organization_id, agent_id):
        with self.store.read() as session:
            return self.refusal_in(session, user_id, organization_id, agent_id)

    def confirm_agent(self, organization_id, agent_id):
        """Ask orgs for the agent's current state and apply it; False if orgs cannot answer."""
        if not isinstance(organization_id, str) or not valid_agent_id(agent_id):
            return False
        try:
            states = call(self._orgs().agent_states, organization_id, [agent_id], timeout=CONFIRM_TIMEOUT_SECONDS)
        except AppError:
            return False            # orgs down or refusing: the local answer stands
        if states:
            with self.store.write() as session:
                for state in states:
                    apply_agent(session, self.models, state)
        return True

    def confirmed_refusal(self, user_id, organization_id, agent_id, refusal):
        """The refusal after asking the owners what it rests on (each at most once), or None when their
        newer facts allow the use. Outside any write transaction: these are RPC calls."""
        asked_members = False
        if not is_agent_refusal(refusal):
            asked_members = True
            if self.memberships.confirm(organization_id, [user_id]):
                refusal = self.refusal(user_id, organization_id, agent_id)
        if refusal is not None and is_agent_refusal(refusal):
            # The agent's facts, and the roles they are read with (a Builder role granted a moment ago).
            answered = self.confirm_agent(organization_id, agent_id)
            if not asked_members:
                answered = self.memberships.confirm(organization_id, [user_id]) or answered
            if answered:
                refusal = self.refusal(user_id, organization_id, agent_id)
        return refusal
