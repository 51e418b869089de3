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
from common.db import Database
from common.errors import NotFound
from common.events import ORGS_QUEUE, change_event_or_none
from common.heap import FrozenStartupHeap
from common.membership_facts import MembershipFacts
from common.outbox import OutboxRelay
from common.permissions import Action
from common.readmodels import SNAPSHOT_PAGE, ReadModelFill
from common.rpc import call, rpc, service_proxy
from services.orgs import agent_people, agent_transfer, agents, organizations, reactions
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

    @rpc
    def ping(self):
        self.fill.check()       # degraded until the read model was first filled from members' snapshot
        return "pong"

    @rpc
    def sign_in(self):
        """First sight of a user (or a change of their token's email/name): make sure their user record,
        their Individual organization and their Owner+Billing membership of it exist. Idempotent."""
        identity = self.auth.require()
        call(self.members.register_user)
        individual = organizations.ensure_individual(self.db, identity)
        organizations.remember_founder(self.db, call(self.members.add_founder, individual["id"]))
        return self.get_me()

    @rpc
    def get_me(self):
        identity = self.auth.require()
        return organizations.me(self.db, identity, self.memberships.memberships_of(identity.id))

    @rpc
    def list_organizations(self, cursor=None, limit=None):
        identity = self.auth.require()
        return organizations.cards(self.db, identity.id, cursor, limit)

    @rpc
    def create_organization(self, name, idempotency_key=None):
        identity = self.auth.require()
        org = organizations.create_collective(self.db, identity, name, idempotency_key)
        # Also on a replay: if the first attempt died before this call, the retry completes it.
        membership = call(self.members.add_founder, org["id"])
        organizations.remember_founder(self.db, membership)
        card = organizations.card(org, membership, active_id=None)
        if org.get(idempotency.REPLAYED):
            card[idempotency.REPLAYED] = True       # the gateway's Idempotent-Replayed header
        return card

    @rpc
    def get_organization(self, organization_id):
        identity = self.auth.require()
        membership = self.memberships.membership(organization_id, identity.id)
        return organizations.member_card(self.db, identity.id, membership)

    @rpc
    def organization_profile(self, organization_id):
        """Name and type of a live organization, for services that have checked the caller's membership
        themselves (members, when inviting). It does not ask members back: a call cycle
        members -> orgs -> members can exhaust the members workers under load and deadlock."""
        self.auth.require()
        return organizations.profile(self.db, organization_id)

    @rpc
    def rename_organization(self, organization_id, name):
        identity = self.auth.require()
        organizations.clean_name(name)   # bad input is refused before any permission lookup is spent on it
        membership = self.memberships.authorize(identity, organization_id, Action.RENAME_ORGANIZATION)
        organizations.rename(self.db, identity, organization_id, name)
        return organizations.member_card(self.db, identity.id, membership)

    @rpc
    def delete_organization(self, organization_id):
        identity = self.auth.require()
        self.memberships.authorize(identity, organization_id, Action.DELETE_ORGANIZATION)
        return organizations.delete(self.db, identity, organization_id)

    @rpc
    def set_active_organization(self, organization_id):
        identity = self.auth.require()
        self.memberships.membership(organization_id, identity.id)   # NotFound unless the caller belongs to it
        organizations.set_active(self.db, identity, organization_id)
        return self.get_me()

    # ---- agents (rules in agents.py, agent_people.py, agent_transfer.py) -------------------------------
    @rpc
    def create_agent(self, organization_id, fields, idempotency_key=None):
        identity = self.auth.require()
        return agents.create_agent(self.db, identity, self._roles(organization_id), organization_id, fields,
                                   idempotency_key)

    @rpc
    def list_agents(self, organization_id, q=None, cursor=None, limit=None):
        identity = self.auth.require()
        return agents.list_agents(self.db, identity, self._roles(organization_id), organization_id, q, cursor, limit)

    @rpc
    def get_agent(self, organization_id, agent_id):
        identity = self.auth.require()
        return agents.get_agent(self.db, identity, self._roles(organization_id), organization_id, agent_id)

    @rpc
    def update_agent(self, organization_id, agent_id, fields):
        identity = self.auth.require()
        agents.clean_fields(fields, creating=False)   # bad input first, before any lookup is spent on it
        return agents.update_agent(self.db, identity, self._roles(organization_id), organization_id, agent_id,
                                   fields)

    @rpc
    def delete_agent(self, organization_id, agent_id):
        identity = self.auth.require()
        return agents.delete_agent(self.db, identity, self._roles(organization_id), organization_id, agent_id)

    @rpc
    def list_contributors(self, organization_id, agent_id, cursor=None, limit=None):
        identity = self.auth.require()
        return agent_people.list_contributors(self.db, identity, self._roles(organization_id), organization_id,
                                              agent_id, cursor, limit)

    @rpc
    def add_contributor(self, organization_id, agent_id, user_id):
        """Returns {"contributor", "created"} (created False when they already were one)."""
        contributor, created = self._give_place(agent_people.add_contributor, organization_id, agent_id, user_id)
        return {"contributor": contributor, "created": created}

    @rpc
    def remove_contributor(self, organization_id, agent_id, user_id):
        identity = self.auth.require()
        return agent_people.remove_contributor(self.db, identity, self._roles(organization_id), organization_id,
                                               agent_id, user_id)

    @rpc
    def assign_agent(self, organization_id, agent_id, user_id):
        """Returns {"assignee", "created"} (created False when they already were assigned)."""
        assignee, created = self._give_place(agent_people.assign, organization_id, agent_id, user_id)
        return {"assignee": assignee, "created": created}

    @rpc
    def unassign_agent(self, organization_id, agent_id, user_id):
        identity = self.auth.require()
        return agent_people.unassign(self.db, identity, self._roles(organization_id), organization_id, agent_id,
                                     user_id)

    @rpc
    def transfer_agent(self, organization_id, agent_id, destination_organization_id, dry_run):
        """Dry run: the report (who keeps access); otherwise the move. Membership facts of both
        organizations are read first; the move re-reads the agent under a row lock."""
        identity = self.auth.require()
        source_roles = self._roles(organization_id)
        destination_roles = self._destination_roles(organization_id, destination_organization_id)
        agent_transfer.check_transfer(source_roles, destination_roles, organization_id, destination_organization_id,
                                      dry_run)
        people = agent_transfer.people_of(self.db, identity, source_roles, organization_id, agent_id)
        people_roles = self.memberships.roles_of(destination_organization_id, people)
        return agent_transfer.transfer_agent(self.db, identity, source_roles, destination_roles, organization_id,
                                             agent_id, destination_organization_id, dry_run, people_roles)

    @rpc
    def check_agent_ids(self, organization_id, agent_ids):
        """The ids if all are live agents of the organization, 422 unknown_agent otherwise. For members
        (invitations name agents), which has checked the caller's rights itself; like
        organization_profile it does not ask members back (no call cycle)."""
        self.auth.require()
        return agents.check_agent_ids(self.db, organization_id, agent_ids)

    def _roles(self, organization_id):
        """The caller's roles in the organization; NotFound if they are not a member."""
        return self.memberships.membership(organization_id, self.auth.require().id)["roles"]

    def _destination_roles(self, organization_id, destination_id):
        """The caller's roles in a transfer's destination; None when they are not a member there or it
        is no other organization (check_transfer refuses both, each with its own error)."""
        if not agent_transfer.is_another_organization(organization_id, destination_id):
            return None
        try:
            return self._roles(destination_id)
        except NotFound:
            return None

    def _roles_of(self, organization_id, user_id):
        """Another person's roles in the organization, None if they are not a member."""
        return self.memberships.roles_of(organization_id, [user_id]).get(user_id)

    def _give_place(self, give, organization_id, agent_id, user_id):
        """Add a contributor or assignee (`give`, from agent_people): both people's roles are asked first."""
        identity = self.auth.require()
        roles = self._roles(organization_id)
        user_roles = self._roles_of(organization_id, agent_people.clean_user_id(user_id))
        return give(self.db, identity, roles, organization_id, agent_id, user_id, user_roles)

    # ---- agents' access for other services' read models (common.readmodels) --------------------------
    @rpc
    def snapshot_agents(self, after=None, limit=SNAPSHOT_PAGE):
        """One page of every agent's access state (deleted ones as tombstones), for fills and rebuilds."""
        self.auth.require_system()
        return agents.snapshot(self.db, after, limit)

    @rpc
    def agent_states(self, organization_id, agent_ids):
        """The current access states of those agents that are the organization's, for a consumer that
        confirms a refusal; no membership check: it tells only what the caller's service may know."""
        self.auth.require()
        return agents.access_states(self.db, organization_id, agent_ids)

    # ---- events of other services ---------------------------------------------------------------------
    # Acknowledged after the effects commit; an error (database down) requeues the event. A message
    # that is not a change event is logged and dropped: retrying cannot help.
    @consume(ORGS_QUEUE, requeue_on_error=True)
    def on_change_event(self, message):
        event = change_event_or_none(message)
        if event is not None:
            reactions.handle_change_event(self.db, event)
