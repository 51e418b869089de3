"""Nameko entrypoints of the orgs service: thin; the rules live in organizations.py (organizations,
the active organization, sign-in), agents.py, agent_people.py and agent_transfer.py; reactions to other
services' events in reactions.py.

Every method goes through the command pipeline (common.commands): a command receives the open write
transaction of its unit of work and passes it, with validated values, to the domain functions. Permissions
and membership facts come from orgs' own read model of memberships (`self.memberships`,
common.readmodels), not from calls to members: a request is the gateway and this service. RPC to
members stays for the commands that change its data (register_user, add_founder): those two commands
are phased (`phases=True`) so that the call is made between their write transactions, never inside one
(common.db). Other services' read models of agents' access are filled from snapshot_agents and confirmed
with agent_states.
"""
from common import idempotency
from common.auth import Auth
from common.commands import CREDENTIAL, MEMBER, OPTIONAL, PERSON, SERVICE, SYSTEM, Partial, command, query
from common.contracts.agents import AgentInput, AgentPersonInput
from common.contracts.organizations import OrganizationNameInput
from common.db import Database
from common.events import ORGS_QUEUE, change_event_or_none
from common.framework.consume import consume
from common.heap import FrozenStartupHeap
from common.membership_facts import MembershipFacts
from common.outbox import OutboxRelay
from common.permissions import Action
from common.readmodels import SNAPSHOT_PAGE, ReadModelFill
from common.rpc import call, service_proxy
from services.orgs import (
    agent_people,
    agent_states,
    agent_transfer,
    agents,
    organization_states,
    organizations,
    reactions,
)
from services.orgs.models import READ_MODELS, HandledRequest, IdempotentRequest, OutboxEvent


