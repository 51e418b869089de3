"""Nameko entrypoints of the orgs service: thin; the rules live in domain.py.

Order inside each entrypoint: check permissions and fetch membership facts over RPC first, then open
the write transaction (common.db: no RPC call while a write transaction is open).
"""
from nameko.messaging import consume
from nameko.rpc import RpcProxy

from common.auth import Auth
from common.authz import authorize
from common.db import Database
from common.events import ORGS_QUEUE
from common.outbox import OutboxRelay
from common.paging import page_of_list
from common.permissions import Action
from common.rpc import call, rpc
from services.orgs import domain
from services.orgs.models import OutboxEvent


class OrgsService:
    name = "orgs"

    auth = Auth()
    db = Database()
    outbox = OutboxRelay(OutboxEvent)
    members = RpcProxy("members")

    @rpc
    def ping(self):
        return "pong"

    @rpc
    def sign_in(self):
        """First sight of a user (or a change of their token's email/name): make sure their user record,
        their Individual organization and their Owner+Billing membership of it exist. Idempotent."""
        identity = self.auth.require()
        call(self.members.register_user)
        individual = domain.ensure_individual(self.db, identity)
        call(self.members.add_founder, individual["id"])
        return self.get_me()

    @rpc
    def get_me(self):
        identity = self.auth.require()
        memberships = call(self.members.my_memberships)
        live = domain.live_organizations(self.db, [m["organization_id"] for m in memberships])
        return {"id": identity.id, "email": identity.email, "name": identity.name,
                "active_organization_id": domain.active_organization_id(self.db, identity.id, set(live)),
                "memberships": [{"organization_id": m["organization_id"], "roles": m["roles"]}
                                for m in memberships if m["organization_id"] in live]}

    @rpc
    def list_organizations(self, cursor=None, limit=None):
        identity = self.auth.require()
        cards = domain.cards(self.db, identity.id, call(self.members.my_memberships))
        return page_of_list(cards, cursor, limit)

    @rpc
    def create_organization(self, name, idempotency_key=None):
        identity = self.auth.require()
        org = (domain.find_idempotent(self.db, identity, idempotency_key, "create_organization")
               or domain.create_collective(self.db, identity, name, idempotency_key))
        # Also on a replay: if the first attempt died before this call, the retry completes it.
        membership = call(self.members.add_founder, org["id"])
        return domain.card(org, membership, active_id=None)

    @rpc
    def get_organization(self, organization_id):
        identity = self.auth.require()
        membership = call(self.members.my_membership, organization_id)
        return self._card(identity, membership)

    @rpc
    def organization_profile(self, organization_id):
        """Name and type of a live organization, for services that have checked the caller's membership
        themselves (members, when inviting). It does not ask members back: a call cycle
        members -> orgs -> members can exhaust the members workers under load and deadlock."""
        self.auth.require()
        org = domain.live_organizations(self.db, [organization_id] if isinstance(organization_id, str) else []
                                        ).get(organization_id)
        if org is None:
            raise domain.organization_not_found()
        return {"id": org.id, "name": org.name, "type": org.type}

    @rpc
    def rename_organization(self, organization_id, name):
        identity = self.auth.require()
        domain.clean_name(name)   # bad input is refused before any permission lookup is spent on it
        membership = authorize(self.members, organization_id, Action.RENAME_ORGANIZATION)
        domain.rename(self.db, identity, organization_id, name)
        return self._card(identity, membership)

    @rpc
    def delete_organization(self, organization_id):
        identity = self.auth.require()
        authorize(self.members, organization_id, Action.DELETE_ORGANIZATION)
        return domain.delete(self.db, identity, organization_id)

    @rpc
    def set_active_organization(self, organization_id):
        identity = self.auth.require()
        call(self.members.my_membership, organization_id)   # NotFound unless the caller belongs to it
        domain.set_active(self.db, identity, organization_id)
        return self.get_me()

    @consume(ORGS_QUEUE, requeue_on_error=True)
    def on_change_event(self, event):
        if event.get("type") in ("member.removed", "member.left"):
            domain.forget_active_membership(self.db, event["target"]["id"], event["organization_id"])

    def _card(self, identity, membership):
        org_id = membership["organization_id"]
        org = domain.live_organizations(self.db, [org_id]).get(org_id)
        if org is None:
            raise domain.organization_not_found()
        # The stored active organization is this one only if it is alive and the caller a member,
        # both just established; so no fall-back computation is needed here.
        return domain.card(domain.org_dict(org), membership, domain.stored_active_id(self.db, identity.id))
