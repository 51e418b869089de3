"""Nameko entrypoints of the orgs service: thin; the rules live in organizations.py (organizations,
the active organization, sign-in), agents.py, agent_people.py and agent_transfer.py; reactions to other
services' events in reactions.py.

Permissions and membership facts come from orgs' own read model of memberships (`self.memberships`,
common.readmodels), not from calls to members: a request is the gateway and this service. RPC to
members stays for the commands that change its data (register_user, add_founder), made before any write
transaction opens (common.db: no RPC call while a write transaction is open). Other services' read
models of agents' access are filled from snapshot_agents and confirmed with agent_states.
"""
from nameko.messaging import consume

from common import idempotency
from common.auth import Auth
from common.commands import CREDENTIAL, MEMBER, OPTIONAL, PERSON, SERVICE, SYSTEM, command, query
from common.db import Database
from common.events import ORGS_QUEUE, change_event_or_none
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
from services.orgs.models import READ_MODELS, HandledRequest, OutboxEvent


class OrgsService:
    name = "orgs"

    auth = Auth()
    heap = FrozenStartupHeap()      # common.heap: fewer long garbage-collector pauses under load
    db = Database(handled_requests=HandledRequest)
    outbox = OutboxRelay(OutboxEvent)
    members = service_proxy("members")
    memberships = MembershipFacts(READ_MODELS, owner="members")
    fill = ReadModelFill(READ_MODELS)

    @query(CREDENTIAL)
    def ping(self, caller):
        self.fill.check()       # degraded until the read model was first filled from members' snapshot
        return "pong"

    @command(PERSON)
    def sign_in(self, caller):
        """First sight of a user (or a change of their token's email/name): make sure their user record,
        their Individual organization and their Owner+Billing membership of it exist. Idempotent."""
        call(self.members.register_user)
        individual = organizations.ensure_individual(self.db, caller.identity)
        organizations.remember_founder(self.db, self._add_founder(individual["id"]))
        return self._me(caller.identity)

    @query(PERSON)
    def get_me(self, caller):
        return self._me(caller.identity)

    def _me(self, identity):
        return organizations.me(self.db, identity, self.memberships.memberships_of(identity.id))

    @query(PERSON)
    def list_organizations(self, caller, cursor=None, limit=None):
        return organizations.cards(self.db, caller.identity.id, cursor, limit)

    @command(PERSON, idempotency=OPTIONAL)
    def create_organization(self, caller, name, idempotency_key=None):
        org = organizations.create_collective(self.db, caller.identity, name, idempotency_key)
        # Also on a replay: if the first attempt died before this call, the retry completes it.
        membership = self._add_founder(org["id"])
        organizations.remember_founder(self.db, membership)
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
        return organizations.member_card(self.db, caller.identity.id, caller.membership)

    @command(Action.RENAME_ORGANIZATION)
    def rename_organization(self, caller, organization_id, name):
        organizations.clean_name(name)
        organizations.rename(self.db, caller.identity, organization_id, name)
        return organizations.member_card(self.db, caller.identity.id, caller.membership)

    @command(Action.DELETE_ORGANIZATION)
    def delete_organization(self, caller, organization_id):
        return organizations.delete(self.db, caller.identity, organization_id)

    @command(MEMBER)
    def set_active_organization(self, caller, organization_id):
        organizations.set_active(self.db, caller.identity, organization_id)
        return self._me(caller.identity)

    # ---- agents (rules in agents.py, agent_people.py, agent_transfer.py) -------------------------------
    @command(MEMBER, idempotency=OPTIONAL)
    def create_agent(self, caller, organization_id, fields, idempotency_key=None):
        return agents.create_agent(self.db, caller.identity, caller.roles, organization_id, fields,
                                   idempotency_key)

    @query(MEMBER)
    def list_agents(self, caller, organization_id, q=None, cursor=None, limit=None):
        return agents.list_agents(self.db, caller.identity, caller.roles, organization_id, q, cursor, limit)

    @query(MEMBER)
    def get_agent(self, caller, organization_id, agent_id):
        return agents.get_agent(self.db, caller.identity, caller.roles, organization_id, agent_id)

    @command(MEMBER)
    def update_agent(self, caller, organization_id, agent_id, fields):
        agents.clean_fields(fields, creating=False)
        return agents.update_agent(self.db, caller.identity, caller.roles, organization_id, agent_id,
                                   fields)

    @command(MEMBER)
    def delete_agent(self, caller, organization_id, agent_id):
        return agents.delete_agent(self.db, caller.identity, caller.roles, organization_id, agent_id)

    @query(MEMBER)
    def list_contributors(self, caller, organization_id, agent_id, cursor=None, limit=None):
        return agent_people.list_contributors(self.db, caller.identity, caller.roles, organization_id,
                                              agent_id, cursor, limit)

    @command(MEMBER)
    def add_contributor(self, caller, organization_id, agent_id, user_id):
        """Returns {"contributor", "created"} (created False when they already were one)."""
        contributor, created = self._give_place(caller, agent_people.add_contributor, organization_id, agent_id,
                                                user_id)
        return {"contributor": contributor, "created": created}

    @command(MEMBER)
    def remove_contributor(self, caller, organization_id, agent_id, user_id):
        return agent_people.remove_contributor(self.db, caller.identity, caller.roles, organization_id,
                                               agent_id, user_id)

    @command(MEMBER)
    def assign_agent(self, caller, organization_id, agent_id, user_id):
        """Returns {"assignee", "created"} (created False when they already were assigned)."""
        assignee, created = self._give_place(caller, agent_people.assign, organization_id, agent_id, user_id)
        return {"assignee": assignee, "created": created}

    @command(MEMBER)
    def unassign_agent(self, caller, organization_id, agent_id, user_id):
        return agent_people.unassign(self.db, caller.identity, caller.roles, organization_id, agent_id,
                                     user_id)

    @command(MEMBER)
    def transfer_agent(self, caller, organization_id, agent_id, destination_organization_id, dry_run):
        """Dry run: the report (who keeps access); otherwise the move. Membership facts of both
        organizations are read first; the move re-reads the agent under a row lock."""
        source_roles = caller.roles
        destination_roles = self._destination_roles(caller, organization_id, destination_organization_id)
        agent_transfer.check_transfer(source_roles, destination_roles, organization_id, destination_organization_id,
                                      dry_run)
        people = agent_transfer.people_of(self.db, caller.identity, source_roles, organization_id, agent_id)
        people_roles = self.memberships.roles_of(destination_organization_id, people)
        return agent_transfer.transfer_agent(self.db, caller.identity, source_roles, destination_roles, organization_id,
                                             agent_id, destination_organization_id, dry_run, people_roles)

    def _destination_roles(self, caller, organization_id, destination_id):
        """The caller's roles in a transfer's destination; None when they are not a member there or it
        is no other organization (check_transfer refuses both, each with its own error)."""
        if not agent_transfer.is_another_organization(organization_id, destination_id):
            return None
        return self._roles_of(destination_id, caller.identity.id)

    def _roles_of(self, organization_id, user_id):
        """Someone's roles in the organization, None if they are not a member."""
        return self.memberships.roles_of(organization_id, [user_id]).get(user_id)

    def _give_place(self, caller, give, organization_id, agent_id, user_id):
        """Add a contributor or assignee (`give`, from agent_people): the other person's roles are asked first."""
        user_roles = self._roles_of(organization_id, agent_people.clean_user_id(user_id))
        return give(self.db, caller.identity, caller.roles, organization_id, agent_id, user_id, user_roles)

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