class OrgsService:
    name = "orgs"

    auth = Auth()
    heap = FrozenStartupHeap()      # common.heap: fewer long garbage-collector pauses under load
    db = Database(handled_requests=HandledRequest, idempotent_requests=IdempotentRequest)
    outbox = OutboxRelay(OutboxEvent)
    members = service_proxy("members")
    memberships = MembershipFacts(READ_MODELS, owner="members")
    fill = ReadModelFill(READ_MODELS)

    @query(CREDENTIAL)
    def ping(self, caller):
        self.fill.check()       # degraded until the read model was first filled from members' snapshot
        return "pong"

    @command(PERSON, phases=True)
    def sign_in(self, caller, uow):
        """First sight of a user (or a change of their token's email/name): make sure their user record,
        their Individual organization and their Owner+Billing membership of it exist. Idempotent."""
        call(self.members.register_user)
        individual = uow.run(organizations.ensure_individual, caller.identity)
        founder = self._add_founder(individual["id"])
        with uow.write() as session:
            organizations.remember_founder(session, founder)
        return self._read_me(caller.identity)       # read once the founder's membership is saved

    @query(PERSON)
    def get_me(self, caller):
        return self._read_me(caller.identity)

    def _read_me(self, identity):
        with self.db.read() as session:
            return self._me(session, identity)

    def _me(self, session, identity):
        return organizations.me(session, identity, self.memberships.memberships_of(identity.id))

    @query(PERSON)
    def list_organizations(self, caller, cursor=None, limit=None):
        return organizations.cards(self.db, caller.identity.id, cursor, limit)

    @command(PERSON, idempotency=OPTIONAL, input=OrganizationNameInput, phases=True)
    def create_organization(self, caller, uow, name, idempotency_key=None):
        org = uow.run(organizations.create_collective, caller.identity, name)    # or the key's first answer
        # Also on a replay: if the first attempt died before this call, the retry completes it.
        membership = self._add_founder(org["id"])
        with uow.write() as session:
            organizations.remember_founder(session, membership)
        card = organizations.card(org, membership, active_id=None)
        if org.get(idempotency.REPLAYED):
            card[idempotency.REPLAYED] = True       # the gateway's Idempotent-Replayed header
        return card

    def _add_founder(self, organization_id):
        """Members makes the caller the founder, told the organization's state (its read model of
        organizations knows the organization before anyone can invite into it)."""
        return call(self.members.add_founder, organization_id, organization_states.current(self.db, organization_id))

    @query(MEMBER)
    def get_organization(self, caller, organization_id):
        with self.db.read() as session:
            return organizations.member_card(session, caller.identity.id, caller.membership)

    @command(Action.RENAME_ORGANIZATION, input=OrganizationNameInput)
    def rename_organization(self, caller, session, organization_id, name):
        organizations.rename(session, caller.identity, organization_id, name)
        return organizations.member_card(session, caller.identity.id, caller.membership)

    @command(Action.DELETE_ORGANIZATION)
    def delete_organization(self, caller, session, organization_id):
        return organizations.delete(session, caller.identity, organization_id)

    @command(MEMBER)
    def set_active_organization(self, caller, session, organization_id):
        organizations.set_active(session, caller.identity, organization_id)
        return self._me(session, caller.identity)

    # ---- agents (rules in agents.py, agent_people.py, agent_transfer.py) -------------------------------
    @command(Action.CREATE_AGENTS, idempotency=OPTIONAL, input={"fields": AgentInput})
    def create_agent(self, caller, session, organization_id, fields, idempotency_key=None):
        return agents.create_agent(session, caller.identity, caller.roles, organization_id, fields)

    @query(MEMBER)
    def list_agents(self, caller, organization_id, q=None, cursor=None, limit=None):
        return agents.list_agents(self.db, caller.identity, caller.roles, organization_id, q, cursor, limit)

    @query(MEMBER)
    def get_agent(self, caller, organization_id, agent_id):
        return agents.get_agent(self.db, caller.identity, caller.roles, organization_id, agent_id)

    @command(MEMBER, input={"fields": Partial(AgentInput)})
    def update_agent(self, caller, session, organization_id, agent_id, fields):
        return agents.update_agent(session, caller.identity, caller.roles, organization_id, agent_id, fields)

    @command(Action.EDIT_ANY_AGENT)
    def delete_agent(self, caller, session, organization_id, agent_id):
        return agents.delete_agent(session, caller.identity, caller.roles, organization_id, agent_id)

    @query(MEMBER)
    def list_contributors(self, caller, organization_id, agent_id, cursor=None, limit=None):
        return agent_people.list_contributors(self.db, caller.identity, caller.roles, organization_id,
                                              agent_id, cursor, limit)

    # The other person's roles are looked up before the write: the read model may confirm a miss with
    # members (an RPC call, and the states applied in their own transaction), hence phased commands.
    @command(Action.EDIT_ANY_AGENT, input=AgentPersonInput, phases=True)
    def add_contributor(self, caller, uow, organization_id, agent_id, user_id):
        """Returns {"contributor", "created"} (created False when they already were one)."""
        contributor, created = uow.run(agent_people.add_contributor, caller.identity, caller.roles, organization_id,
                                       agent_id, user_id, self._roles_of(organization_id, user_id))
        return {"contributor": contributor, "created": created}

    @command(Action.EDIT_ANY_AGENT)
    def remove_contributor(self, caller, session, organization_id, agent_id, user_id):
        return agent_people.remove_contributor(session, caller.identity, caller.roles, organization_id,
                                               agent_id, user_id)

    @command(Action.EDIT_ANY_AGENT, input=AgentPersonInput, phases=True)
    def assign_agent(self, caller, uow, organization_id, agent_id, user_id):
        """Returns {"assignee", "created"} (created False when they already were assigned)."""
        assignee, created = uow.run(agent_people.assign, caller.identity, caller.roles, organization_id, agent_id,
                                    user_id, self._roles_of(organization_id, user_id))
        return {"assignee": assignee, "created": created}

    @command(Action.EDIT_ANY_AGENT)
    def unassign_agent(self, caller, session, organization_id, agent_id, user_id):
        return agent_people.unassign(session, caller.identity, caller.roles, organization_id, agent_id, user_id)

    @command(MEMBER, phases=True)
    def transfer_agent(self, caller, uow, organization_id, agent_id, destination_organization_id, dry_run):
        """Dry run: the report (who keeps access); otherwise the move. The caller's roles in both
        organizations decide who may (check_transfer: the source's are only the start of it); the roles
        of the agent's people in the destination are looked up before the move's write, which re-reads
        the agent under a row lock."""
        source_roles = caller.roles
        destination_roles = self._destination_roles(caller, organization_id, destination_organization_id)
        agent_transfer.check_transfer(source_roles, destination_roles, organization_id, destination_organization_id,
                                      dry_run)
        with uow.read() as session:
            people = agent_transfer.people_of(session, caller.identity, source_roles, organization_id, agent_id)
        people_roles = self.memberships.roles_of(destination_organization_id, people)
        return uow.run(agent_transfer.transfer_agent, caller.identity, source_roles, destination_roles,
                       organization_id, agent_id, destination_organization_id, dry_run, people_roles)

    def _destination_roles(self, caller, organization_id, destination_id):
        """The caller's roles in a transfer's destination; None when they are not a member there or it
        is no other organization (check_transfer refuses both, each with its own error)."""
        if not agent_transfer.is_another_organization(organization_id, destination_id):
            return None
        return self._roles_of(destination_id, caller.identity.id)

    def _roles_of(self, organization_id, user_id):
        """Someone's roles in the organization, None if they are not a member."""
        return self.memberships.roles_of(organization_id, [user_id]).get(user_id)

    # ---- organizations and agents' access for other services' read models (common.readmodels) --------
    @query(SYSTEM)
    def snapshot_organizations(self, caller, after=None, limit=SNAPSHOT_PAGE):
        """One page of every organization's state (deleted ones as tombstones), for fills and rebuilds."""
        return organization_states.snapshot(self.db, after, limit)

    @query(SYSTEM)
    def snapshot_agents(self, caller, after=None, limit=SNAPSHOT_PAGE):
        """One page of every agent's access state (deleted ones as tombstones), for fills and rebuilds."""
        return agent_states.snapshot(self.db, after, limit)

    @query(SERVICE)
    def agent_states(self, caller, organization_id, agent_ids):
        """The current access states of those agents that are the organization's, for a consumer that
        confirms a refusal; no membership check: it tells only what the caller's service may know."""
        return agent_states.access_states(self.db, organization_id, agent_ids)

    # ---- events of other services ---------------------------------------------------------------------
    # Acknowledged after the effects commit; an error (database down) requeues the event. A message
    # that is not a change event is logged and dropped: retrying cannot help.
    @consume(ORGS_QUEUE, requeue_on_error=True)
    def on_change_event(self, message):
        event = change_event_or_none(message)
        if event is not None:
            reactions.handle_change_event(self.db, event)
